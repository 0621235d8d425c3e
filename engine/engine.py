"""The signal engine: market events in, frozen snapshots out.

``on_event`` is synchronous and O(1) (it runs inside feed handlers on the event loop): klines go
into the :class:`~engine.candles.CandleStore`, whose candle closes mark ``(symbol, timeframe)``
series dirty; mark price, ticker, trade and book ticker events update the symbol's row.
``recompute`` copies the dirty series' closed candles and evaluates them off the loop
(``asyncio.to_thread``, many symbols per call). ``snapshot`` returns one immutable
:class:`~engine.models.EngineSnapshot`, the same object while nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from engine.breadth import BTC_SYMBOL, compute_breadth
from engine.candles import CandleStore, ClosedArrays
from engine.config import EngineConfig
from engine.micro import MicroConfig, MicroReading, MicroSignalGate, MicroTracker
from engine.models import (
    BookInfo,
    CandleSeries,
    EngineSnapshot,
    FeedHealth,
    MicroView,
    Signal,
    SpikeEvent,
    SymbolState,
    TimeframeSignal,
)
from engine.profiles import risk_profile
from engine.signals import combine, evaluate_timeframe
from engine.spikes import (
    LIQUIDATION_WINDOW_MS,
    LiquidationWindow,
    candle_spikes,
)
from feeds.events import (
    BookTicker,
    FeedEvent,
    FeedStatus,
    Kline,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Ticker,
    Trade,
)
from feeds.intervals import interval_ms
from feeds.orderbook import OrderBook

log = logging.getLogger(__name__)

SNAPSHOT_AGE_RESOLUTION_MS = 1000
"""Row ages (``age_ms``) are refreshed at this resolution when nothing else changed."""


@dataclass(slots=True)
class _SymbolData:
    """Mutable per-symbol state behind one :class:`SymbolState` row."""

    last_price: float | None = None
    price_time: int = -1
    ticker_change_pct: float | None = None
    ticker_high: float | None = None
    ticker_low: float | None = None
    quote_volume_24h: float | None = None
    funding_rate: float | None = None
    mark_price: float | None = None
    next_funding_time: int = 0
    last_update: int = 0
    signal: Signal | None = None
    timeframe_signals: dict[str, TimeframeSignal] = field(default_factory=dict)
    spike_kind: str = ""
    spike_time: int = 0
    spike_as_of: int = 0
    liquidations: LiquidationWindow = field(default_factory=LiquidationWindow)
    new_listing: bool = False
    index_price: float | None = None
    flash_kind: str = ""
    flash_time: int = 0
    micro: MicroTracker | None = None
    reading: MicroReading | None = None
    micro_dirty: bool = False


_Job = tuple[str, dict[str, ClosedArrays], dict[str, TimeframeSignal]]
_Result = tuple[str, dict[str, TimeframeSignal], Signal | None, dict[str, float], int]
"""symbol, timeframe signals, fused signal, candle spikes of the smallest timeframe, and
that timeframe's last close time."""

FLASH_MS = 3000
"""How long (engine clock) a row flashes after a sweep or a sampled liquidation."""
LADDER_LEVELS = 20
"""Book levels per side in :meth:`Engine.micro_view`."""
MAX_MICRO_SIGNALS = 500
"""Microstructure signals kept for :attr:`Engine.micro_signals` (newest last)."""


class BookSource(Protocol):
    """Where the engine reads local order books (``engine.microfeed.MicroFeed``)."""

    def book(self, symbol: str) -> OrderBook | None:
        """The synced book of ``symbol``, ``None`` without one or while resyncing."""
        ...

    def info(self, symbol: str) -> BookInfo:
        """Sync state of ``symbol``'s book (``state == "none"`` without a book)."""
        ...

    def book_symbols(self) -> list[str]:
        """Symbols that have (or are getting) a book."""
        ...


MAX_SPIKES = 100
"""Spike events kept for the snapshot (newest last)."""
NEW_LISTING_DAYS = 30
"""A symbol whose onboard date is within this many days counts as a new listing."""


