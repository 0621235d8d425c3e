"""One reconnecting Binance USDⓈ-M combined-stream WebSocket connection.

A :class:`BinanceConnection` owns one socket to ``{ws_url}/{route}/stream`` and keeps it
alive until cancelled (FEEDS.md §4 A):

* **Subscription registry.** The wanted streams are kept here; on every (re)connect they
  are SUBSCRIBEd in batches of ``subscribe_batch``, control messages spaced at least
  ``subscribe_interval_s`` apart (Binance disconnects above 10 incoming messages/s), then
  audited once with LIST_SUBSCRIPTIONS. Removed streams are UNSUBSCRIBEd. Responses are
  matched by id. Binance rejects a whole SUBSCRIBE when one name is bad, so the streams of a
  rejected batch are retried one per message; a stream rejected on its own is reported
  (``OFFLINE`` for that stream) and not retried until it is removed and re-added.
* **Control timeouts** (FEEDS.md §4 A.6). A control message without a reply within
  ``control_timeout_s`` is logged with its id and streams, counted
  (:attr:`BinanceConnection.control_timeouts`) and sent again, paced like any other control
  message; the still-silent streams of a timed-out SUBSCRIBE are reported ``STALE``. After
  ``control_retries`` unanswered re-sends the socket is treated as broken and reopened.
* **Reconnect.** Capped exponential backoff with full jitter (:mod:`feeds.backoff`), every
  connect paced by a process-wide :class:`ConnectPacer`.
* **Rotation** (FEEDS.md §4 A.1). Binance cuts connections at 24 h, so after
  ``rotate_after_s`` the connection is replaced make-before-break: a new socket is opened
  (through the same pacer, so connections opened apart rotate apart), subscribed to the same
  streams, and given up to ``ROTATION_WAIT_STALE_FACTOR × stale_after_s`` to deliver, on every
  stream that must flow that often, a frame the old socket delivered too; then the old socket
  is closed and read to its end and the new one carries on. Meanwhile both deliver the same
  frames: :class:`feeds.rotation.Overlap` passes each on exactly once, in order. If the new
  socket fails (cannot connect, SUBSCRIBE rejected or unanswered, no matching data in time)
  it is closed and the old one is reopened the plain way, with the reason logged and in the
  ``RECONNECTING`` status. Counted in :attr:`BinanceConnection.rotations` and
  ``stats.rotations``.
* **Watchdog.** Each stream's last data frame time (monotonic clock); a stream silent past
  its threshold (:func:`feeds.routing.stale_threshold_s`) is reported ``STALE``; when every
  watched stream of the socket is stale the socket is closed and reopened (FEEDS.md §4 A.2).
  A stale stream among flowing ones is re-subscribed alone (UNSUBSCRIBE + SUBSCRIBE through
  the paced control path, counted in :attr:`BinanceConnection.resubscribes`); still silent
  ``stream_resubscribes`` times, the socket is reopened. A stream that caused one reopen and
  stays silent on the new socket after its re-subscribes is reported ``OFFLINE`` instead of
  reopening again (so one dead symbol cannot cut its neighbours off every few seconds). Its
  first data frame makes it ``LIVE`` again and resets its counts.

The reader loop only decodes the envelope and hands the frame on: decoding the payload and
delivering events is the :class:`FrameHandler`'s job (the adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from feeds.backoff import Backoff
from feeds.base import FeedStats
from feeds.binance_schemas import (
    LIST_RESULT_DECODER,
    BinanceDecodeError,
    BinanceFrame,
    decode_frame,
)
from feeds.config import FeedConfig
from feeds.events import FeedState, FeedStatus
from feeds.rotation import Frame, Overlap
from feeds.routing import Route, parse_stream, stale_threshold_s

logger = logging.getLogger(__name__)

LIQUIDITY_PACED = frozenset({"aggTrade", "trade", "bookTicker"})
"""Stream kinds that push only when someone trades or the best bid/ask moves: on a quiet symbol
they are silent for tens of seconds while alive (FEEDS.md §4 A.2: liquidity-dependent), so
they are reported STALE but never re-subscribed or answered with a reconnect that would cut
the connection's other streams (and every order book on it) off."""

_MIN_WATCHDOG_TICK_S = 0.05
_MAX_WATCHDOG_TICK_S = 1.0

ROTATION_WAIT_STALE_FACTOR = 3.0
"""A rotation waits at most this many ``stale_after_s`` for the new socket's first frames
(after its SUBSCRIBE replies) before it falls back to a plain reconnect."""


def wall_time_ms() -> int:
    """Local wall-clock time, ms UTC (for ``recv_time`` and status times)."""
    return time.time_ns() // 1_000_000


