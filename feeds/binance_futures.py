"""Binance USDⓈ-M futures live market-data adapter (WebSocket, routed combined streams).

:class:`BinanceFuturesFeed` implements :class:`feeds.base.FeedAdapter`. It splits the wanted
streams by route (``/public`` vs ``/market``, never mixed on one socket), shards each route
into connections of at most ``max_streams_per_connection`` streams, runs one
:class:`feeds.connection.BinanceConnection` per shard, and turns every data frame into
normalised events for the sink.

Decoding takes two steps (nautilus ``BinanceFuturesDataClient._handle_ws_message``): the
connection reads the envelope's ``stream``; :class:`BinanceFrameDecoder` routes the stream
kind through a dict of handlers, each decoding with a ``msgspec`` decoder built once. A
malformed or unknown frame is counted in ``stats.decode_errors`` and logged (first, then
every 100th) with its stream; it never closes the socket.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import msgspec

from feeds.base import EventSink, FeedStats
from feeds.binance_schemas import (
    AGG_TRADE_DECODER,
    BOOK_TICKER_DECODER,
    COIN_M,
    DEPTH_UPDATE_DECODER,
    FORCE_ORDER_ANY_DECODER,
    FORCE_ORDER_DECODER,
    KLINE_DECODER,
    MARK_PRICE_ARRAY_DECODER,
    MARK_PRICE_DECODER,
    TICKER_ARRAY_DECODER,
    TICKER_DECODER,
    TRADE_DECODER,
    BinanceDecodeError,
    decode_frame,
)
from feeds.config import EndpointConfig, FeedConfig
from feeds.connection import BinanceConnection, ConnectPacer
from feeds.events import FeedStatus, MarketEvent
from feeds.routing import Route, parse_stream

logger = logging.getLogger(__name__)

PayloadHandler = Callable[[msgspec.Raw, int], Sequence[MarketEvent]]
"""Decodes one stream payload (raw JSON of ``data``) received at ``recv_time`` (ms UTC)."""

FrameHook = Callable[[str, int, str], None]
"""``frame_hook(route, recv_time_ms, raw_text)``: sees every raw data frame (recorder)."""

_ROUTES: tuple[Route, ...] = ("public", "market")
_LOG_EVERY = 100
_SAMPLE_CHARS = 200
_STREAM_CACHE_MAX = 10_000


class _AllMarketItem(Protocol):
    """An all-market array item that may be COIN-M (ticker, mark price)."""

    @property
    def st(self) -> int | None: ...

    def to_event(self, recv_time: int) -> MarketEvent: ...


class BinanceFrameDecoder:
    """Stream payload → normalised events, for every stream kind the adapter supports.

    Supported kinds: diff depth (``@depth[@speed]`` → :class:`DepthDiff`), partial depth
    (``@depth<N>[@speed]`` → :class:`DepthSnapshot` of the top N), ``@bookTicker`` and
    ``!bookTicker``, ``@trade``, ``@aggTrade``, ``@kline_<i>``, ``@markPrice[@1s]`` and
    ``!markPrice@arr[@1s]``, ``@forceOrder`` and ``!forceOrder@arr``, ``@ticker`` and
    ``!ticker@arr``. COIN-M items (``st`` == 2) of all-market streams are dropped and counted
    in :attr:`coin_m_dropped`.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, PayloadHandler] = {
            "depth": self._depth,
            "partialDepth": self._partial_depth,
            "bookTicker": self._book_ticker,
            "!bookTicker": self._book_ticker,
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "kline": self._kline,
            "markPrice": self._mark_price,
            "!markPrice": self._mark_price_array,
            "forceOrder": self._force_order,
            "!forceOrder": self._force_order_array,
            "ticker": self._ticker,
            "!ticker": self._ticker_array,
        }
        self._by_stream: dict[str, PayloadHandler] = {}
        self.coin_m_dropped = 0
        """COIN-M entries dropped from merged all-market streams."""

    def handler_for(self, stream: str) -> PayloadHandler:
        """The payload handler of ``stream``.

        Raises:
            ValueError: naming the stream, if the name is invalid or its kind has no decoder
                (e.g. ``@miniTicker``, ``@rpiDepth``).
        """
        handler = self._by_stream.get(stream)
        if handler is not None:
            return handler
        info = parse_stream(stream)
        handler = self._handlers.get(info.key)
        if handler is None:
            supported = ", ".join(sorted(self._handlers))
            raise ValueError(f"stream {stream!r}: no decoder for {info.key!r}; have {supported}")
        if len(self._by_stream) >= _STREAM_CACHE_MAX:
            self._by_stream.clear()  # bound the cache against a server inventing names
        self._by_stream[stream] = handler
        return handler

    def decode_data(
        self, stream: str, data: msgspec.Raw | bytes | str, recv_time: int
    ) -> Sequence[MarketEvent]:
        """Second step: decode the payload of ``stream``.

        Args:
            stream: The envelope's ``stream`` value.
            data: The raw JSON payload (the envelope's ``data``).
            recv_time: Local receive time, ms UTC, stamped on every event.

        Returns:
            The events (several for array streams, none for filtered COIN-M items).

        Raises:
            BinanceDecodeError: naming the stream, for unknown streams, malformed JSON, missing
                or mistyped fields, or an event type that does not match the stream.
        """
        try:
            handler = self.handler_for(stream)
        except ValueError as exc:
            raise BinanceDecodeError(str(exc)) from None
        try:
            return handler(data if isinstance(data, msgspec.Raw) else msgspec.Raw(data), recv_time)
        except (msgspec.DecodeError, ValueError) as exc:
            raise BinanceDecodeError(f"stream {stream!r}: {exc}") from None

    def decode_frame(self, raw: bytes | str, recv_time: int) -> tuple[str, Sequence[MarketEvent]]:
        """Both steps on one combined-stream frame ``{"stream":..,"data":..}``.

        Returns:
            ``(stream, events)``.

        Raises:
            BinanceDecodeError: on malformed frames, frames without ``stream`` or bad payloads.
        """
        frame = decode_frame(raw)
        if not frame.stream:
            raise BinanceDecodeError("frame has no 'stream' (not a combined-stream data frame)")
        return frame.stream, self.decode_data(frame.stream, frame.data, recv_time)

    # ------------------------------------------------------------------ handlers

    def _depth(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Diff depth ``<symbol>@depth[@100ms]``.

        ``{"e":"depthUpdate","E":1626992741037,"T":1626992741024,"s":"SUSHIUSDT",
        "U":600859599090,"u":600859600917,"pu":600859598061,
        "b":[["7.5040","813"],["7.6090","0"],["7.6110","2"]],
        "a":[["7.6150","1563"],["7.6220","3284"]]}``
        """
        return (DEPTH_UPDATE_DECODER.decode(data).to_event(recv_time),)

    def _partial_depth(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Partial book ``<symbol>@depth<5|10|20>[@100ms]``: top N, replaces the book top.

        Same payload shape as diff depth: ``{"e":"depthUpdate","E":..,"T":..,"s":"BTCUSDT",
        "U":..,"u":..,"pu":..,"b":[["63943.90","46.372"],...],"a":[...]}``
        """
        return (DEPTH_UPDATE_DECODER.decode(data).to_snapshot(recv_time),)

    def _book_ticker(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Best bid/ask ``<symbol>@bookTicker`` and ``!bookTicker``.

        ``{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2",
        "a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}``
        """
        msg = BOOK_TICKER_DECODER.decode(data)
        if msg.st == COIN_M:
            self.coin_m_dropped += 1
            return ()
        return (msg.to_event(recv_time),)

    def _trade(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Raw trade ``<symbol>@trade``.

        ``{"e":"trade","E":1721347022956,"T":1721347022956,"s":"BTCUSDT","t":5182005737,
        "p":"63943.90","q":"0.003","X":"MARKET","m":true}``
        """
        return (TRADE_DECODER.decode(data).to_event(recv_time),)

    def _agg_trade(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Aggregated trade ``<symbol>@aggTrade``.

        ``{"e":"aggTrade","E":1626992741474,"a":39543040,"s":"CTKUSDT","p":"1.01100","q":"7",
        "f":70386391,"l":70386391,"T":1626992741319,"m":false}``
        """
        return (AGG_TRADE_DECODER.decode(data).to_event(recv_time),)

    def _kline(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Kline ``<symbol>@kline_<interval>``.

        ``{"e":"kline","E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,
        "T":1626992759999,"s":"CTKUSDT","i":"1m","f":23961275,"L":23961322,"o":"1.01000",
        "c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","n":48,"x":false,
        "q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}``
        """
        return (KLINE_DECODER.decode(data).to_event(recv_time),)

    def _mark_price(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Mark price ``<symbol>@markPrice[@1s]``.

        ``{"e":"markPriceUpdate","E":1680652701000,"s":"BTCUSDT","p":"28147.27373413",
        "P":"28142.15563565","i":"28159.75642857","r":"0.00002754","T":1680652800000}``
        """
        return (MARK_PRICE_DECODER.decode(data).to_event(recv_time),)

    def _mark_price_array(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """All mark prices ``!markPrice@arr[@1s]``: an array of ``markPriceUpdate``.

        ``[{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11185.87786614",
        "i":"11784.62659091","P":"11784.25641265","r":"0.00030000","T":1562306400000}]``
        """
        items = MARK_PRICE_ARRAY_DECODER.decode(data)
        return self._keep_usdm(items, recv_time)

    def _force_order(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """Liquidation ``<symbol>@forceOrder``.

        ``{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT",
        "f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014",
        "T":1568014460893}}``
        """
        return (FORCE_ORDER_DECODER.decode(data).to_event(recv_time),)

    def _force_order_array(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """All liquidations ``!forceOrder@arr``: one ``forceOrder`` object per push (as the
        docs show) or an array of them.

        ``{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL",...}}``
        """
        decoded = FORCE_ORDER_ANY_DECODER.decode(data)
        items = decoded if isinstance(decoded, list) else [decoded]
        return tuple(item.to_event(recv_time) for item in items)

    def _ticker(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """24 h ticker ``<symbol>@ticker``.

        ``{"e":"24hrTicker","E":123456789,"s":"BTCUSDT","p":"0.0015","P":"250.00",
        "w":"0.0018","c":"0.0025","Q":"10","o":"0.0010","h":"0.0025","l":"0.0010",
        "v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}``
        """
        return self._keep_usdm([TICKER_DECODER.decode(data)], recv_time)

    def _ticker_array(self, data: msgspec.Raw, recv_time: int) -> Sequence[MarketEvent]:
        """All tickers ``!ticker@arr``: the symbols that changed; since the 2026-06-30 CM–UM
        integration it also carries COIN-M symbols (``"st":2``), which are dropped.

        ``[{"e":"24hrTicker","E":123456789,"s":"BTCUSDT",...,"ps":"BTCUSDT","st":1},
        {"e":"24hrTicker","E":123456789,"s":"BTCUSD_PERP",...,"ps":"BTCUSD","st":2}]``
        """
        return self._keep_usdm(TICKER_ARRAY_DECODER.decode(data), recv_time)

    def _keep_usdm(self, items: Iterable[_AllMarketItem], recv_time: int) -> Sequence[MarketEvent]:
        events: list[MarketEvent] = []
        for item in items:
            if item.st == COIN_M:
                self.coin_m_dropped += 1
            else:
                events.append(item.to_event(recv_time))
        return events


class BinanceFuturesFeed:
    """Live Binance USDⓈ-M market data over routed combined-stream WebSockets.

    Args:
        endpoints: ``ws_url`` is the WebSocket root (point it at a loopback/replay server in
            tests and replay).
        config: Connection policy: shard size, SUBSCRIBE batching and pacing, backoff,
            staleness, rotation, ``max_frame_bytes``.
        frame_hook: Called as ``frame_hook(route, recv_time_ms, raw_text)`` with every raw
            data frame, before decoding (used by ``perpscope record``).
        connect_pacer: Process-wide connect pacer to share with other adapters; by default one
            with ``config.connect_interval_s`` is created.
        rng: Random source for the backoff jitter (tests).

    Example:
        ``feed.set_streams(["btcusdt@kline_1m", "btcusdt@depth20@100ms"])`` then
        ``await feed.run(engine.on_event)`` in a task; cancel the task to stop.
    """

    exchange = "binanceusdm"

    def __init__(
        self,
        endpoints: EndpointConfig,
        config: FeedConfig,
        *,
        frame_hook: FrameHook | None = None,
        connect_pacer: ConnectPacer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.stats = FeedStats()
        self._endpoints = endpoints
        self._config = config
        self._frame_hook = frame_hook
        self._pacer = connect_pacer or ConnectPacer(config.connect_interval_s)
        self._rng = rng
        self.decoder = BinanceFrameDecoder()
        """The payload decoder (exposed for replay tools and tests)."""
        self._connections: dict[str, BinanceConnection] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._sink: EventSink | None = None
        self._streams: list[str] = []

    # ------------------------------------------------------------------ subscription

    @property
    def streams(self) -> list[str]:
        """The stream set last given to :meth:`set_streams` (deduplicated, in order)."""
        return list(self._streams)

    @property
    def connections(self) -> dict[str, frozenset[str]]:
        """Connection label → its streams (e.g. ``{"public-0": {...}, "market-0": {...}}``)."""
        return {label: conn.streams for label, conn in self._connections.items()}

    def set_streams(self, streams: list[str]) -> None:
        """Replace the subscribed stream set (lowercase Binance stream names).

        Streams are split by route and packed into connections of at most
        ``max_streams_per_connection``; streams already on a connection stay there, new ones
        fill free room first, then new connections (``public-<n>``, ``market-<n>``). Running
        connections subscribe/unsubscribe the difference; emptied connections are closed.

        Raises:
            ValueError: naming the stream, for an invalid name or a kind without a decoder.
                Nothing changes when any name is rejected.
        """
        by_route: dict[Route, list[str]] = {route: [] for route in _ROUTES}
        for stream in dict.fromkeys(streams):
            self.decoder.handler_for(stream)  # validates name and decoder support
            by_route[parse_stream(stream).route].append(stream)
        for route in _ROUTES:
            self._assign(route, by_route[route])
        self._streams = [s for names in by_route.values() for s in names]
        self.stats.streams = len(self._streams)
        self.stats.connections_total = len(self._connections)

    def _assign(self, route: Route, streams: list[str]) -> None:
        limit = self._config.max_streams_per_connection
        wanted = set(streams)
        existing = sorted(
            (conn for conn in self._connections.values() if conn.route == route),
            key=lambda conn: int(conn.label.rsplit("-", 1)[1]),
        )
        plan: dict[str, set[str]] = {conn.label: set(conn.streams & wanted) for conn in existing}
        placed = set().union(*plan.values()) if plan else set()
        fresh = [stream for stream in streams if stream not in placed]
        for conn in existing:
            room = limit - len(plan[conn.label])
            if room > 0 and fresh:
                plan[conn.label].update(fresh[:room])
                fresh = fresh[room:]
        for conn in existing:
            if plan[conn.label]:
                conn.set_streams(plan[conn.label])
            else:
                self._remove(conn.label)
        index = 0
        while fresh:
            while f"{route}-{index}" in self._connections:
                index += 1
            label = f"{route}-{index}"
            conn = BinanceConnection(
                label,
                route,
                self._endpoints.ws_url,
                self._config,
                handler=_Dispatch(self, label, route),
                pacer=self._pacer,
                stats=self.stats,
                rng=self._rng,
            )
            conn.set_streams(fresh[:limit])
            fresh = fresh[limit:]
            self._connections[label] = conn
            if self._sink is not None:
                self._start(conn)

    def _remove(self, label: str) -> None:
        conn = self._connections.pop(label)
        conn.set_streams(())  # releases its stale-stream count
        task = self._tasks.pop(label, None)
        if task is not None:
            task.cancel()
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    def _start(self, conn: BinanceConnection) -> None:
        task = asyncio.create_task(conn.run(), name=f"{self.exchange}:{conn.label}")
        task.add_done_callback(self._task_done)
        self._tasks[conn.label] = task

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s ended with an error", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------ run

    async def run(self, sink: EventSink) -> None:
        """Run every connection, delivering events and statuses to ``sink``, until cancelled.

        Never raises on network errors (connections reconnect and report ``FeedStatus``).
        Cancellation closes every socket and waits for every task it started.

        Raises:
            RuntimeError: if ``run`` is already active on this adapter.
        """
        if self._sink is not None:
            raise RuntimeError("BinanceFuturesFeed.run is already running")
        self._sink = sink
        try:
            for conn in self._connections.values():
                self._start(conn)
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            tasks = [*self._tasks.values(), *self._retiring]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            self._tasks.clear()
            self._retiring.clear()
            self._sink = None

    # ------------------------------------------------------------------ frame handling

    def _on_data(
        self,
        connection: str,
        route: Route,
        stream: str,
        data: msgspec.Raw,
        recv_time: int,
        raw: str | bytes,
    ) -> None:
        if self._frame_hook is not None:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self._frame_hook(route, recv_time, text)
        try:
            events = self.decoder.decode_data(stream, data, recv_time)
        except BinanceDecodeError as exc:
            self._on_bad_frame(connection, stream, str(exc), raw)
            return
        sink = self._sink
        if sink is not None:
            for event in events:
                sink(event)

    def _on_bad_frame(self, connection: str, stream: str, reason: str, raw: str | bytes) -> None:
        self.stats.decode_errors += 1
        count = self.stats.decode_errors
        if count % _LOG_EVERY == 1:
            sample = raw[:_SAMPLE_CHARS]
            logger.warning(
                "%s: bad frame on %s stream %r (%d so far, logged every %d): %s; frame: %r",
                self.exchange,
                connection,
                stream,
                count,
                _LOG_EVERY,
                reason,
                sample,
            )

    def _on_status(self, status: FeedStatus) -> None:
        sink = self._sink
        if sink is not None:
            sink(status)


class _Dispatch:
    """One connection's :class:`feeds.connection.FrameHandler`: forwards to the adapter with
    the connection's label and route (keeps these callbacks off the adapter's public API)."""

    __slots__ = ("_feed", "_label", "_route")

    def __init__(self, feed: BinanceFuturesFeed, label: str, route: Route) -> None:
        self._feed = feed
        self._label = label
        self._route: Route = route

    def on_data(self, stream: str, data: msgspec.Raw, recv_time: int, raw: str | bytes) -> None:
        self._feed._on_data(self._label, self._route, stream, data, recv_time, raw)

    def on_bad_frame(self, stream: str, reason: str, raw: str | bytes) -> None:
        self._feed._on_bad_frame(self._label, stream, reason, raw)

    def on_status(self, status: FeedStatus) -> None:
        self._feed._on_status(status)