def _default_streamed(timeframes: Sequence[str]) -> set[str]:
    """The smallest timeframe, plus any that cannot be built from it."""
    base = timeframes[0]
    base_ms = interval_ms(base)
    return {base} | {tf for tf in timeframes if interval_ms(tf) % base_ms}


class Engine:
    """Candles, derivatives data and signals of a universe of symbols.

    Args:
        config: Engine configuration.
        clock: Engine clock, ms UTC (wall clock live, replay clock in replay, fixed in tests).
        streamed_timeframes: Kline intervals whose stream klines are used. Default: the smallest
            configured timeframe only; the others are built from it at UTC boundaries, so it
            does not matter whether the feed also streams them (those klines are counted in
            ``store.ignored_klines`` and skipped).
        batch_size: Symbols evaluated per ``asyncio.to_thread`` call.
        offload: Evaluate in a worker thread (``asyncio.to_thread``) so the event loop stays
            responsive. ``False`` evaluates in the calling thread: for a process that does
            nothing else (a backtest worker), where the thread hop is pure overhead.
        micro: Microstructure section (features, score, scalp signal gate).

    Raises:
        ValueError: if a configured timeframe is neither streamed nor buildable from the
            smallest streamed one.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        clock: Callable[[], int],
        streamed_timeframes: Collection[str] | None = None,
        batch_size: int = 32,
        offload: bool = True,
        micro: MicroConfig | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.config = config
        self._clock = clock
        self._timeframes = tuple(config.timeframes.timeframes)
        streamed = (
            set(streamed_timeframes)
            if streamed_timeframes is not None
            else _default_streamed(self._timeframes)
        )
        if not streamed:
            raise ValueError("streamed_timeframes must not be empty")
        base = min(streamed, key=interval_ms)
        self.store = CandleStore(config.timeframes, base, streamed)
        """The candles (read access for tests and diagnostics)."""
        self._batch_size = batch_size
        self._offload = offload
        self._stale_ms = int(config.stale_after_s * 1000)
        self._symbols: dict[str, _SymbolData] = {}
        self._dirty: dict[str, set[str]] = {}
        self._changed: set[str] = set()
        self._rows: dict[str, SymbolState] = {}
        self._structure_changed = True
        self._snapshot: EngineSnapshot | None = None
        self._snapshot_bucket = -1
        self._version = 0
        self._lock = asyncio.Lock()

        self.last_event_time = 0
        """Largest exchange time (ms UTC) of any market event seen; replay clocks follow it."""
        self.last_recompute_thread: int | None = None
        """``threading.get_ident()`` of the thread that ran the last evaluation batch."""
        self.last_recompute_ms = 0.0
        """Wall time of the last ``recompute`` that evaluated anything, ms."""
        self.events = 0
        """Market events applied."""
        self.ignored_events = 0
        """Market events of symbols outside the universe (skipped)."""
        self.ignored_history = 0
        """Backfill series of symbols outside the universe (skipped)."""
        self.compute_errors = 0
        """Symbols whose evaluation raised (logged; the previous signal is kept)."""
        self._tick_sizes: dict[str, float] = {}
        self._profile = config.signals.risk_profile
        self._spikes: deque[SpikeEvent] = deque(maxlen=MAX_SPIKES)
        self._universe_set_once = False
        self._micro_cfg = micro or MicroConfig()
        # One gate for all symbols: cooldown and daily maximum are kept per symbol inside it.
        self._micro_gate = MicroSignalGate(self._micro_cfg)
        self._books: BookSource | None = None
        self._calibrate: Callable[[float], float | None] | None = None
        self._micro_signals: deque[Signal] = deque(maxlen=MAX_MICRO_SIGNALS)

    # -- risk profile --------------------------------------------------------------------

    @property
    def risk_profile(self) -> str:
        """Active risk profile name (``conservative``, ``balanced``, ``aggressive``)."""
        return self._profile

    def set_risk_profile(self, name: str) -> None:
        """Switch the risk profile at runtime; every symbol is re-evaluated on the next
        :meth:`recompute`.

        Raises:
            ValueError: if ``name`` is not a known profile.
        """
        risk_profile(self.config.signals, name)  # validates
        if name == self._profile:
            return
        self._profile = name
        for symbol in self._symbols:
            self._dirty.setdefault(symbol, set())

    # -- universe ------------------------------------------------------------------------

    @property
    def universe(self) -> tuple[str, ...]:
        """Symbols tracked, in display order."""
        return tuple(self._symbols)

    def set_tick_sizes(self, tick_sizes: Mapping[str, float]) -> None:
        """Price tick per symbol (quote currency); trade plans are put on this grid."""
        self._tick_sizes = dict(tick_sizes)
        self._changed.update(s for s in self._symbols if s in self._tick_sizes)

    def set_onboard_dates(self, onboard_ms: Mapping[str, int]) -> None:
        """Onboard dates (ms UTC, from exchangeInfo) per symbol: a symbol onboarded within
        :data:`NEW_LISTING_DAYS` days of the engine clock is labelled a new listing."""
        now = self._clock()
        for symbol, onboard in onboard_ms.items():
            state = self._symbols.get(symbol)
            if state is not None and onboard > 0 and now - onboard <= NEW_LISTING_DAYS * 86_400_000:
                state.new_listing = True
                self._changed.add(symbol)

    def set_calibrator(self, calibrate: Callable[[float], float | None] | None) -> None:
        """Map each new technical signal's confidence to a calibrated probability
        (``Signal.calibrated_confidence``); ``None`` leaves signals uncalibrated. Signals are
        re-evaluated on the next :meth:`recompute`."""
        self._calibrate = calibrate
        for symbol in self._symbols:
            self._dirty.setdefault(symbol, set())

    def attach_books(self, books: BookSource) -> None:
        """Read local order books from ``books`` (microstructure features need them)."""
        self._books = books

    def set_universe(self, symbols: Iterable[str]) -> None:
        """Replace the tracked symbols; removed symbols' candles and state are freed."""
        wanted = list(dict.fromkeys(symbols))
        keep = set(wanted)
        for symbol in list(self._symbols):
            if symbol not in keep:
                del self._symbols[symbol]
                self.store.drop(symbol)
                self._dirty.pop(symbol, None)
                self._rows.pop(symbol, None)
                self._changed.discard(symbol)
        old = self._symbols
        self._symbols = {s: old.get(s) or _SymbolData() for s in wanted}
        if self._universe_set_once:
            # Joined during the session: a new listing (or newly in the top N).
            for s in wanted:
                if s not in old:
                    self._symbols[s].new_listing = True
        self._universe_set_once = True
        self._changed.update(s for s in wanted if s not in old)
        self._structure_changed = True

    # -- input ---------------------------------------------------------------------------

    def on_event(self, event: FeedEvent) -> None:
        """Apply one feed event (synchronous, O(1), no I/O). ``FeedStatus`` is ignored here."""
        if isinstance(event, FeedStatus):
            return
        state = self._symbols.get(event.symbol)
        if state is None:
            self.ignored_events += 1
            return
        self.events += 1
        symbol = event.symbol
        if isinstance(event, OpenInterest):
            self._tracker(symbol, state).on_open_interest(event)
            state.micro_dirty = True
            self._changed.add(symbol)
            return
        stamp = event.exchange_time
        if isinstance(event, Kline):
            for sym, tf in self.store.apply(event):
                self._dirty.setdefault(sym, set()).add(tf)
            self._set_price(state, event.close, stamp)
        elif isinstance(event, Trade):
            self._set_price(state, event.price, stamp)
            self._tracker(symbol, state).on_trade(event)
            state.micro_dirty = True
        elif isinstance(event, MarkPrice):
            state.mark_price = event.mark_price
            state.index_price = event.index_price
            state.funding_rate = event.funding_rate
            state.next_funding_time = event.next_funding_time
            self._tracker(symbol, state).on_mark(event)
        elif isinstance(event, Ticker):
            state.ticker_change_pct = event.price_change_pct
            state.ticker_high = event.high_price
            state.ticker_low = event.low_price
            state.quote_volume_24h = event.quote_volume
            self._set_price(state, event.last_price, stamp)
        elif isinstance(event, BookTicker):
            if state.last_price is None:
                state.last_price = (event.bid_price + event.ask_price) / 2.0
            self._tracker(symbol, state).on_book_ticker(event)
        elif isinstance(event, Liquidation):
            self._tracker(symbol, state).on_liquidation(event)
            state.micro_dirty = True
            notional = event.avg_price * event.quantity
            over = state.liquidations.add(event.exchange_time, notional)
            # One liquidation spike per window, not one per liquidation inside it.
            fresh = (
                state.spike_kind != "liquidation"
                or event.exchange_time - state.spike_time >= LIQUIDATION_WINDOW_MS
            )
            if over and fresh:
                self._record_spike(symbol, state, SpikeEvent(
                    symbol=symbol, kind="liquidation", time=event.exchange_time,
                    value=state.liquidations.total,
                ))
        if stamp > self.last_event_time:
            self.last_event_time = stamp
        state.last_update = self._clock()
        self._changed.add(symbol)

    def _tracker(self, symbol: str, state: _SymbolData) -> MicroTracker:
        if state.micro is None:
            state.micro = MicroTracker(symbol, self._micro_cfg, self._micro_gate)
        return state.micro

    @staticmethod
    def _set_price(state: _SymbolData, price: float, stamp: int) -> None:
        # Venue time orders prices across streams; a late frame must not roll the price back.
        if stamp >= state.price_time:
            state.last_price = price
            state.price_time = stamp

    def load_history(
        self,
        symbol: str,
        timeframe: str,
        klines: Sequence[Kline],
        *,
        as_of: int | None = None,
    ) -> None:
        """Merge REST backfill rows of one series (see :meth:`CandleStore.load_history`).

        Args:
            symbol: Venue symbol (must be in the universe, else the rows are counted in
                ``ignored_history`` and skipped).
            timeframe: Interval of the rows.
            klines: Rows oldest first; only the last may be forming.
            as_of: When the REST response was taken, ms UTC (helps continue a forming built
                timeframe candle exactly; optional).

        Raises:
            ValueError: on rows of another symbol/interval or a forming row that is not last.
        """
        state = self._symbols.get(symbol)
        if state is None:
            self.ignored_history += 1
            log.warning("backfill of %s %s ignored: symbol not in the universe", symbol, timeframe)
            return
        if timeframe not in self.store.kept:
            self.ignored_history += 1
            log.warning("backfill of %s %s ignored: timeframe not kept", symbol, timeframe)
            return
        self.store.load_history(symbol, timeframe, klines, as_of=as_of)
        self._dirty.setdefault(symbol, set()).update(self._timeframes)
        if state.last_price is None:
            state.last_price = self.store.last_price(symbol)
        state.last_update = self._clock()
        self._changed.add(symbol)

    # -- evaluation ----------------------------------------------------------------------

    def _is_stale(self, state: _SymbolData, now: int) -> bool:
        return now - state.last_update > self._stale_ms

    async def recompute(self) -> int:
        """Evaluate every symbol with a newly closed candle, off the event loop.

        Stale symbols are evaluated too: a signal is a pure function of the closed candles and
        says its ``as_of``; the row's ``stale`` flag tells consumers (UI dimming, alerts) not
        to treat it as fresh. Skipping them would leave a symbol whose data stopped showing a
        signal from before its last bars, or none at all.

        Returns:
            Symbols evaluated.
        """
        async with self._lock:
            jobs: list[_Job] = []
            for symbol in list(self._dirty):
                state = self._symbols.get(symbol)
                if state is None:
                    del self._dirty[symbol]
                    continue
                tfs = self._dirty.pop(symbol)
                # In place the batch runs before the store can change: views suffice.
                read = self.store.arrays if self._offload else self.store.view
                arrays = {tf: read(symbol, tf) for tf in tfs if tf in self._timeframes}
                jobs.append((symbol, arrays, dict(state.timeframe_signals)))
            if not jobs:
                return 0
            # BTC first, in a batch of its own: the alts' BTC gate reads its fresh vote.
            jobs.sort(key=lambda job: job[0] != BTC_SYMBOL)
            bounds = list(range(0, len(jobs), self._batch_size))
            if jobs[0][0] == BTC_SYMBOL and len(jobs) > 1:
                bounds = [0, *range(1, len(jobs), self._batch_size)]
            started = time.perf_counter()
            done = 0
            try:
                for n, i in enumerate(bounds):
                    end = bounds[n + 1] if n + 1 < len(bounds) else len(jobs)
                    if self._offload:
                        ident, results = await asyncio.to_thread(
                            self._evaluate_batch, jobs[i:end], self._btc_microtrend()
                        )
                    else:
                        ident, results = self._evaluate_batch(jobs[i:end], self._btc_microtrend())
                    done = end
                    self.last_recompute_thread = ident
                    for symbol, tf_signals, signal, spikes, as_of in results:
                        state = self._symbols.get(symbol)
                        if state is None:
                            continue
                        state.timeframe_signals = tf_signals
                        if spikes and as_of > state.spike_as_of:
                            state.spike_as_of = as_of
                            for kind, value in spikes.items():
                                self._record_spike(symbol, state, SpikeEvent(
                                    symbol=symbol, kind=kind, time=as_of, value=value,
                                    timeframe=self._timeframes[0],
                                ))
                        if signal != state.signal:
                            state.signal = signal
                            self._changed.add(symbol)
            finally:
                # Cancelled midway: the unevaluated series stay pending.
                for symbol, arrays, _ in jobs[done:]:
                    if symbol in self._symbols:
                        self._dirty.setdefault(symbol, set()).update(arrays)
            self.last_recompute_ms = (time.perf_counter() - started) * 1000.0
            return len(jobs)

    def evaluate_micro(self) -> int:
        """Evaluate the microstructure of every symbol with a book, or with new trades or
        liquidations since the last call (synchronous, on the event loop: books are mutated
        there; the cost is bounded by the book bands, not the book size).

        Returns:
            Symbols evaluated.
        """
        now = self._clock()
        books = self._books
        with_book = set(books.book_symbols()) if books is not None else set()
        btc = self._symbols.get(BTC_SYMBOL)
        btc_trend = (btc.micro.momentum(now) if btc is not None and btc.micro else None) or 0.0
        atr_tf = self._micro_cfg.atr_timeframe
        done = 0
        for symbol, state in self._symbols.items():
            if symbol not in with_book and not state.micro_dirty:
                continue
            tracker = self._tracker(symbol, state)
            book = books.book(symbol) if books is not None and symbol in with_book else None
            tf_signal = state.timeframe_signals.get(atr_tf)
            reading = tracker.evaluate(
                book, now,
                atr=tf_signal.atr if tf_signal is not None else None,
                tick_size=self._tick_sizes.get(symbol),
                btc_microtrend=btc_trend,
            )
            state.micro_dirty = False
            state.reading = reading
            if reading.signal is not None:
                self._micro_signals.append(reading.signal)
            if reading.flash:
                state.flash_kind, state.flash_time = reading.flash, now
            self._changed.add(symbol)
            done += 1
        return done

    @property
    def micro_signals(self) -> tuple[Signal, ...]:
        """Microstructure signals emitted so far, newest last (bounded)."""
        return tuple(self._micro_signals)

    def micro_view(self, symbol: str) -> MicroView | None:
        """The order book pane's data for ``symbol`` (``None`` if not in the universe)."""
        state = self._symbols.get(symbol)
        if state is None:
            return None
        now = self._clock()
        books = self._books
        info = books.info(symbol) if books is not None else BookInfo(state="none")
        book = books.book(symbol) if books is not None else None
        reading = state.reading
        tracker = state.micro
        return MicroView(
            symbol=symbol,
            time=now,
            book=info,
            bids=tuple(book.bids(LADDER_LEVELS)) if book is not None else (),
            asks=tuple(book.asks(LADDER_LEVELS)) if book is not None else (),
            tick_size=self._tick_sizes.get(symbol),
            features=reading.features if reading is not None else None,
            flow=reading.flow if reading is not None else None,
            derivatives=tracker.derivs.view(now) if tracker is not None else None,
            score=reading.score if reading is not None else None,
            signal=tracker.active_signal(now) if tracker is not None else None,
        )

    def _btc_microtrend(self) -> float | None:
        """BTC's smallest-timeframe vote (the breadth pane's BTC microtrend), if ready."""
        btc = self._symbols.get(BTC_SYMBOL)
        if btc is None:
            return None
        tf = btc.timeframe_signals.get(self._timeframes[0])
        return None if tf is None else tf.vote

    def _evaluate_batch(
        self, jobs: list[_Job], btc_microtrend: float | None = None
    ) -> tuple[int, list[_Result]]:
        """Runs in a worker thread: pure evaluation of copied candles.

        The stale-data risk filter is not applied here (it would make a signal depend on the
        clock, not only on its candles); the row's ``stale`` flag carries it instead.
        """
        results: list[_Result] = []
        for symbol, arrays, cached in jobs:
            try:
                for tf, closed in arrays.items():
                    cached[tf] = evaluate_timeframe(tf, closed, self.config)
                ordered = [
                    cached.get(tf)
                    or TimeframeSignal(
                        timeframe=tf, vote=None, bars=0, bars_needed=self.config.timeframes.min_bars
                    )
                    for tf in self._timeframes
                ]
                signal = (
                    combine(
                        symbol, ordered, self.config, self._tick_sizes.get(symbol),
                        profile=self._profile,
                        btc_microtrend=None if symbol == BTC_SYMBOL else btc_microtrend,
                    )
                    if any(s.bars for s in ordered)
                    else None
                )
                if signal is not None and self._calibrate is not None:
                    signal = msgspec.structs.replace(
                        signal, calibrated_confidence=self._calibrate(signal.confidence)
                    )
                base = arrays.get(self._timeframes[0])
                spikes = candle_spikes(base) if base is not None and len(base) else {}
                as_of = (
                    int(base.open_time[-1]) + interval_ms(self._timeframes[0]) - 1
                    if base is not None and len(base) else 0
                )
            except Exception:
                self.compute_errors += 1
                log.exception("evaluating %s failed; keeping its previous signal", symbol)
                continue
            results.append((symbol, cached, signal, spikes, as_of))
        return threading.get_ident(), results

    def _record_spike(self, symbol: str, state: _SymbolData, spike: SpikeEvent) -> None:
        self._spikes.append(spike)
        state.spike_kind, state.spike_time = spike.kind, spike.time
        self._changed.add(symbol)

    @property
    def spikes(self) -> tuple[SpikeEvent, ...]:
        """Recent spike events, newest last (at most :data:`MAX_SPIKES`)."""
        return tuple(self._spikes)

    def signal(self, symbol: str) -> Signal | None:
        """Latest signal of ``symbol`` (``None`` before any, or if not in the universe)."""
        state = self._symbols.get(symbol)
        return None if state is None else state.signal

    # -- output --------------------------------------------------------------------------

    def _row(self, symbol: str, state: _SymbolData, now: int) -> SymbolState:
        change = state.ticker_change_pct
        if change is None:
            change = self.store.change_24h_pct(symbol)
        age = now - state.last_update if state.last_update else now
        tracker, reading = state.micro, state.reading
        derivs = tracker.derivs.view(now) if tracker is not None else None
        books = self._books
        book = None
        if books is not None:
            info = books.info(symbol)
            book = info if info.state != "none" else None
        features = reading.features if reading is not None else None
        score = reading.score if reading is not None else None
        if now - state.flash_time <= FLASH_MS and state.flash_kind:
            spike = state.flash_kind
        else:
            spike = state.spike_kind if self._spike_recent(state) else ""
        return SymbolState(
            symbol=symbol,
            last_price=state.last_price,
            change_24h_pct=change,
            quote_volume_24h=state.quote_volume_24h,
            funding_rate=state.funding_rate,
            mark_price=state.mark_price,
            next_funding_time=state.next_funding_time,
            signal=state.signal,
            last_update=state.last_update,
            age_ms=age,
            stale=age > self._stale_ms,
            tick_size=self._tick_sizes.get(symbol),
            high_24h=state.ticker_high,
            low_24h=state.ticker_low,
            spike=spike,
            new_listing=state.new_listing,
            index_price=state.index_price,
            premium_bps=derivs.premium_bps if derivs is not None else None,
            open_interest=derivs.open_interest if derivs is not None else None,
            oi_change=dict(derivs.oi_change) if derivs is not None else {},
            spread_bps=reading.spread_bps if reading is not None else None,
            imbalance=features.imbalance if features is not None else None,
            micro_score=score.score if score is not None else None,
            micro_signal=tracker.active_signal(now) if tracker is not None else None,
            book=book,
        )

    def _spike_recent(self, state: _SymbolData) -> bool:
        if not state.spike_kind:
            return False
        # Candle spikes are stamped with the candle's close, liquidations with the event time:
        # both against the venue time of the latest event.
        return self.last_event_time - state.spike_time <= interval_ms(self._timeframes[0])

    def snapshot(self, health: FeedHealth) -> EngineSnapshot:
        """The current immutable view; the same object while nothing changed.

        Rows are rebuilt for symbols that changed; every row is rebuilt when the engine clock
        enters a new :data:`SNAPSHOT_AGE_RESOLUTION_MS` bucket, so ``age_ms`` and ``stale``
        are accurate to that resolution. ``version`` increments with every new snapshot.
        """
        now = self._clock()
        bucket = now // SNAPSHOT_AGE_RESOLUTION_MS
        cached = self._snapshot
        if (
            cached is not None
            and not self._changed
            and not self._structure_changed
            and bucket == self._snapshot_bucket
            and health == cached.health
        ):
            return cached
        if bucket != self._snapshot_bucket or self._structure_changed:
            rebuild: Iterable[str] = self._symbols
        else:
            rebuild = self._changed
        for symbol in rebuild:
            state = self._symbols.get(symbol)
            if state is not None:
                self._rows[symbol] = self._row(symbol, state, now)
        self._changed.clear()
        self._structure_changed = False
        self._snapshot_bucket = bucket
        self._version += 1
        rows = {s: self._rows[s] for s in self._symbols}
        self._snapshot = EngineSnapshot(
            time=now,
            version=self._version,
            timeframes=self._timeframes,
            symbols=rows,
            health=health,
            breadth=compute_breadth(rows, self._timeframes, now) if rows else None,
            spikes=tuple(self._spikes),
            new_listings=tuple(s for s, st in self._symbols.items() if st.new_listing),
        )
        return self._snapshot

    def candles(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """The last ``limit`` candles (forming one last) of a universe symbol; ``None`` if the
        symbol is not in the universe or the timeframe is not kept."""
        if symbol not in self._symbols or timeframe not in self.store.kept:
            return None
        series = self.store.series(symbol, timeframe, limit)
        if series is None:
            return CandleSeries(
                symbol=symbol,
                timeframe=timeframe,
                open_time=(),
                open=(),
                high=(),
                low=(),
                close=(),
                volume=(),
                forming_included=False,
            )
        return series