class ConnectPacer:
    """Spaces new WebSocket connections at least ``interval_s`` apart (one per process).

    Binance allows 300 connection attempts per 5 min per IP; NautilusTrader paces Binance
    connects at 1/s. Share one pacer between every connection of the app (pass it in).

    Args:
        interval_s: Minimum gap between two connects, seconds (0 disables pacing).
        clock: Monotonic clock in seconds.
    """

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = max(0.0, interval_s)
        self._clock = clock
        self._next_slot = float("-inf")
        self.connects = 0
        """Connect slots handed out so far."""

    async def wait(self) -> None:
        """Sleep until this caller's connect slot; slots are handed out first come first
        served, so concurrent callers are spaced too."""
        now = self._clock()
        slot = max(now, self._next_slot)
        # Reserve before sleeping: no await between reading and updating the slot.
        self._next_slot = slot + self._interval
        self.connects += 1
        if slot > now:
            await asyncio.sleep(slot - now)


class FrameHandler(Protocol):
    """Receives what one connection reads; implemented by the exchange adapter (one handler
    per connection, so it knows the connection's label and route)."""

    def on_data(self, stream: str, data: msgspec.Raw, recv_time: int, raw: str | bytes) -> None:
        """One data frame: ``data`` is the raw payload of ``stream``, ``recv_time`` the local
        receive time in ms UTC, ``raw`` the whole frame as received."""
        ...

    def on_bad_frame(self, stream: str, reason: str, raw: str | bytes) -> None:
        """A frame that could not be decoded (``stream`` is ``""`` when unknown)."""
        ...

    def on_status(self, status: FeedStatus) -> None:
        """A health transition of the connection or of one of its streams."""
        ...


@dataclass(slots=True)
class _Request:
    method: str
    params: tuple[str, ...]
    sent_subscribed: frozenset[str] = field(default_factory=frozenset)
    sent_at: float = 0.0  # monotonic seconds
    attempt: int = 0  # 0 = first send, n = n-th re-send after a timeout
    id: int = 0  # a re-send keeps the id of the first send (0: not sent yet)


class _RotationFailed(Exception):
    """The new socket of a make-before-break rotation cannot take over (message: why)."""


@dataclass(slots=True)
class _Successor:
    """The new socket of a rotation while it warms up, handed to the next session."""

    ws: ClientConnection
    opened: float  # monotonic seconds
    reader: asyncio.Task[None] | None = None
    pending: dict[int, tuple[str, ...]] = field(default_factory=dict)  # SUBSCRIBE id → streams
    subscribed: set[str] = field(default_factory=set)
    last_control: float = float("-inf")  # monotonic seconds
    error: str = ""  # why the socket cannot take over (a rejected SUBSCRIBE)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Rotation:
    """Which socket is which while two deliver the same streams."""

    overlap: Overlap
    old: ClientConnection
    new: ClientConnection
    wake: asyncio.Event  # the warm-up's: set on every frame either socket reads
    expires: float = float("inf")  # monotonic seconds; set once the old socket is gone


def _names(streams: Iterable[str], limit: int = 5) -> str:
    ordered = sorted(streams)
    shown = ", ".join(ordered[:limit])
    return f"{shown} (+{len(ordered) - limit} more)" if len(ordered) > limit else shown


def _describe_error(exc: BaseException, url: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused to {url}"
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} from {url}"
    if isinstance(exc, InvalidURI):
        return f"invalid WebSocket URL {url}: {exc}"
    if isinstance(exc, InvalidHandshake):
        return f"handshake with {url} failed: {exc}"
    if isinstance(exc, TimeoutError):
        return f"timed out connecting to {url}"
    if isinstance(exc, ConnectionClosed):
        return _describe_close(exc.rcvd.code if exc.rcvd else None, str(exc))
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({url})"
    return f"{type(exc).__name__}: {exc} ({url})"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe_close(code: int | None, detail: str = "") -> str:
    if code is None or code == 1006:
        return "connection lost (no close frame)"
    return f"server closed the connection (code {code}{': ' + detail if detail else ''})"


