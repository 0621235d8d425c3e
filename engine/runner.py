"""The market pipeline: universe → REST backfill → WebSocket feed → engine, live or replayed.

Replay is not a separate code path: with ``replay`` set, a loopback server speaking Binance's
REST and WebSocket wire format is started from the recorded data and the very same REST client
(ccxt) and WebSocket adapter are pointed at it.

``MarketRunner`` implements :class:`engine.service.MarketService` for the TUI, and
``run_to_completion`` for the headless scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.alerts.config import AlertsConfig
from engine.calibration import Calibrator, load_calibrator
from engine.config import EngineConfig
from engine.desk import Desk
from engine.engine import Engine
from engine.history import SignalHistory, TrackRecord
from engine.micro import MicroConfig
from engine.microfeed import MicroFeed
from engine.models import CandleSeries, EngineSnapshot, FeedHealth, MicroView
from engine.outcomes import OutcomeConfig
from engine.picks import PicksConfig
from engine.version import ENGINE_VERSION
from feeds.backoff import Backoff
from feeds.binance_futures import BinanceFuturesFeed
from feeds.config import (
    BookConfig,
    EndpointConfig,
    FeedConfig,
    OpenInterestConfig,
    UniverseConfig,
)
from feeds.cooldown_state import COOLDOWN_STATE_FILE
from feeds.events import DepthDiff, FeedEvent, FeedState, FeedStatus, Kline
from feeds.intervals import interval_ms
from feeds.replay.errors import ReplayDataError
from feeds.replay.server import ReplayServer
from feeds.rest import BinanceRest
from feeds.routing import (
    FORCE_ORDER_ALL,
    MARK_PRICE_ALL,
    TICKER_ALL,
    kline_stream,
    parse_stream,
)
from storage.db import Database, DatabaseError
from storage.kline_cache import KlineCache

log = logging.getLogger(__name__)

CAPTURE_KINDS = frozenset({"trade", "aggTrade", "bookTicker", "markPrice"})
"""Recorded stream kinds a capture replay subscribes besides klines and mark prices."""

RECOMPUTE_INTERVAL_S = 0.25
"""How often dirty series are re-evaluated (bounded by the UI refresh anyway)."""


@dataclass(frozen=True)
class ReplayOptions:
    """Where and how to replay.

    Attributes:
        path: Kline history folder/file or raw WebSocket capture.
        speed: Multiple of real time; ``None`` = as fast as consumed.
        start_ms: Replay start, ms UTC; ``None`` = leave the configured history for backfill.
    """

    path: Path
    speed: float | None
    start_ms: int | None = None


class MarketRunner:
    """Runs the pipeline and answers the UI's snapshot and candle queries.

    Args:
        endpoints: Exchange base URLs (ignored in replay: the loopback server's are used).
        universe: Which symbols to scan.
        feed: WebSocket/REST policy.
        engine_config: Engine sections.
        data_dir: Directory for the kline cache and the REST cooldown state (live only);
            ``None`` disables both.
        replay: Replay options, or ``None`` to go live.
        wall_clock: Wall clock in ms UTC (injected by tests).
        books: Order book section (which symbols get a book, sync policy).
        open_interest: Open-interest polling section.
        micro: Microstructure features, score and scalp signal section.
        db_path: SQLite database for signal history (``":memory:"`` keeps it for this run
            only); ``None`` stores nothing.
        outcomes: Outcome horizon and costs of the tracked signals.
        picks: Picks settings (expiry, paper sizing).
        alerts: Alert rules and channels.
        desk: Run the desk (picks, watchlist, alerts) on the database; headless commands
            leave it off so they never send alerts.
    """

    def __init__(
        self,
        *,
        endpoints: EndpointConfig,
        universe: UniverseConfig,
        feed: FeedConfig,
        engine_config: EngineConfig,
        data_dir: Path | None,
        replay: ReplayOptions | None = None,
        wall_clock: Callable[[], int] | None = None,
        books: BookConfig | None = None,
        open_interest: OpenInterestConfig | None = None,
        micro: MicroConfig | None = None,
        db_path: Path | str | None = None,
        outcomes: OutcomeConfig | None = None,
        picks: PicksConfig | None = None,
        alerts: AlertsConfig | None = None,
        desk: bool = True,
    ) -> None:
        self._endpoints = endpoints
        self._universe_cfg = universe
        self._feed_cfg = feed
        self._replay = replay
        self._wall_clock = wall_clock or (lambda: int(time.time() * 1000))
        # Replays never touch the cache: their candles are from another time.
        self._cache = KlineCache(data_dir / "klines") if data_dir and not replay else None
        # Likewise the REST cooldown file: a replay's loopback 429/418 must not halt live REST.
        self._cooldown_state = data_dir / COOLDOWN_STATE_FILE if data_dir and not replay else None
        self._server: ReplayServer | None = None
        self._mode = "REPLAY" if replay else "CONNECTING"
        self._reason = ""
        self._retry_at: float | None = None
        self._backfill = (0, 0)
        self._statuses: dict[str, FeedStatus] = {}
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self._adapter: BinanceFuturesFeed | None = None
        self._buffer: list[Kline] | None = None
        self._book_cfg = books or BookConfig()
        self._oi_cfg = open_interest or OpenInterestConfig()
        self._rest: BinanceRest | None = None
        self.micro_feed: MicroFeed | None = None
        """Books and open interest (set once the universe is known)."""
        self._db_path = db_path
        self._outcomes = outcomes
        self._db: Database | None = None
        self.history: SignalHistory | None = None
        """Signal history and track record (``None`` without a database)."""
        self._picks_cfg = picks or PicksConfig()
        self._alerts_cfg = alerts or AlertsConfig()
        self._desk: Desk | None = None
        self._desk_wanted = desk
        self._bar_closed = asyncio.Event()
        self._calibrator: Calibrator | None = None
        self.ready = asyncio.Event()
        """Set once the universe is known and backfill has finished."""
        if replay is not None:
            # Replayed klines only push at bar open and close; a symbol is stale only when it
            # misses bars, so the limit scales with the base timeframe.
            base = engine_config.timeframes.timeframes[0]
            stale = max(engine_config.stale_after_s, 2.5 * interval_ms(base) / 1000)
            engine_config = engine_config.model_copy(update={"stale_after_s": stale})
        self._engine_config = engine_config
        timeframes = engine_config.timeframes.timeframes
        self._streamed = timeframes if feed.kline_streams == "all" else timeframes[:1]
        self.engine = Engine(
            engine_config, clock=self._clock, streamed_timeframes=self._streamed, micro=micro
        )
        """The engine (exposed for headless use and tests)."""

    @property
    def replay_server(self) -> ReplayServer | None:
        """The loopback replay server while one runs (for status and fault tests)."""
        return self._server

    # -- MarketService -------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        """The current frozen snapshot (see :class:`engine.service.MarketService`)."""
        return self.engine.snapshot(self._health())

    def candles(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """Candles for charts (see :class:`engine.service.MarketService`)."""
        return self.engine.candles(symbol, timeframe, limit)

    def set_risk_profile(self, name: str) -> None:
        """Switch the risk profile (see :class:`engine.service.MarketService`)."""
        self.engine.set_risk_profile(name)

    def micro(self, symbol: str) -> MicroView | None:
        """Order book pane data (see :class:`engine.service.MarketService`)."""
        return self.engine.micro_view(symbol)

    def desk(self) -> Desk | None:
        """Picks, watchlist and alerts (see :class:`engine.service.MarketService`)."""
        return self._desk

    def record_verdict(self, symbol: str, decision: str, target: float | None) -> bool:
        """Track an analyst verdict (see :class:`engine.service.MarketService`)."""
        if self.history is None:
            return False
        return self.history.record_verdict(self.snapshot(), symbol, decision, target)

    def track_record(self) -> TrackRecord | None:
        """Outcomes of emitted signals (see :class:`engine.service.MarketService`)."""
        return self.history.track_record if self.history is not None else None

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Book on demand (see :class:`engine.service.MarketService`)."""
        if self.micro_feed is not None:
            self.micro_feed.want_book(symbol, wanted)

    async def run(self) -> None:
        """Run until cancelled; network and data errors become health, never exceptions.

        Unusable replay data stops the pipeline with OFFLINE health naming the file; there is
        nothing to retry.
        """
        try:
            try:
                await self._bootstrap()
            except (ReplayDataError, ValueError) as exc:
                self._mode, self._reason = "OFFLINE", f"replay data error: {exc}"
                log.error("%s", self._reason)
                return
            assert self._adapter is not None
            tasks = self._start_workers()
            try:
                await self._release_replay()
                while True:
                    await self.engine.recompute()
                    self.engine.evaluate_micro()
                    self._observe_history()
                    # Wake at once when a base-timeframe bar closes: the signal of that bar
                    # is evaluated (and stored) before the next bar can replace it.
                    self._bar_closed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._bar_closed.wait(), RECOMPUTE_INTERVAL_S)
            finally:
                await _cancel(tasks)
        finally:
            await self._shutdown()

    async def run_to_completion(self, timeout_s: float | None = None) -> EngineSnapshot:
        """Headless scan: backfill (live) or replay to the end, recompute, return the snapshot.

        Raises:
            TimeoutError: if the replay does not finish within ``timeout_s``.
            feeds.rest.RestError: if the exchange cannot be reached (live).
        """
        try:
            async with asyncio.timeout(timeout_s):
                await self._bootstrap(retry=False)
                if self._server is not None:
                    assert self._adapter is not None
                    tasks = self._start_workers()
                    try:
                        await self._release_replay()
                        await self._server.wait_finished()
                        # Every frame the server sent must have been consumed before we read.
                        while self._adapter.stats.frames < self._server.frames_sent:  # noqa: ASYNC110 - counters, no event to wait on
                            await asyncio.sleep(0.02)
                    finally:
                        await _cancel(tasks)
                while await self.engine.recompute():
                    pass
                self.engine.evaluate_micro()
                self._observe_history()
                return self.snapshot()
        finally:
            await self._shutdown()

    # -- internals -----------------------------------------------------------------------

    def _calibrated(self, kind: str, confidence: float) -> float | None:
        # Only the technical signal's confidence is calibrated (the micro score is not a
        # probability model of its own yet).
        if kind != "technical" or self._calibrator is None:
            return None
        return self._calibrator.apply(confidence)

    def _observe_history(self) -> None:
        if self.history is None and self._desk is None:
            return
        snapshot = self.snapshot()
        if self.history is not None:
            self.history.observe(snapshot, self.engine.store.view)
        if self._desk is not None:
            self._desk.on_snapshot(snapshot)

    async def _open_history(self) -> None:
        if self._db_path is None or self.history is not None:
            return
        db = Database(self._db_path)
        try:
            await db.open()
        except DatabaseError as exc:
            # The scanner works without history; the log says why nothing is tracked.
            log.error("%s; signals are not stored", exc)
            return
        self._db = db
        source = (
            f"replay:{self._replay.path.name}" if self._replay is not None else "live:binanceusdm"
        )
        history = SignalHistory(
            db, source=source, timeframes=list(self._engine_config.timeframes.timeframes),
            outcomes=self._outcomes, calibrate=self._calibrated,
        )
        await history.start()
        self.history = history
        # A model fitted by `perpscope backtest --save-calibration` for this engine version.
        self._calibrator = await load_calibrator(history.store, ENGINE_VERSION)
        if self._calibrator.calibrated:
            self.engine.set_calibrator(self._calibrator.apply)
        if not self._desk_wanted:
            return
        desk = Desk(db, picks=self._picks_cfg, alerts=self._alerts_cfg, clock=self._clock)
        await desk.start()
        self._desk = desk
        # Watched symbols always get an order book (mark prices come for every symbol).
        if self.micro_feed is not None:
            feed = self.micro_feed
            for symbol in desk.watchlist():
                feed.want_book(symbol)
            desk.on_watch_change(feed.want_book)

    def _start_workers(self) -> list[asyncio.Task[None]]:
        assert self._adapter is not None
        tasks = [asyncio.create_task(self._adapter.run(self._on_event), name="feed")]
        if self.micro_feed is not None and self._rest is not None:
            tasks.append(asyncio.create_task(self.micro_feed.run(self._rest), name="books"))
        return tasks

    def _clock(self) -> int:
        if self._server is not None:
            return self._server.replay_time_ms
        return self._wall_clock()

    async def _bootstrap(self, *, retry: bool = True) -> None:
        endpoints = self._endpoints
        if self._replay is not None:
            tf = self._engine_config.timeframes
            server = ReplayServer(
                self._replay.path,
                speed=self._replay.speed,
                start_ms=self._replay.start_ms,
                timeframes=tf.timeframes,
                history_bars={code: tf.bars_for(code) for code in tf.timeframes},
                autostart=False,
            )
            await server.start()
            self._server = server
            endpoints = EndpointConfig(rest_url=server.rest_url, ws_url=server.ws_url)
        rest = BinanceRest(endpoints, self._feed_cfg, cooldown_state=self._cooldown_state)
        # The same client serves depth snapshots and open interest after the backfill.
        self._rest = rest
        backoff = Backoff(self._feed_cfg.backoff_initial_s, self._feed_cfg.backoff_max_s)
        while True:
            try:
                symbols = await rest.universe(self._universe_cfg)
                self.engine.set_universe(symbols)
                self.engine.set_tick_sizes(rest.tick_sizes)
                self.engine.set_onboard_dates(rest.onboard_dates)
                self._setup_micro(symbols)
                self._buffer = []
                self._adapter = BinanceFuturesFeed(endpoints, self._feed_cfg)
                self._adapter.set_streams(self._streams(symbols))
                await self._run_backfill(rest, symbols)
                break
            except Exception as exc:
                if not retry:
                    raise
                delay = backoff.next_delay()
                self._mode, self._reason = "OFFLINE", _describe_error(exc, endpoints)
                self._retry_at = time.monotonic() + delay
                log.warning("bootstrap failed: %s; retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        await self._open_history()
        self._mode = "REPLAY" if self._replay else "CONNECTING"
        self._reason, self._retry_at = "", None
        self.ready.set()

    def _setup_micro(self, symbols: list[str]) -> None:
        recorded: set[str] | None = None
        if self._server is not None:
            recorded = {
                (info.symbol or "").upper()
                for info in map(parse_stream, self._server.recorded_streams())
                if info.kind == "depth"
            }
        feed = MicroFeed(
            self._book_cfg,
            self._oi_cfg,
            clock=self._clock,
            on_open_interest=self.engine.on_event,
            recorded_depth=recorded,
        )
        feed.set_universe(symbols)
        feed.on_streams_changed(self._resubscribe)
        self.micro_feed = feed
        self.engine.attach_books(feed)

    def _resubscribe(self) -> None:
        if self._adapter is not None:
            self._adapter.set_streams(self._streams(list(self.engine.universe)))

    def _streams(self, symbols: list[str]) -> list[str]:
        streams = [kline_stream(symbol, code) for symbol in symbols for code in self._streamed]
        capture = self._server is not None and self._server.source_kind == "capture"
        recorded_all = self._server.recorded_streams() if capture and self._server else set()
        # A capture holds only what was recorded; an all-market stream it lacks would sit
        # there silent, then be re-subscribed and its socket reopened for nothing.
        if not capture or MARK_PRICE_ALL in recorded_all:
            streams.append(MARK_PRICE_ALL)
        streams.append(FORCE_ORDER_ALL)
        if self.micro_feed is not None:
            micro = self.micro_feed.streams()
            if self._server is not None:
                # A replay delivers only what was recorded; an unrecorded stream would just
                # sit there looking stale.
                recorded = {
                    (i.kind, i.symbol)
                    for i in map(parse_stream, self._server.recorded_streams())
                }
                micro = [
                    s for s in micro
                    if (parse_stream(s).kind, parse_stream(s).symbol) in recorded
                ]
            streams.extend(micro)
        # A kline-history replay derives !ticker@arr from its klines (breadth, 24 h change).
        if not capture or TICKER_ALL in recorded_all:
            streams.append(TICKER_ALL)
        if self._server is not None and self._server.source_kind == "capture":
            # A raw capture holds what was recorded: take its trade and book-ticker streams too
            # so prices move (order books are the microstructure engine's, not this one's).
            wanted = set(symbols)
            for stream in sorted(self._server.recorded_streams()):
                info = parse_stream(stream)
                if info.kind in CAPTURE_KINDS and (info.symbol or "").upper() in wanted:
                    streams.append(stream)
        return list(dict.fromkeys(streams))

    async def _run_backfill(self, rest: BinanceRest, symbols: list[str]) -> None:
        tf = self._engine_config.timeframes
        self._backfill = (0, len(symbols) * len(tf.timeframes))

        def progress(done: int, total: int) -> None:
            self._backfill = (done, total)

        await rest.backfill(
            symbols,
            tf.timeframes,
            tf.bars_for,
            cache=self._cache,
            on_series=self.engine.load_history,
            progress=progress,
        )
        # Klines that arrived over the socket during backfill go in after the history.
        buffered, self._buffer = self._buffer or [], None
        for kline in buffered:
            self.engine.on_event(kline)

    async def _release_replay(self) -> None:
        """Let the replay server start streaming once our subscriptions are in place."""
        if self._server is None or self._adapter is None:
            return
        wanted = set(self._adapter_streams())
        async with asyncio.timeout(30):
            while not wanted <= self._server.subscribed_streams():  # noqa: ASYNC110 - polled
                await asyncio.sleep(0.02)
        self._server.start_streaming()

    def _adapter_streams(self) -> list[str]:
        assert self._adapter is not None
        return self._adapter.streams

    def _on_event(self, event: FeedEvent) -> None:
        if isinstance(event, FeedStatus):
            self._statuses[event.connection] = event
            return
        if isinstance(event, DepthDiff):
            if self.micro_feed is not None:
                self.micro_feed.on_diff(event)
            return
        if self._buffer is not None and isinstance(event, Kline):
            self._buffer.append(event)
            return
        self.engine.on_event(event)
        if isinstance(event, Kline) and event.closed and event.interval == self._streamed[0]:
            self._bar_closed.set()
        if self._desk is not None:
            self._desk.on_event(event)

    def _health(self) -> FeedHealth:
        stats = self._adapter.stats if self._adapter else None
        now_mono = time.monotonic()
        frames = stats.frames if stats else 0
        self._rate.append((now_mono, frames))
        first_t, first_frames = self._rate[0]
        span = now_mono - first_t
        rate = (frames - first_frames) / span if span > 0.5 else 0.0
        mode, reason, retry_in = self._mode, self._reason, None
        if self._retry_at is not None:
            retry_in = max(0.0, self._retry_at - now_mono)
        if stats is not None and mode != "OFFLINE":
            states = [status.state for status in self._statuses.values()]
            if self._replay:
                mode = "REPLAY"
            elif states and all(s in (FeedState.OFFLINE, FeedState.RECONNECTING) for s in states):
                latest = max(self._statuses.values(), key=lambda s: s.time)
                mode = "OFFLINE" if stats.connections_open == 0 else "RECONNECTING"
                reason, retry_in = latest.reason, latest.retry_in
            elif any(s is FeedState.RECONNECTING for s in states):
                mode = "RECONNECTING"
            elif stats.frames:
                mode = "LIVE"
        last_age = None
        if stats and stats.last_frame_time:
            last_age = max(0, self._wall_clock() - stats.last_frame_time)
        books = self.micro_feed.totals() if self.micro_feed is not None else None
        oi_state, oi_reason = (
            self.micro_feed.open_interest_state() if self.micro_feed is not None else ("", "")
        )
        budget = self._rest.budget.state if self._rest is not None else None
        cooling = budget is not None and budget.cooling_down
        return FeedHealth(
            mode=mode,
            exchange="binanceusdm",
            reason=reason,
            retry_in=None if retry_in is None else round(retry_in, 1),
            connections=stats.connections_open if stats else 0,
            connections_total=stats.connections_total if stats else 0,
            streams=stats.streams if stats else 0,
            msgs_per_s=round(rate, 1),
            last_msg_age_ms=last_age,
            reconnects=stats.reconnects if stats else 0,
            decode_errors=stats.decode_errors if stats else 0,
            backfill_done=self._backfill[0],
            backfill_total=self._backfill[1],
            stale_streams=stats.stale_streams if stats else 0,
            books=books.books if books else 0,
            books_synced=books.synced if books else 0,
            book_resyncs=books.resyncs if books else 0,
            book_gaps=books.gaps if books else 0,
            open_interest=oi_state,
            open_interest_reason=oi_reason,
            rest_cooldown_s=round(budget.cooldown_remaining_s, 1) if cooling and budget else 0.0,
            rest_cooldown_reason=budget.reason if cooling and budget else "",
        )

    async def _shutdown(self) -> None:
        # Both stay readable after the run (a finished scan still reports its track record).
        if self._desk is not None:
            await self._desk.stop()
        if self.history is not None:
            await self.history.stop()
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._rest is not None:
            await self._rest.close()
            self._rest = None
        if self._server is not None:
            await self._server.stop()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _describe_error(exc: BaseException, endpoints: EndpointConfig) -> str:
    # The status line has room for host and cause; the log keeps the full message.
    text = getattr(exc, "cause", "") or str(exc).strip() or type(exc).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    return f"cannot reach {endpoints.rest_url}: {text}"
