"""Loopback server speaking Binance USDⓈ-M WebSocket and REST from recorded data.

Replay is not a special code path: the live adapter and ccxt connect to
:attr:`ReplayServer.ws_url` / :attr:`ReplayServer.rest_url` exactly as they would to
``wss://fstream.binance.com`` / ``https://fapi.binance.com``.

WebSocket (one aiohttp app, same port as REST):

* routed paths ``/public/stream``, ``/market/stream`` (combined mode,
  ``{"stream":..,"data":..}``) and ``/public/ws``, ``/market/ws``, ``/<route>/ws/<s1>/<s2>``
  (raw mode); streams from ``?streams=a/b`` or the ``/ws/`` path, and live ``SUBSCRIBE``,
  ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``/``GET_PROPERTY`` (``combined``)
  with Binance's replies. The retired unrouted paths ``/stream`` and ``/ws`` behave as Binance
  documents: public-class data only.
* A stream on the wrong route (``btcusdt@kline_1m`` on ``/public``) is ACKed and listed but
  never gets data, exactly like Binance (FEEDS.md §1.1). Upper-case symbols likewise.
* More than ``max_incoming_per_s`` control messages within one second close the connection
  (code 1008), as Binance does above its 10 messages/s limit.

Timeline: one pump task walks the source's events in time order and sends each to every
connection subscribed to its stream key (a capture's ``btcusdt@depth@0ms`` reaches
``btcusdt@depth@100ms`` subscribers, renamed to the subscribed name), awaiting each send so a
slow reader slows the replay (backpressure). The pump starts when the first connection holds
a subscription that can receive data (with ``autostart=False``: once :meth:`start_streaming`
is also called); before that the replay clock stays at ``start_ms``, so REST backfill and the
stream join without a gap.

Replay clock: at finite speed ``start_ms + wall time since the pump started × speed``
(silences longer than the source's ``max_gap_ms`` are skipped); at max speed the time of
the message being sent. At max speed the pump waits while no connection holds a deliverable
subscription (there is no consumer to set the pace). A connection closed mid-replay misses
what was sent meanwhile; the timeline continues.

Every event the pump passes also advances what REST answers (``event_passed`` of the
source): a capture's recorded depth diffs are applied to the exchange's reference book that
``GET /fapi/v1/depth`` serves (:mod:`feeds.replay.depth_book`), whether the frame was sent,
dropped by a fault or heard by nobody.

Fault hooks (for tests): :meth:`ReplayServer.inject_rest_fault` (canned REST status, body,
delay), :meth:`ReplayServer.inject_stale_depth` (old snapshot on ``/fapi/v1/depth``),
:meth:`ReplayServer.drop_frames` (a depth gap: frames not sent),
:meth:`ReplayServer.drop_connections`, :meth:`ReplayServer.pause_streaming` /
:meth:`ReplayServer.resume_streaming`, :meth:`ReplayServer.ignore_control` (control messages
left unanswered), :meth:`ReplayServer.stall_stream` (one stream silent while others flow),
:meth:`ReplayServer.silence_new_connections` (new sockets ACKed but never fed);
:attr:`ReplayServer.control_log` records every control message received and
:attr:`ReplayServer.connection_log` every connection opened and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
from aiohttp import WSMsgType, web

from feeds.intervals import interval_ms
from feeds.replay.capture_source import CaptureSource
from feeds.replay.kline_source import KlineSource
from feeds.replay.klines import KLINE_SUFFIXES, kline_files, load_kline_history
from feeds.replay.rest_api import RestApi
from feeds.replay.timeline import ReplaySource, TimelineEvent
from feeds.replay.wire import Route, StreamKey, combined_frame, route_of, stream_key

logger = logging.getLogger(__name__)

DEFAULT_TIMEFRAMES = ("5m", "15m", "1h", "4h")
MARK_ARRAY_KEY = StreamKey("!markPrice", "arr")
TICKER_ARRAY_KEY = StreamKey("!ticker", "arr")
"""``!ticker@arr``: derived from the served klines in a kline-history replay."""
YIELD_EVERY = 64
"""Max-speed pump yields to the loop at least this often (REST stays responsive)."""

SEND_BUFFER_BYTES = 64 * 1024
"""Bytes the server lets pile up per connection (socket + transport) before a send waits.
Small, so at max speed the replay clock runs only a little ahead of what the client read."""

_encode = msgspec.json.Encoder().encode
_SEND_ERRORS = (ConnectionError, RuntimeError, asyncio.CancelledError)


class _Conn:
    """One client WebSocket connection and its subscriptions."""

    __slots__ = (
        "combined",
        "control_times",
        "label",
        "lock",
        "request",
        "route",
        "silent",
        "stalled",
        "streams",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        route: Route,
        combined: bool,
        label: str,
    ) -> None:
        self.ws = ws
        self.request = request
        self.route = route
        self.combined = combined
        self.label = label
        self.streams: list[str] = []
        self.lock = asyncio.Lock()
        self.control_times: deque[float] = deque()
        # Stream -> revived by a new SUBSCRIBE of it (else only a new connection gets data).
        self.stalled: dict[str, bool] = {}
        self.silent = False  # ACKs control messages, never gets data (fault injection)


def _limit_send_buffer(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=SEND_BUFFER_BYTES)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


def detect_kind(path: Path) -> Literal["klines", "capture"]:
    """``klines`` when ``path`` is (or holds) a feather/parquet/CSV file, else ``capture``."""
    if path.is_file():
        return "klines" if path.suffix.lower() in KLINE_SUFFIXES else "capture"
    if path.is_dir() and kline_files(path):
        return "klines"
    return "capture"


def load_source(
    path: Path,
    *,
    timeframes: Iterable[str],
    history_bars: dict[str, int],
    symbols: list[str] | None,
    start_ms: int | None,
) -> ReplaySource:
    """Load ``path`` as a kline history or a capture (blocking; call in a thread).

    Raises:
        ReplayDataError: unusable files (message names the file).
        ValueError: bad timeframes, or nothing to replay.
    """
    if detect_kind(path) == "klines":
        history = load_kline_history(path, symbols)
        return KlineSource(history, list(timeframes), history_bars, start_ms)
    return CaptureSource(path, symbols, start_ms)


class ReplayServer:
    """Binance USDⓈ-M look-alike on 127.0.0.1 serving a recorded file (module docstring).

    Args:
        path: Kline file/folder (feather, parquet, CSV) or capture file/folder.
        speed: Replay-clock seconds per wall second; ``None`` = as fast as consumed.
        start_ms: Replay start, ms UTC (default: see :class:`KlineSource`; captures: the
            first frame).
        timeframes: Kline intervals streamed (kline replays).
        history_bars: Backfill depth per interval; sets the default start.
        symbols: Replay only these symbols; ``None`` = all in the files.
        max_incoming_per_s: Control messages per second per connection before it is closed
            (Binance: 10); ``None`` disables the limit.
        autostart: Start streaming when the first connection holds a subscription that can
            receive data; ``False``: only when :meth:`start_streaming` is called (after the
            client's subscriptions are in place, see :meth:`subscribed_streams`).

    Raises:
        ValueError: ``speed`` ≤ 0 or an unknown timeframe.
    """

    def __init__(
        self,
        path: Path,
        *,
        speed: float | None = 1.0,
        start_ms: int | None = None,
        timeframes: list[str] | None = None,
        history_bars: dict[str, int] | None = None,
        symbols: list[str] | None = None,
        max_incoming_per_s: float | None = 10.0,
        autostart: bool = True,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0 or None (max), got {speed}")
        self.path = path
        self.speed = speed
        self.timeframes = list(timeframes) if timeframes is not None else list(DEFAULT_TIMEFRAMES)
        for tf in self.timeframes:
            interval_ms(tf)
        self.history_bars = dict(history_bars or {})
        self._symbols_filter = symbols
        self._requested_start = start_ms
        self._max_incoming = max_incoming_per_s
        self.frames_sent = 0
        """WebSocket data messages sent, over all connections."""
        self.frames_skipped = 0
        """Timeline messages dropped because they fell due while streaming was paused."""
        self.frames_dropped = 0
        """Frames withheld by :meth:`drop_frames` (one per frame and stream name)."""
        self._drops: dict[str, int] = {}
        self.control_log: list[tuple[str, float, dict[str, Any]]] = []
        """``(connection label, time.monotonic(), message)`` of every JSON-object control
        message received, in arrival order (including ignored ones)."""
        self.connection_log: list[tuple[str, Literal["open", "close"], float]] = []
        """``(connection label, "open" | "close", time.monotonic())`` of every WebSocket
        connection, in order (``close``: the server saw it end)."""
        self._silence_next = 0
        self._ignore: list[list[Any]] = []  # [method | None, id | None, count | None]
        self._dead: set[str] = set()
        self._source: ReplaySource | None = None
        self._rest: RestApi | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._conns: set[_Conn] = set()
        self._index: dict[StreamKey, dict[_Conn, list[str]]] = {}
        self._deliverable = 0
        self._conn_seq = 0
        self._consumer = asyncio.Event()
        self._release = asyncio.Event()
        if autostart:
            self._release.set()
        self._sub_change = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._paused = False
        self._skip_before = 0
        self._finished = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._anchor_wall = 0.0
        self._anchor_ms = 0
        self._current_ms = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load the data (in a thread), bind 127.0.0.1 on an ephemeral port, start the pump.

        Raises:
            ReplayDataError: unusable files.
            ValueError: nothing to replay.
            OSError: cannot bind.
        """
        if self._runner is not None:
            raise RuntimeError("ReplayServer already started")
        source = await asyncio.to_thread(
            load_source,
            self.path,
            timeframes=self.timeframes,
            history_bars=self.history_bars,
            symbols=self._symbols_filter,
            start_ms=self._requested_start,
        )
        for note in source.skipped:
            logger.warning("replay: %s", note)
        self._source = source
        self._current_ms = source.start_ms
        self._rest = RestApi(source, lambda: self.replay_time_ms)
        app = web.Application()
        self._rest.add_routes(app)
        for path in (
            "/{route:public|market}/stream",
            "/{route:public|market}/ws",
            "/{route:public|market}/ws/{streams:.+}",
            "/stream",
            "/ws",
            "/ws/{streams:.+}",
        ):
            app.router.add_get(path, self._ws_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._pump_task = asyncio.create_task(self._pump(), name="replay-pump")
        logger.info(
            "replay %s (%s, %d symbols) on %s, speed %s, start %d",
            self.path,
            source.kind,
            len(source.symbols),
            self.rest_url,
            "max" if self.speed is None else self.speed,
            source.start_ms,
        )

    async def stop(self) -> None:
        """Stop the pump, close every connection and the listening socket. Idempotent."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        for conn in list(self._conns):
            with contextlib.suppress(*_SEND_ERRORS):
                await conn.ws.close(code=1001, message=b"server stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_streaming(self) -> None:
        """Let the timeline start (needed only with ``autostart=False``). Idempotent."""
        self._release.set()

    def subscribed_streams(self) -> set[str]:
        """Every stream name currently subscribed on any connection (deliverable or not)."""
        return {name for conn in self._conns for name in conn.streams}

    async def wait_finished(self) -> None:
        """Return once every timeline event has been processed (sent or dropped)."""
        await self._finished.wait()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- properties

    def _require(self) -> ReplaySource:
        if self._source is None:
            raise RuntimeError("ReplayServer not started")
        return self._source

    @property
    def rest_url(self) -> str:
        """REST base URL, ``http://127.0.0.1:PORT`` (append ``/fapi/v1/...``)."""
        self._require()
        return f"http://127.0.0.1:{self._port}"

    @property
    def ws_url(self) -> str:
        """WebSocket root, ``ws://127.0.0.1:PORT`` (append ``/public/stream?...``)."""
        self._require()
        return f"ws://127.0.0.1:{self._port}"

    def recorded_streams(self) -> set[str]:
        """Streams a capture replay holds frames for (empty for kline history, whose kline
        and mark-price streams exist for every symbol and interval)."""
        source = self._source
        return set(getattr(source, "streams", ())) if source is not None else set()

    @property
    def source_kind(self) -> Literal["klines", "capture"]:
        """``klines`` or ``capture``."""
        return self._require().kind

    @property
    def symbols(self) -> list[str]:
        """Replayed symbols, upper case, sorted."""
        return list(self._require().symbols)

    @property
    def start_ms(self) -> int:
        """Replay clock at the start, ms UTC."""
        return self._require().start_ms

    @property
    def end_ms(self) -> int:
        """Time of the last timeline event, ms UTC."""
        return self._require().end_ms

    @property
    def skipped(self) -> list[str]:
        """Inputs left out of the replay (unusable files, malformed lines), one note each."""
        return list(self._require().skipped)

    @property
    def source(self) -> ReplaySource:
        """The loaded data (for inspection in tests and tools)."""
        return self._require()

    @property
    def replay_time_ms(self) -> int:
        """The replay clock, ms UTC (module docstring)."""
        source = self._require()
        if not self._started:
            return source.start_ms
        if self.speed is None:
            return self._current_ms
        if self._finished.is_set():
            return max(self._current_ms, source.end_ms)
        return min(self._clock_raw(), source.end_ms)

    def _clock_raw(self) -> int:
        assert self.speed is not None
        elapsed = asyncio.get_running_loop().time() - self._anchor_wall
        return self._anchor_ms + int(elapsed * 1000 * self.speed)

    @property
    def rest_log(self) -> list[tuple[float, str, dict[str, str]]]:
        """``(time.monotonic(), path, query)`` of every REST request, in arrival order."""
        if self._rest is None:
            raise RuntimeError("ReplayServer not started")
        return self._rest.log

    @property
    def connections(self) -> int:
        """Open WebSocket connections."""
        return len(self._conns)

    # ----------------------------------------------------------------- fault hooks

    def inject_rest_fault(
        self,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        count: int = 1,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next ``count`` REST requests to ``path`` with a canned response.

        Args:
            path: Request path (``/fapi/v1/depth``), or ``*`` for any REST path.
            status: HTTP status (429, 418, 500, ...). 200 with ``body`` None only delays.
            headers: Extra headers (``{"Retry-After": "3"}``).
            body: JSON body; default Binance's error body for ``status``.
            count: How many requests get it.
            delay_s: Wait this long before answering (latency / timeout tests).

        Raises:
            RuntimeError: server not started.
            ValueError: ``count`` < 1 or ``delay_s`` < 0.
        """
        if self._rest is None:
            raise RuntimeError("ReplayServer not started")
        self._rest.inject_fault(
            path, status, headers=headers, body=body, count=count, delay_s=delay_s
        )

    def inject_stale_depth(self, symbol: str, count: int = 1) -> None:
        """Answer the next ``count`` ``GET /fapi/v1/depth`` requests for ``symbol`` with its
        FIRST recorded snapshot, older than what the stream has delivered since (FEEDS.md §5
        "snapshot too old"): the client must re-snapshot, not apply.

        Args:
            symbol: Venue symbol (case-insensitive).
            count: How many depth requests for ``symbol`` get the old snapshot.

        Raises:
            RuntimeError: server not started.
            ValueError: ``count`` < 1, or no snapshot was recorded for ``symbol``.
        """
        if self._rest is None:
            raise RuntimeError("ReplayServer not started")
        self._rest.inject_stale_depth(symbol, count)

    def drop_frames(self, stream: str, count: int = 1) -> None:
        """Withhold the next ``count`` frames of ``stream`` from every client (a gap).

        The frames still happen on the exchange: a depth diff is applied to the reference
        book that ``GET /fapi/v1/depth`` serves. Only frames that reach a subscriber count;
        calls add up.

        Args:
            stream: Stream name exactly as subscribed (``btcusdt@depth@100ms``).
            count: Frames to drop.

        Raises:
            ValueError: empty ``stream`` or ``count`` < 1.
        """
        if not stream or count < 1:
            raise ValueError(
                f"drop_frames needs a stream name and count >= 1, got {stream!r}, {count}"
            )
        self._drops[stream] = self._drops.get(stream, 0) + count

    def ignore_control(
        self, *, method: str | None = None, request_id: int | None = None, count: int | None = 1
    ) -> None:
        """Leave control messages unanswered and unapplied, as if lost on the way (FEEDS.md
        §4 A.6: the client must time out). Rules add up; a message matches the oldest rule
        whose every given field equals its own.

        Args:
            method: Only messages of this method (``SUBSCRIBE``, ...); ``None``: any method.
            request_id: Only messages with this ``id``; ``None``: any id.
            count: Messages this rule swallows, over all connections; ``None``: every match
                (a request the server never answers, however often it is re-sent).

        Raises:
            ValueError: neither ``method`` nor ``request_id`` given, or ``count`` < 1.
        """
        if (method is None and request_id is None) or (count is not None and count < 1):
            raise ValueError(
                f"ignore_control needs a method or request_id and count >= 1 or None, got "
                f"{method!r}, {request_id!r}, {count!r}"
            )
        self._ignore.append([method, request_id, count])

    def _ignored(self, msg: dict[str, Any]) -> bool:
        for rule in self._ignore:
            method, request_id, count = rule
            if (method is None or msg.get("method") == method) and (
                request_id is None or msg.get("id") == request_id
            ):
                if count is not None:
                    rule[2] = count - 1
                    if count == 1:
                        self._ignore.remove(rule)
                return True
        return False

    def stall_stream(
        self, stream: str, *, revive: Literal["resubscribe", "reconnect", "never"] = "resubscribe"
    ) -> int:
        """Stop sending ``stream`` while the connections stay open and keep answering control
        messages and pings: a dead subscription among live ones (FEEDS.md §4 A.2).

        Args:
            stream: Stream name exactly as subscribed (``btcusdt@bookTicker``).
            revive: ``resubscribe``: a later SUBSCRIBE of it on a stalled connection brings it
                back; ``reconnect``: only connections opened later get it; ``never``: no
                connection gets it again (like a stream on the wrong route).

        Returns:
            Connections currently subscribed to ``stream`` (stalled now).

        Raises:
            ValueError: empty ``stream``.
        """
        if not stream:
            raise ValueError("stall_stream needs a stream name")
        if revive == "never":
            self._dead.add(stream)
        holders = [conn for conn in self._conns if stream in conn.streams]
        for conn in holders:
            conn.stalled[stream] = revive == "resubscribe"
        return len(holders)

    def silence_new_connections(self, count: int = 1) -> None:
        """The next ``count`` WebSocket connections opened get no data at all: they answer
        control messages and pings like any other (a socket that never delivers). Calls add
        up.

        Raises:
            ValueError: ``count`` < 1.
        """
        if count < 1:
            raise ValueError(f"silence_new_connections needs count >= 1, got {count}")
        self._silence_next += count

    def drop_connections(self, *, code: int | None = None) -> int:
        """Close every WebSocket connection now; returns how many.

        Args:
            code: ``None`` aborts the TCP connection (the client sees 1006, no close frame);
                a code sends a close frame with it (1000 = Binance's 24 h cut).
        """
        conns = list(self._conns)
        for conn in conns:
            if code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                task = asyncio.create_task(conn.ws.close(code=code))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._forget(conn)
        return len(conns)

    def pause_streaming(self) -> None:
        """Stop sending data; connections stay open and answer pings and control messages.

        At finite speed the clock keeps running and messages that fall due meanwhile are
        dropped (a stalled live stream loses them too); at max speed the replay waits.
        """
        self._paused = True
        self._resumed.clear()

    def resume_streaming(self) -> None:
        """Resume sending after :meth:`pause_streaming`."""
        if self._paused and self._started and self.speed is not None:
            self._skip_before = self._clock_raw()
        self._paused = False
        self._resumed.set()

    # ----------------------------------------------------------------- subscriptions

    def _deliverable_to(self, conn: _Conn, stream: str) -> bool:
        # Binance ignores upper-case symbols in stream names (ACK, no data) and streams of the
        # other route (FEEDS.md §1.1).
        symbol = stream_key(stream).symbol
        return route_of(stream) == conn.route and (
            symbol.startswith("!") or symbol == symbol.lower()
        )

    def _subscribe(self, conn: _Conn, streams: Iterable[str]) -> None:
        for stream in streams:
            if conn.stalled.get(stream):
                del conn.stalled[stream]  # a fresh SUBSCRIBE revives a stalled stream
            if not stream or stream in conn.streams:
                continue
            conn.streams.append(stream)
            if self._deliverable_to(conn, stream):
                self._index.setdefault(stream_key(stream), {}).setdefault(conn, []).append(stream)
                self._deliverable += 1
        self._subs_changed()

    def _unsubscribe(self, conn: _Conn, streams: Iterable[str]) -> None:
        for stream in streams:
            if stream not in conn.streams:
                continue
            conn.streams.remove(stream)
            key = stream_key(stream)
            names = self._index.get(key, {}).get(conn)
            if names and stream in names:
                names.remove(stream)
                self._deliverable -= 1
                if not names:
                    del self._index[key][conn]
                    if not self._index[key]:
                        del self._index[key]
        self._subs_changed()

    def _forget(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self._unsubscribe(conn, list(conn.streams))

    def _subs_changed(self) -> None:
        if self._deliverable > 0:
            self._consumer.set()
        else:
            self._consumer.clear()
        self._sub_change.set()

    def _mark_subscribed(self) -> bool:
        if MARK_ARRAY_KEY in self._index:
            return True
        return any(key.kind == "markPrice" for key in self._index)

    # ----------------------------------------------------------------- WebSocket

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        route_text = request.match_info.get("route")
        route: Route = "market" if route_text == "market" else "public"
        raw_mode = request.path.rstrip("/").split("/")[2 if route_text else 1] == "ws"
        ws = web.WebSocketResponse(
            autoping=True, compress=False, max_msg_size=1 << 20, writer_limit=SEND_BUFFER_BYTES
        )
        await ws.prepare(request)
        _limit_send_buffer(request)
        self._conn_seq += 1
        conn = _Conn(ws, request, route, not raw_mode, f"{route}-{self._conn_seq}")
        if self._silence_next:
            self._silence_next -= 1
            conn.silent = True
        self._conns.add(conn)
        self.connection_log.append((conn.label, "open", time.monotonic()))
        if raw_mode:
            initial = request.match_info.get("streams", "").split("/")
        else:
            initial = request.query.get("streams", "").split("/")
        self._subscribe(conn, [s for s in initial if s])
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._error(conn, 3, "Invalid JSON: binary frame")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._forget(conn)
            self.connection_log.append((conn.label, "close", time.monotonic()))
        return ws

    async def _reply(self, conn: _Conn, body: dict[str, Any]) -> None:
        await self._send(conn, _encode(body))

    async def _error(self, conn: _Conn, code: int, msg: str, req_id: object = None) -> None:
        """Binance's control-message error reply (``{"error":{"code","msg"},"id"}``)."""
        await self._reply(conn, {"error": {"code": code, "msg": msg}, "id": req_id})

    async def _control(self, conn: _Conn, text: str) -> None:
        if self._max_incoming is not None:
            now = time.monotonic()
            conn.control_times.append(now)
            while conn.control_times and conn.control_times[0] <= now - 1.0:
                conn.control_times.popleft()
            if len(conn.control_times) > self._max_incoming:
                logger.warning(
                    "replay: %s sent more than %s messages/s; closing",
                    conn.label,
                    self._max_incoming,
                )
                self._forget(conn)
                await conn.ws.close(code=1008, message=b"Too many requests")
                return
        try:
            msg = json.loads(text)
        except ValueError as exc:
            await self._error(conn, 3, f"Invalid JSON: {exc}")
            return
        if not isinstance(msg, dict):
            await self._error(conn, 3, "Invalid JSON: expected an object")
            return
        self.control_log.append((conn.label, time.monotonic(), msg))
        if self._ignore and self._ignored(msg):
            logger.info(
                "replay: %s %s id=%s ignored (fault injection)",
                conn.label,
                msg.get("method"),
                msg.get("id"),
            )
            return
        req_id = msg.get("id")
        valid_id = isinstance(req_id, str) or (
            isinstance(req_id, int) and not isinstance(req_id, bool) and req_id >= 0
        )
        if req_id is not None and not valid_id:
            await self._error(
                conn, 2, "Invalid request: request ID must be an unsigned integer", req_id
            )
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                await self._error(
                    conn, 2, "Invalid request: params must be a list of stream names", req_id
                )
                return
            if method == "SUBSCRIBE":
                self._subscribe(conn, params)
            else:
                self._unsubscribe(conn, params)
            await self._reply(conn, {"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await self._reply(conn, {"result": list(conn.streams), "id": req_id})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            name = params[0] if isinstance(params, list) and params else None
            if name != "combined":
                await self._error(conn, 0, "Unknown property", req_id)
            elif method == "GET_PROPERTY":
                await self._reply(conn, {"result": conn.combined, "id": req_id})
            elif len(params) < 2 or not isinstance(params[1], bool):
                await self._error(conn, 1, "Invalid value type: expected Boolean", req_id)
            else:
                conn.combined = params[1]
                await self._reply(conn, {"result": None, "id": req_id})
        else:
            methods = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
            await self._error(
                conn,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of "
                f"{methods}`GET_PROPERTY`",
                req_id,
            )

    async def _send(self, conn: _Conn, payload: bytes) -> bool:
        if conn.ws.closed:
            self._forget(conn)
            return False
        try:
            async with conn.lock:
                await conn.ws.send_frame(payload, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("replay: send to %s failed: %s", conn.label, exc)
            self._forget(conn)
            return False
        return True

    async def _deliver(self, key: StreamKey, data: bytes) -> None:
        subs = self._index.get(key)
        if not subs:
            return
        targets = [
            (conn, name)
            for conn, names in subs.items()
            for name in names
            if name not in conn.stalled and name not in self._dead and not conn.silent
        ]
        if not targets:
            return
        if self._drops:
            dropped = {name for _, name in targets if self._drops.get(name)}
            for name in dropped:
                self._drops[name] -= 1
                if not self._drops[name]:
                    del self._drops[name]
                self.frames_dropped += 1
                logger.info("replay: dropped a frame of %s (fault injection)", name)
            targets = [(conn, name) for conn, name in targets if name not in dropped]
            if not targets:
                return

        async def one(conn: _Conn, name: str) -> None:
            frame = combined_frame(name, data) if conn.combined else data
            if await self._send(conn, frame):
                self.frames_sent += 1

        if len(targets) == 1:
            await one(*targets[0])
        else:
            await asyncio.gather(*(one(c, n) for c, n in targets))

    async def _deliver_event(self, event: TimelineEvent) -> None:
        if event.key in self._index:
            await self._deliver(event.key, event.data())

    async def _deliver_marks(self, now_ms: int) -> None:
        if not self._mark_subscribed():
            return
        updates = self._require().mark_updates(now_ms)
        if not updates:
            return
        if MARK_ARRAY_KEY in self._index:
            await self._deliver(MARK_ARRAY_KEY, _encode(list(updates.values())))
        for symbol, update in updates.items():
            key = StreamKey(symbol.lower(), "markPrice")
            if key in self._index:
                await self._deliver(key, _encode(update))

    async def _deliver_tickers(self, now_ms: int) -> None:
        """Kline replays: ``!ticker@arr`` derived from the klines (``KlineSource``)."""
        if TICKER_ARRAY_KEY not in self._index:
            return
        derive = getattr(self._require(), "ticker_updates", None)
        if derive is None:
            return
        items = derive(now_ms)
        if items:
            await self._deliver(TICKER_ARRAY_KEY, _encode(items))

    # ----------------------------------------------------------------- pump

    async def _pump(self) -> None:
        source = self._require()
        await self._release.wait()
        await self._consumer.wait()
        loop = asyncio.get_running_loop()
        self._anchor_wall = loop.time()
        self._anchor_ms = source.start_ms
        self._current_ms = source.start_ms
        self._started = True
        generates_marks = source.kind == "klines"
        next_mark = -(-source.start_ms // 1000) * 1000
        processed = 0
        marked_ms: int | None = None
        ticked_ms: int | None = None
        try:
            for event in source.events():
                if self.speed is None:
                    if self._paused:
                        await self._resumed.wait()
                    if not self._consumer.is_set():
                        await self._consumer.wait()
                    self._current_ms = event.time_ms
                    if generates_marks and event.time_ms != marked_ms:
                        marked_ms = event.time_ms
                        await self._deliver_marks(event.time_ms)
                else:
                    next_mark = await self._wait_for(event.time_ms, next_mark, generates_marks)
                    self._current_ms = event.time_ms
                # The exchange moves on whether or not anyone receives the message.
                source.event_passed(event)
                if self.speed is not None and event.time_ms < self._skip_before:
                    self.frames_skipped += 1
                    continue
                if generates_marks and event.time_ms != ticked_ms:
                    # Tickers before the klines of the same instant, as the venue's 24 h
                    # window already includes the candle closing now.
                    ticked_ms = event.time_ms
                    await self._deliver_tickers(event.time_ms)
                await self._deliver_event(event)
                processed += 1
                if processed % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            logger.exception("replay pump failed")
            raise
        finally:
            self._finished.set()
        logger.info("replay finished: %d frames sent", self.frames_sent)

    async def _wait_for(self, due_ms: int, next_mark: int, marks: bool) -> int:
        """Finite speed: wait until ``due_ms`` on the replay clock, sending mark updates
        each replay second meanwhile; returns the next mark second."""
        assert self.speed is not None
        source = self._require()
        gap = source.max_gap_ms
        if gap is not None and due_ms - self._clock_raw() > gap:
            # Separate sessions in one capture folder: jump the clock instead of waiting.
            logger.info("replay: skipping %d s of silence", (due_ms - self._clock_raw()) // 1000)
            self._anchor_ms = due_ms
            self._anchor_wall = asyncio.get_running_loop().time()
        while True:
            if self._paused:
                await self._resumed.wait()
                continue
            now = self._clock_raw()
            if marks and next_mark < now - 1000:
                next_mark = -(-now // 1000) * 1000  # nobody listened meanwhile: catch up
            mark_due = marks and next_mark <= due_ms and self._mark_subscribed()
            target = next_mark if mark_due else due_ms
            delay = (target - now) / 1000 / self.speed
            if delay > 0:
                self._sub_change.clear()
                if marks and not mark_due:
                    # Wake early if someone subscribes to mark prices while we wait.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._sub_change.wait(), delay)
                else:
                    await asyncio.sleep(delay)
                continue
            if mark_due:
                self._current_ms = next_mark
                if next_mark >= self._skip_before:
                    await self._deliver_marks(next_mark)
                next_mark += 1000
                continue
            if marks and next_mark <= due_ms:
                next_mark = -(-due_ms // 1000) * 1000  # marks unsubscribed: keep the grid
            return next_mark