class BinanceConnection:
    """One reconnecting combined-stream connection carrying streams of a single route.

    Args:
        label: Connection label used in statuses and logs (``market-0``, ``public-1``).
        route: Routed path; every stream given must belong to it (the adapter checks).
        ws_url: WebSocket root (``wss://fstream.binance.com``); the socket opens
            ``{ws_url}/{route}/stream``.
        config: Connection policy (batching, pacing, backoff, staleness, rotation,
            ``max_frame_bytes``).
        handler: Receives data frames, bad frames and statuses.
        pacer: Process-wide connect pacer.
        stats: Shared counters (frames, reconnects, open connections, stale streams).
        rng: Random source for the backoff jitter.
        clock: Monotonic clock in seconds (timers).
        open_timeout_s: Handshake timeout, seconds.
        close_timeout_s: Close-handshake timeout, seconds.
    """

    def __init__(
        self,
        label: str,
        route: Route,
        ws_url: str,
        config: FeedConfig,
        *,
        handler: FrameHandler,
        pacer: ConnectPacer,
        stats: FeedStats,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        self.label = label
        self.route: Route = route
        self.url = f"{ws_url.rstrip('/')}/{route}/stream"
        # A replay/loopback server must never be reached through a system HTTP proxy;
        # elsewhere websockets honours the proxy environment variables (``True``).
        self._proxy: Literal[True] | None = None if _is_loopback(self.url) else True
        self._config = config
        self._handler = handler
        self._pacer = pacer
        self._stats = stats
        self._clock = clock
        self._open_timeout = open_timeout_s
        self._close_timeout = close_timeout_s
        self._backoff = Backoff.from_config(config, rng=rng, clock=clock)
        self.reconnects = 0
        """Reconnects of this connection so far."""
        self.control_timeouts = 0
        """Control messages of this connection that got no reply within
        ``control_timeout_s`` (each re-send that times out counts again)."""
        self.resubscribes = 0
        """Re-subscribes (UNSUBSCRIBE + SUBSCRIBE) of single stale streams so far."""
        self.rotations = 0
        """Make-before-break rotations completed (the new socket took over)."""
        self.rotation_fallbacks = 0
        """Rotations whose new socket could not take over (a plain reconnect followed)."""

        self._desired: set[str] = set()
        self._rejected: set[str] = set()
        self._solo: set[str] = set()  # streams of a rejected batch, retried one by one
        self._thresholds: dict[str, float | None] = {}
        self._stale: set[str] = set()
        # Streams whose silence already made the socket reopen once (kept across sockets).
        self._escalated: set[str] = set()
        self._wake = asyncio.Event()
        self._next_id = 1
        # Per-socket state, reset on every connect.
        self._subscribed: set[str] = set()
        self._pending: dict[int, _Request] = {}
        self._last_data: dict[str, float] = {}
        self._last_control = float("-inf")
        self._live = False
        self._audit_due = False
        self._retries: list[_Request] = []  # timed-out requests waiting to be sent again
        self._resub_due: set[str] = set()  # stale streams waiting for their UNSUBSCRIBE
        self._resub_attempts: dict[str, int] = {}
        self._given_up: set[str] = set()  # reported OFFLINE; no more re-subscribes
        self._rotation: _Rotation | None = None  # two sockets deliver: deduplicate

    # ----------------------------------------------------------------- registry

    @property
    def streams(self) -> frozenset[str]:
        """Streams this connection should carry (the subscription registry)."""
        return frozenset(self._desired)

    @property
    def rejected(self) -> frozenset[str]:
        """Streams the server rejected; not retried until removed and added again."""
        return frozenset(self._rejected)

    def set_streams(self, streams: Iterable[str]) -> None:
        """Replace the registry; the running socket subscribes/unsubscribes the difference.

        Raises:
            ValueError: if a name is not a valid stream (see :func:`feeds.routing.parse_stream`).
        """
        wanted = set(streams)
        stale_after = self._config.stale_after_s
        thresholds = {stream: stale_threshold_s(stream, stale_after) for stream in wanted}
        for stream in self._desired - wanted:
            self._last_data.pop(stream, None)
            if stream in self._stale:
                self._stale.discard(stream)
                self._stats.stale_streams -= 1
        self._desired = wanted
        self._thresholds = thresholds
        self._rejected &= wanted
        self._solo &= wanted
        self._escalated &= wanted
        self._resub_due &= wanted
        self._given_up &= wanted
        for stream in list(self._resub_attempts):
            if stream not in wanted:
                del self._resub_attempts[stream]
        self._wake.set()

    # ----------------------------------------------------------------- run loop

    async def run(self) -> None:
        """Connect, subscribe and read until cancelled; reconnects on every failure.

        Never raises on network errors; unexpected errors are logged with a traceback and
        handled like a dropped connection. Cancellation closes the socket (both sockets while
        a rotation overlaps).
        """
        successor: _Successor | None = None
        while True:
            if successor is None:
                await self._pacer.wait()
                self._status(FeedState.CONNECTING, reason=self.url)
            # A rotated-to socket is already open and subscribed: no connect, no delay.
            inherited, successor = successor, None
            opened = False
            reason: str
            try:
                if inherited is not None:
                    ws = inherited.ws
                else:
                    ws = await self._connect()
                    self._backoff.connected()
                    self._stats.connections_open += 1
                opened = True
                try:
                    reason, successor = await self._session(ws, inherited)
                finally:
                    self._stats.connections_open -= 1
                    await ws.close()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
                reason = _describe_error(exc, self.url)
            except Exception as exc:
                logger.exception("%s: unexpected error", self.label)
                reason = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                if opened and successor is None:
                    self._backoff.disconnected()
            if successor is not None:
                continue
            delay = self._backoff.next_delay()
            self.reconnects += 1
            self._stats.reconnects += 1
            if opened:
                logger.warning("%s: %s; reconnecting in %.2f s", self.label, reason, delay)
            else:
                logger.warning("%s: %s; retrying in %.2f s", self.label, reason, delay)
                self._status(FeedState.OFFLINE, reason=reason)
            self._status(FeedState.RECONNECTING, reason=reason, retry_in=delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> ClientConnection:
        """Open one socket to :attr:`url` (the handshake errors propagate)."""
        return await connect(
            self.url,
            max_size=self._config.max_frame_bytes,
            open_timeout=self._open_timeout,
            close_timeout=self._close_timeout,
            ping_interval=20.0,
            ping_timeout=20.0,
            proxy=self._proxy,
        )

    async def _session(
        self, ws: ClientConnection, inherited: _Successor | None
    ) -> tuple[str, _Successor | None]:
        """Serve one open socket; returns why it ended and, after a rotation, the socket
        that took over (open, subscribed, already delivering)."""
        if inherited is None:
            self._rotation = None
            self._subscribed = set()
            self._last_data = {}
            self._last_control = float("-inf")
            self._live = False
            logger.info("%s: connected to %s", self.label, self.url)
        else:
            # The streams never stopped: their silence timers carry on across the swap.
            now = self._clock()
            self._subscribed = set(inherited.subscribed)
            self._last_data = {
                stream: self._last_data.get(stream, now)
                for stream in self._subscribed
                if self._thresholds.get(stream) is not None
            }
            self._last_control = inherited.last_control
        self._pending = {}
        self._audit_due = True
        self._retries = []
        self._resub_due = set()
        self._resub_attempts = {}
        self._given_up = set()
        opened = inherited.opened if inherited is not None else self._clock()
        reader = asyncio.create_task(self._read(ws), name=f"{self.label}-reader")
        control = asyncio.create_task(self._control(ws), name=f"{self.label}-control")
        watchdog = asyncio.create_task(self._watchdog(ws, opened), name=f"{self.label}-watchdog")
        tasks: list[asyncio.Task[Any]] = [reader, control, watchdog]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if watchdog in done and not watchdog.cancelled() and watchdog.exception() is None:
                result = watchdog.result()
                if isinstance(result, _Successor):
                    control.cancel()  # the old socket sends nothing more
                    try:
                        await self._hand_over(ws, reader, result, opened)
                    except BaseException:
                        await self._discard(result)
                        raise
                    return "rotated", result
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for ender in (watchdog, control):
            # Closing on purpose: the caller's ``ws.close()`` sends the close frame.
            if ender in done and not ender.cancelled() and ender.exception() is None:
                return str(ender.result()), None
        for task in done:
            exc = None if task.cancelled() else task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed):
                raise exc
        return _describe_close(ws.close_code, ws.close_reason or ""), None

    async def _read(self, ws: ClientConnection, successor: _Successor | None = None) -> None:
        """Read ``ws`` until it closes; ``successor``: the socket is a rotation's new one
        still warming up (its control replies are the warm-up's)."""
        try:
            async for message in ws:
                self._on_message(message, ws, successor)
        finally:
            if successor is not None:
                successor.wake.set()  # a warm-up waiting on this socket sees it end

    # ----------------------------------------------------------------- rotation

    def _must_match(self, stream: str, wait_s: float) -> bool:
        """Whether a rotation waits for ``stream``'s first frame on the new socket: streams
        that push at least every ``wait_s`` seconds while alive (not trades, liquidations or
        klines, which may be silent that long) and are flowing on the old socket."""
        threshold = self._thresholds.get(stream)
        return (
            threshold is not None
            and threshold <= wait_s
            and parse_stream(stream).kind not in LIQUIDITY_PACED
            and stream not in self._stale
            and stream not in self._given_up
        )

    async def _warm_up(self, old: ClientConnection) -> _Successor:
        """Open the new socket of a rotation, subscribe the same streams and wait until it
        delivers what the old one does.

        Returns:
            The new socket, still read by its own reader task (the caller hands it over or
            discards it).

        Raises:
            _RotationFailed: naming why the new socket cannot take over (connect error,
                SUBSCRIBE rejected or unanswered within ``control_timeout_s``, socket closed,
                no matching frame on a stream that must flow within the wait).
        """
        await self._pacer.wait()
        try:
            ws = await self._connect()
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            raise _RotationFailed(_describe_error(exc, self.url)) from None
        self._stats.connections_open += 1
        successor = _Successor(ws, opened=self._clock())
        streams = sorted(self._desired - self._rejected)
        rotation = _Rotation(Overlap(streams), old=old, new=ws, wake=successor.wake)
        self._rotation = rotation
        successor.reader = asyncio.create_task(
            self._read(ws, successor), name=f"{self.label}-reader-next"
        )
        keep = False
        try:
            interval = self._config.subscribe_interval_s
            batch = self._config.subscribe_batch
            for start in range(0, len(streams), batch):
                params = tuple(streams[start : start + batch])
                wait = successor.last_control + interval - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                request_id = self._next_id
                self._next_id += 1
                successor.pending[request_id] = params
                successor.last_control = self._clock()
                body = {"method": "SUBSCRIBE", "params": list(params), "id": request_id}
                await ws.send(msgspec.json.encode(body).decode())
            timeout = self._config.control_timeout_s
            if not await self._until(successor, lambda: not successor.pending, timeout):
                ids = ", ".join(str(request_id) for request_id in successor.pending)
                raise _RotationFailed(f"SUBSCRIBE id={ids} unanswered within {timeout:.1f} s")
            successor.subscribed = set(streams)
            wait_s = ROTATION_WAIT_STALE_FACTOR * self._config.stale_after_s
            required = [stream for stream in streams if self._must_match(stream, wait_s)]
            overlap = rotation.overlap

            def caught_up() -> bool:
                return not overlap.unmatched(required) and not overlap.holding

            if not await self._until(successor, caught_up, wait_s):
                missing = overlap.unmatched(required)
                if missing:
                    raise _RotationFailed(
                        f"no data matching the old connection within {wait_s:.1f} s on "
                        f"{len(missing)} stream(s): {_names(missing)}"
                    )
                # Only frames waiting for a quiet stream of the old socket: its close and
                # final read sort them out.
            keep = True
            return successor
        except ConnectionClosed as exc:
            raise _RotationFailed(_describe_error(exc, self.url)) from None
        finally:
            if not keep:
                await self._discard(successor)

    async def _until(
        self, successor: _Successor, done: Callable[[], bool], within_s: float
    ) -> bool:
        """Wait until ``done()`` (re-checked whenever either socket delivers or replies);
        False after ``within_s`` seconds.

        Raises:
            _RotationFailed: the new socket closed or had a SUBSCRIBE rejected.
        """
        deadline = self._clock() + within_s
        while True:
            if successor.error:
                raise _RotationFailed(successor.error)
            reader = successor.reader
            if reader is not None and reader.done():
                raise _RotationFailed(
                    _describe_close(successor.ws.close_code, successor.ws.close_reason or "")
                )
            if done():
                return True
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            successor.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await successor.wake.wait()

    async def _hand_over(
        self,
        old: ClientConnection,
        reader: asyncio.Task[None],
        successor: _Successor,
        opened: float,
    ) -> None:
        """Close the old socket, read it to its end (its last frames are still deduplicated)
        and let the new one deliver every stream."""
        rotation = self._rotation
        await old.close()
        # The close handshake already waited for the server; the reader only has to drain
        # what was queued before it.
        await asyncio.wait([reader], timeout=self._close_timeout)
        if not reader.done():
            reader.cancel()
            await asyncio.wait([reader])
        elif not reader.cancelled() and reader.exception() is not None:
            logger.debug("%s: old socket ended: %s", self.label, reader.exception())
        if successor.reader is not None:
            # Cancelling a read loses nothing: the next session's reader gets the next frame.
            successor.reader.cancel()
            await asyncio.wait([successor.reader])
            successor.reader = None
        age = self._clock() - opened
        self.rotations += 1
        self._stats.rotations += 1
        self._backoff.disconnected()
        self._backoff.connected()
        if rotation is not None:
            overlap = rotation.overlap
            for frame in overlap.old_finished():
                self._deliver(frame)
            rotation.expires = (
                self._clock() + ROTATION_WAIT_STALE_FACTOR * self._config.stale_after_s
            )
            if overlap.settled:
                self._rotation = None
            logger.info(
                "%s: rotated after %.0f s (make-before-break): %d of %d streams matched, "
                "%d duplicate frames dropped",
                self.label,
                age,
                overlap.matched,
                len(overlap.streams),
                overlap.duplicates,
            )
        self._status(FeedState.LIVE, reason=f"rotated to a new connection after {age:.0f} s")

    async def _discard(self, successor: _Successor) -> None:
        """Close a rotation's new socket that will not take over."""
        rotation = self._rotation
        if rotation is not None and rotation.new is successor.ws:
            self._rotation = None
        if successor.reader is not None:
            successor.reader.cancel()
            await asyncio.wait([successor.reader])
            successor.reader = None
        await successor.ws.close()
        self._stats.connections_open -= 1

    # ----------------------------------------------------------------- frames

    def _on_message(
        self, message: str | bytes, ws: ClientConnection, successor: _Successor | None
    ) -> None:
        recv_time = wall_time_ms()
        try:
            frame = decode_frame(message)
        except BinanceDecodeError as exc:
            self._handler.on_bad_frame("", str(exc), message)
            return
        stream = frame.stream
        if stream:
            data = Frame(stream, frame.data, recv_time, message)
            rotation = self._rotation
            if rotation is None:
                self._deliver(data)
                return
            overlap = rotation.overlap
            if ws is rotation.old:
                passed = overlap.from_old(data)
            elif ws is rotation.new:
                passed = overlap.from_new(data)
            else:
                passed = [data]
            for item in passed:
                self._deliver(item)
            rotation.wake.set()  # a warm-up waiting for the streams to match re-checks
            if overlap.settled and self._rotation is rotation:
                self._rotation = None
        elif frame.id is not None:
            if successor is not None:
                self._on_successor_response(successor, frame)
            else:
                self._on_response(frame, message)
        else:
            self._handler.on_bad_frame("", "frame has neither 'stream' nor 'id'", message)

    def _on_successor_response(self, successor: _Successor, frame: BinanceFrame) -> None:
        params = successor.pending.pop(frame.id or 0, None)
        if params is None:
            logger.debug("%s: new socket: response to unknown id %s", self.label, frame.id)
            return
        error = frame.error_text
        if error is not None:
            successor.error = f"SUBSCRIBE of {_names(params)} rejected: {error}"
        successor.wake.set()

    def _deliver(self, data: Frame) -> None:
        """Hand one data frame to the handler (exactly once, whichever socket read it)."""
        stream = data.stream
        if stream:
            if stream in self._last_data:
                self._last_data[stream] = self._clock()
            if stream in self._stale:
                self._stale.discard(stream)
                self._stats.stale_streams -= 1
                # Flowing again: the stream starts over with a full re-subscribe budget.
                self._resub_attempts.pop(stream, None)
                self._escalated.discard(stream)
                self._given_up.discard(stream)
                self._status(FeedState.LIVE, stream=stream, reason="data resumed")
            if not self._live:
                self._live = True
                self._status(FeedState.LIVE)
            self._stats.frames += 1
            self._stats.last_frame_time = data.recv_time
            self._handler.on_data(stream, data.data, data.recv_time, data.raw)

    def _on_response(self, frame: BinanceFrame, message: str | bytes) -> None:
        request = self._pending.pop(frame.id or 0, None)
        if request is None:
            logger.debug("%s: response to unknown request id %s", self.label, frame.id)
            return
        self._wake.set()  # the audit waits for every SUBSCRIBE reply
        error = frame.error_text
        if error is not None:
            if request.method == "SUBSCRIBE":
                self._subscribe_rejected(request.params, error)
            else:
                logger.warning("%s: %s rejected: %s", self.label, request.method, error)
            return
        if request.method == "LIST_SUBSCRIPTIONS":
            self._audit(request, frame, message)

    def _subscribe_rejected(self, streams: tuple[str, ...], error: str) -> None:
        for stream in streams:
            self._subscribed.discard(stream)
            self._last_data.pop(stream, None)
        if len(streams) > 1:
            logger.warning(
                "%s: SUBSCRIBE of %d streams rejected (%s); retrying them one by one",
                self.label,
                len(streams),
                error,
            )
            self._solo.update(streams)
            self._wake.set()
            return
        (stream,) = streams
        logger.error("%s: SUBSCRIBE %s rejected: %s", self.label, stream, error)
        if stream in self._desired:
            self._rejected.add(stream)
        self._status(FeedState.OFFLINE, stream=stream, reason=f"subscribe rejected: {error}")

    def _audit(self, request: _Request, frame: BinanceFrame, message: str | bytes) -> None:
        """Compare the server's subscription list with what was subscribed when asked."""
        try:
            listed = LIST_RESULT_DECODER.decode(frame.result) if frame.result else None
        except msgspec.DecodeError as exc:
            self._handler.on_bad_frame("", f"LIST_SUBSCRIPTIONS result: {exc}", message)
            return
        server = set(listed or ())
        missing = (request.sent_subscribed & self._subscribed) - server
        extra = server - request.sent_subscribed - self._subscribed
        if missing:
            logger.warning(
                "%s: server lost %d subscription(s), resubscribing: %s",
                self.label,
                len(missing),
                ", ".join(sorted(missing)[:5]),
            )
            self._subscribed -= missing
        if extra:
            logger.warning("%s: server has %d unexpected subscription(s)", self.label, len(extra))
            # Marked subscribed so the control loop UNSUBSCRIBEs the unwanted ones.
            self._subscribed |= extra
        if missing or extra:
            self._wake.set()

    # ----------------------------------------------------------------- control messages

    def _next_request(self) -> _Request | None:
        """The next control message due (``attempt`` > 0: a re-send), or ``None``."""
        batch = self._config.subscribe_batch
        while self._retries:
            # Re-sends first, trimmed to what still applies: the registry may have moved on
            # while the lost request waited for its timeout.
            retry = self._retries[0]
            if retry.method == "SUBSCRIBE":
                keep = self._subscribed & (self._desired - self._rejected)
            elif retry.method == "UNSUBSCRIBE":
                keep = set(retry.params) - self._subscribed
            else:
                keep = set(retry.params)
            params = tuple(stream for stream in retry.params if stream in keep)
            if params or (retry.method == "LIST_SUBSCRIPTIONS" and self._subscribed):
                return _Request(retry.method, params, attempt=retry.attempt, id=retry.id)
            self._retries.pop(0)
        removed = self._subscribed - self._desired
        if removed:
            return _Request("UNSUBSCRIBE", tuple(sorted(removed)[:batch]))
        resubscribe = self._resub_due & self._subscribed
        if resubscribe:
            # The SUBSCRIBE half follows through the ``added`` branch below.
            return _Request("UNSUBSCRIBE", tuple(sorted(resubscribe)[:batch]))
        added = self._desired - self._subscribed - self._rejected
        if added:
            batched = added - self._solo
            if batched:
                return _Request("SUBSCRIBE", tuple(sorted(batched)[:batch]))
            return _Request("SUBSCRIBE", tuple(sorted(added)[:1]))
        if (
            self._audit_due
            and self._subscribed
            and not any(request.method == "SUBSCRIBE" for request in self._pending.values())
        ):
            # Audit what the server acknowledged: a lost SUBSCRIBE is the timeout's job.
            return _Request("LIST_SUBSCRIPTIONS", ())
        return None

    async def _control(self, ws: ClientConnection) -> str:
        """Send SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS until the registry matches, and
        re-send timed-out ones; returns (ending the session) when a control message stayed
        unanswered ``control_retries`` times more."""
        while True:
            self._wake.clear()
            broken = self._expire_requests()
            if broken is not None:
                return broken
            if self._next_request() is None:
                deadline = self._next_deadline()
                if deadline is None:
                    await self._wake.wait()
                else:
                    # Not ``wait_for``: on Python 3.11 it can swallow the session's cancel
                    # when the wake-up lands at the same moment.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, deadline - self._clock())):
                            await self._wake.wait()
                continue
            wait = self._last_control + self._config.subscribe_interval_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            # Recomputed after the pause: the registry may have changed meanwhile.
            request = self._next_request()
            if request is None:
                continue
            if request.attempt:
                self._retries.pop(0)
            method, params = request.method, list(request.params)
            if request.id:
                request_id = request.id  # a re-send: the same request, so the same id
            else:
                request_id = request.id = self._next_id
                self._next_id += 1
            body: dict[str, object] = {"method": method, "id": request_id}
            self._last_control = request.sent_at = self._clock()
            if method == "LIST_SUBSCRIPTIONS":
                self._audit_due = False
                request.sent_subscribed = frozenset(self._subscribed)
            else:
                body["params"] = params
            self._pending[request_id] = request
            if method == "SUBSCRIBE":
                self._subscribed.update(params)
                self._resub_due.difference_update(params)  # a fresh SUBSCRIBE does it
                for stream in params:
                    if self._thresholds.get(stream) is not None:
                        # The grace period of a new subscription starts now.
                        self._last_data[stream] = self._last_control
            elif method == "UNSUBSCRIBE":
                self._subscribed.difference_update(params)
                self._resub_due.difference_update(params)
            await ws.send(msgspec.json.encode(body).decode())
            logger.debug(
                "%s: sent %s id=%d (%d streams)", self.label, method, request_id, len(params)
            )

    def _next_deadline(self) -> float | None:
        """When the oldest unanswered control message times out (monotonic seconds)."""
        if not self._pending:
            return None
        oldest = min(request.sent_at for request in self._pending.values())
        return oldest + self._config.control_timeout_s

    def _expire_requests(self) -> str | None:
        """Drop control messages unanswered for ``control_timeout_s`` and queue their
        re-send; returns why the socket must be reopened once one ran out of re-sends."""
        timeout = self._config.control_timeout_s
        limit = self._config.control_retries
        now = self._clock()
        expired = [rid for rid, req in self._pending.items() if now - req.sent_at >= timeout]
        for request_id in expired:
            request = self._pending.pop(request_id)
            self.control_timeouts += 1
            streams = _names(request.params) or "-"
            sends = request.attempt + 1
            gave_up = request.attempt >= limit
            next_step = (
                f"unanswered {sends} times, reopening the connection"
                if gave_up
                else f"re-sending ({sends}/{limit})"
            )
            logger.warning(
                "%s: %s id=%d got no reply within %.1f s (streams: %s); %s",
                self.label,
                request.method,
                request_id,
                timeout,
                streams,
                next_step,
            )
            if gave_up:
                return (
                    f"{request.method} id={request_id} ({len(request.params)} streams) "
                    f"unanswered {sends} times"
                )
            self._retries.append(
                _Request(request.method, request.params, attempt=request.attempt + 1, id=request_id)
            )
            if request.method == "SUBSCRIBE":
                reason = f"SUBSCRIBE id={request_id} unanswered after {timeout:.1f} s; re-sending"
                for stream in request.params:
                    # Only streams still without data: a lost reply does not stop the data.
                    if (
                        stream in self._last_data
                        and self._last_data[stream] <= request.sent_at
                        and stream not in self._stale
                    ):
                        self._mark_stale(stream, reason)
        return None

    # ----------------------------------------------------------------- watchdog

    def _tick_s(self) -> float:
        bounds = [t for t in self._thresholds.values() if t is not None]
        base = min(bounds) / 4 if bounds else _MAX_WATCHDOG_TICK_S
        return min(_MAX_WATCHDOG_TICK_S, max(_MIN_WATCHDOG_TICK_S, base))

    async def _watchdog(self, ws: ClientConnection, opened: float) -> str | _Successor:
        """Mark silent streams stale and re-subscribe them, and rotate the socket
        ``rotate_after_s`` after ``opened`` (monotonic seconds).

        Returns (ending the session) the socket that is to take over once a rotation's new
        socket is ready, or why the socket must be reopened: every watched stream stale, a
        stream still silent after its re-subscribes, or a rotation whose new socket failed.
        """
        warm: asyncio.Task[_Successor] | None = None
        warm_age = 0.0  # seconds the socket had been open when its rotation began
        handed = False
        try:
            while True:
                if warm is None:
                    await asyncio.sleep(self._tick_s())
                else:
                    await asyncio.wait([warm], timeout=self._tick_s())
                now = self._clock()
                if warm is not None and warm.done():
                    exc = warm.exception()
                    if isinstance(exc, _RotationFailed):
                        self.rotation_fallbacks += 1
                        logger.warning(
                            "%s: make-before-break rotation failed: %s; reconnecting instead",
                            self.label,
                            exc,
                        )
                        return (
                            f"rotating after {warm_age:.0f} s (Binance cuts connections at "
                            f"24 h); the new connection failed: {exc}"
                        )
                    handed = True
                    return warm.result()  # re-raises anything unexpected
                if warm is None and now - opened >= self._config.rotate_after_s:
                    warm_age = now - opened
                    logger.info(
                        "%s: rotating after %.0f s (Binance cuts connections at 24 h): "
                        "opening the new connection first",
                        self.label,
                        now - opened,
                    )
                    warm = asyncio.create_task(self._warm_up(ws), name=f"{self.label}-rotate")
                rotation = self._rotation
                if rotation is not None and now >= rotation.expires:
                    # Only quiet streams of the last rotation were left unmatched: the old
                    # socket is long gone, nothing of it can still be in flight.
                    self._rotation = None
                reopen = self._check_silence(now)
                if reopen is not None:
                    return reopen
        finally:
            if warm is not None and not handed:
                if not warm.done():
                    warm.cancel()
                    await asyncio.wait([warm])
                elif not warm.cancelled() and warm.exception() is None:
                    await self._discard(warm.result())  # ready, but this session is ending

    def _check_silence(self, now: float) -> str | None:
        """One watchdog pass over the streams' silence (``now``: monotonic seconds); returns
        why the socket must be reopened, if it must."""
        if not self._last_data:
            return None
        all_stale = True
        silent_streams: list[str] = []
        for stream, last in self._last_data.items():
            threshold = self._thresholds.get(stream)
            if threshold is None:
                continue
            silent = now - last
            if silent <= threshold:
                all_stale = False
                continue
            silent_streams.append(stream)
            if stream not in self._stale:
                self._mark_stale(stream, f"no data for {silent:.1f} s")
        if all_stale:
            return f"all {len(self._last_data)} streams stale"
        return self._resubscribe_silent(silent_streams)

    def _resubscribe_silent(self, silent: list[str]) -> str | None:
        """Queue a re-subscribe of each silent stream not already being (re)subscribed;
        returns why the socket must be reopened when one has used up its re-subscribes."""
        busy = {stream for request in self._pending.values() for stream in request.params}
        busy.update(stream for request in self._retries for stream in request.params)
        limit = self._config.stream_resubscribes
        queued: list[str] = []
        for stream in sorted(silent):
            if (
                parse_stream(stream).kind in LIQUIDITY_PACED
                or stream in busy
                or stream in self._resub_due
                or stream in self._given_up
                or stream not in self._subscribed
            ):
                continue
            attempts = self._resub_attempts.get(stream, 0)
            if attempts < limit:
                self._resub_attempts[stream] = attempts + 1
                self._resub_due.add(stream)
                self.resubscribes += 1
                queued.append(stream)
                continue
            if stream in self._escalated:
                # Reopening did not help before: more reopens would only cut the healthy
                # streams off too (a dead symbol or a wrong route, FEEDS.md §4 A.3 and D).
                self._given_up.add(stream)
                logger.error(
                    "%s: %s still silent after %d re-subscribes and a reconnect; giving up on "
                    "it until data arrives (check the symbol status and route)",
                    self.label,
                    stream,
                    attempts,
                )
                self._status(
                    FeedState.OFFLINE,
                    stream=stream,
                    reason=f"no data after {attempts} re-subscribes and a reconnect",
                )
                continue
            self._escalated.add(stream)
            return f"{stream} silent after {attempts} re-subscribes"
        if queued:
            logger.warning(
                "%s: re-subscribing %d silent stream(s): %s",
                self.label,
                len(queued),
                _names(queued),
            )
            self._wake.set()
        return None

    def _mark_stale(self, stream: str, reason: str) -> None:
        self._stale.add(stream)
        self._stats.stale_streams += 1
        self._status(FeedState.STALE, stream=stream, reason=reason)

    # ----------------------------------------------------------------- statuses

    def _status(
        self,
        state: FeedState,
        *,
        stream: str = "",
        reason: str = "",
        retry_in: float | None = None,
    ) -> None:
        self._handler.on_status(
            FeedStatus(
                state=state,
                connection=self.label,
                stream=stream,
                reason=reason,
                retry_in=retry_in,
                reconnects=self.reconnects,
                time=wall_time_ms(),
            )
        )
