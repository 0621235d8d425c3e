"""Frozen engine outputs: signals, trade plans and the snapshot the UI and headless mode read.

Units: prices in quote currency, times in ms UTC, votes in [-1, 1] (+1 fully long),
scores 0-100 (50 neutral), confidence 0-1, rates as fractions.
"""

from __future__ import annotations

import enum

import msgspec


class Direction(enum.Enum):
    """Fused signal direction."""

    LONG = "LONG"
    SHORT = "SHORT"
    NEUTRAL = "NEUTRAL"


class SignalType(enum.Enum):
    """Finer signal type shown alongside :class:`Direction` (see ``engine.signals``)."""

    STRONG_LONG = "STRONG_LONG"
    MOMENTUM_LONG = "MOMENTUM_LONG"
    REVERSION_LONG = "REVERSION_LONG"
    WEAK_LONG = "WEAK_LONG"
    NEUTRAL = "NEUTRAL"
    WEAK_SHORT = "WEAK_SHORT"
    REVERSION_SHORT = "REVERSION_SHORT"
    MOMENTUM_SHORT = "MOMENTUM_SHORT"
    STRONG_SHORT = "STRONG_SHORT"
    MICRO_LONG = "MICRO_LONG"
    """Microstructure scalp long (``engine.micro``), a signal source of its own."""
    MICRO_SHORT = "MICRO_SHORT"
    """Microstructure scalp short."""


class Factor(msgspec.Struct, frozen=True, kw_only=True):
    """One input of a signal's factor breakdown.

    Attributes:
        name: Factor name (``rsi``, ``reversion.exhaustion``, ``filter.trap_wick``, ...).
        category: ``indicator``, ``regime``, ``reversion``, ``cluster``, ``pattern``,
            ``blend`` or ``filter``.
        timeframe: Interval code the factor was read on (empty for fused factors).
        value: The reading (units per factor; e.g. RSI 0-100, ATR multiples, a fraction).
        weight: Weight of the factor in the number it feeds (0 when it only gates).
        contribution: Signed contribution (votes in [-1, 1], reversion points 0-25, ...).
        note: Short human-readable explanation (threshold, what fired).
    """

    name: str
    category: str
    timeframe: str = ""
    value: float = 0.0
    weight: float = 0.0
    contribution: float = 0.0
    note: str = ""


class Reversion(msgspec.Struct, frozen=True, kw_only=True):
    """Mean-reversion reading of one timeframe at its last closed candle.

    Attributes:
        score: 0-100 (25 per agreeing factor, net of disagreeing ones).
        direction: +1 expects a bounce (reversion long), -1 a pullback, 0 none.
        factors: The four factors (``exhaustion``, ``volume_exhaustion``, ``excessive_move``,
            ``rsi_extreme``), each with its reading and signed points.
    """

    score: float
    direction: int
    factors: tuple[Factor, ...] = ()


class CandleCluster(msgspec.Struct, frozen=True, kw_only=True):
    """High-volume candle cluster of one timeframe at its last closed candle.

    Attributes:
        count: High-volume candles (volume >= k x average) in the lookback window.
        up: Of them, closing above their open.
        down: Of them, closing below their open.
        ratio: Majority share ``max(up, down) / count`` (0 when none).
        follow_through: Share of majority-direction candles whose close 3 bars later moved
            further in their direction (0-1; candles without 3 later bars are left out).
        strength: Signed cluster strength in [-1, 1] (+ bullish).
        trend_forming: True when count, ratio and follow-through all pass their thresholds.
    """

    count: int = 0
    up: int = 0
    down: int = 0
    ratio: float = 0.0
    follow_through: float = 0.0
    strength: float = 0.0
    trend_forming: bool = False


class IndicatorVote(msgspec.Struct, frozen=True, kw_only=True):
    """One indicator's contribution on one timeframe.

    Attributes:
        name: Indicator (``ema_stack``, ``supertrend``, ``macd``, ``rsi``, ``stochrsi``, ``obv``,
            ``adx``).
        group: Vote group (``trend``, ``momentum``, ``volume``, ``strength``).
        value: The indicator reading the vote came from (e.g. RSI 63.2), for display.
        vote: Direction in [-1, 1].
        weight: Weight of this vote inside the timeframe vote.
    """

    name: str
    group: str
    value: float
    vote: float
    weight: float


class TimeframeSignal(msgspec.Struct, frozen=True, kw_only=True):
    """The vote of one timeframe, or a warming-up marker.

    Attributes:
        timeframe: Interval code.
        vote: Weighted vote in [-1, 1], ``None`` while warming up.
        bars: Closed candles available.
        bars_needed: Closed candles needed before the timeframe votes.
        as_of: Close time (ms UTC) of the last closed candle used, 0 if none.
        atr: ATR of this timeframe at ``as_of``, quote currency (``None`` while warming up).
        indicators: The indicator votes behind ``vote`` (empty while warming up).
        values: Latest indicator readings by name (``ema_9``, ``rsi``, ``atr``, ...).
        regime: ``trending``, ``ranging`` or ``high_volatility`` (empty while warming up).
        reversion: Mean-reversion reading, ``None`` while warming up.
        cluster: High-volume candle cluster, ``None`` while warming up.
        patterns: TA-Lib candlestick patterns found on the last closed candle
            (``hammer+``/``engulfing-``: sign = bullish/bearish).
        heikin_ashi: Heikin Ashi trend: +1 up, -1 down, 0 mixed.
    """

    timeframe: str
    vote: float | None
    bars: int
    bars_needed: int
    as_of: int = 0
    atr: float | None = None
    indicators: tuple[IndicatorVote, ...] = ()
    values: dict[str, float] = msgspec.field(default_factory=dict)
    regime: str = ""
    reversion: Reversion | None = None
    cluster: CandleCluster | None = None
    patterns: tuple[str, ...] = ()
    heikin_ashi: int = 0

    @property
    def warming_up(self) -> bool:
        """True while the timeframe has too few closed candles to vote."""
        return self.vote is None


class TradePlan(msgspec.Struct, frozen=True, kw_only=True):
    """ATR-based trade plan for a LONG or SHORT signal.

    LONG: ``stop_loss < entry < take_profit_1 < take_profit_2``; SHORT mirrored.

    Attributes:
        entry: Entry price (last close), quote currency.
        stop_loss: Stop loss price, quote currency.
        take_profit_1: First target, quote currency.
        take_profit_2: Second target, quote currency.
        risk_reward: Reward to TP1 divided by risk to the stop (R:R).
        atr: ATR used, quote currency.
        timeframe: Timeframe whose ATR sized the plan.
        eta_minutes: Expected minutes to TP1 at the recent ATR speed (``None`` if unknown).
        invalidation: Price beyond which the setup is void (the rolling support for a LONG,
            resistance for a SHORT, on the plan timeframe), quote currency.
    """

    entry: float
    stop_loss: float
    take_profit_1: float
    take_profit_2: float
    risk_reward: float
    atr: float
    timeframe: str
    eta_minutes: float | None = None
    invalidation: float | None = None


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """The fused multi-timeframe signal of one symbol.

    Attributes:
        symbol: Venue symbol.
        direction: LONG / SHORT / NEUTRAL.
        score: 0-100; 50 neutral, above leans long, below leans short.
        confidence: 0-1; how much the ready timeframes and indicators agree.
        timeframes: Per-timeframe votes in configured order (warming-up ones included).
        plan: Trade plan for LONG/SHORT, ``None`` for NEUTRAL or when no ATR is ready.
        as_of: Close time (ms UTC) of the last closed candle used across timeframes.
        signal_type: Finer type (momentum / reversion / strong / weak; ``engine.signals``).
        momentum_score: 0-100, the fused score with candle-cluster boost.
        reversion_score: 0-100, the fused mean-reversion score.
        reversion_direction: +1 reversion long, -1 reversion short, 0 none.
        balanced_score: 0-100 blend of momentum and reversion (50 neutral).
        filters: Names of the risk filters that fired.
        blocked: True when a fired filter blocked the signal (direction forced NEUTRAL).
        risk_profile: Risk profile the thresholds came from.
        patterns: Candlestick patterns on the entry timeframe's last candle.
        factors: Full factor breakdown (indicators, regime, reversion, cluster, blend,
            filters) in evaluation order.
        calibrated_confidence: ``confidence`` mapped to a measured probability of TP1 before
            the stop by the fitted calibration model (``engine.calibration``); ``None`` when no
            model is fitted for this signal source: show it as uncalibrated.
    """

    symbol: str
    direction: Direction
    score: float
    confidence: float
    timeframes: tuple[TimeframeSignal, ...]
    plan: TradePlan | None
    as_of: int
    signal_type: SignalType = SignalType.NEUTRAL
    momentum_score: float = 50.0
    reversion_score: float = 0.0
    reversion_direction: int = 0
    balanced_score: float = 50.0
    filters: tuple[str, ...] = ()
    blocked: bool = False
    risk_profile: str = "balanced"
    patterns: tuple[str, ...] = ()
    factors: tuple[Factor, ...] = ()
    calibrated_confidence: float | None = None


class SymbolState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the signal table shows for one symbol.

    Attributes:
        symbol: Venue symbol.
        last_price: Last price (latest kline close or trade), quote currency; ``None`` if unknown.
        change_24h_pct: 24 h change in percent (from the ticker stream, else from candles).
        quote_volume_24h: 24 h volume in quote currency, ``None`` if unknown.
        funding_rate: Latest funding rate, fraction; ``None`` if no mark price seen.
        mark_price: Latest mark price, quote currency.
        next_funding_time: Next funding time, ms UTC (0 if unknown).
        signal: Latest fused signal, ``None`` until any timeframe has data.
        last_update: Time (ms UTC, engine clock) of the latest market event for the symbol.
        age_ms: Engine clock minus ``last_update`` at snapshot time.
        stale: True when ``age_ms`` exceeds the stale limit; stale rows get no new signals.
        tick_size: Price tick of the contract (quote currency), ``None`` if unknown; the UI
            shows prices with its decimals.
        spike: Kind of the symbol's latest spike (``price``, ``volume``, ``liquidation``)
            while it is recent (within one smallest-timeframe bar), else empty; rows flash.
        new_listing: True for a symbol that joined the universe during the session or whose
            onboard date is recent (``Engine.set_onboard_dates``).
        high_24h: 24 h high from the ticker stream, quote currency (``None`` if unknown).
        low_24h: 24 h low from the ticker stream, quote currency (``None`` if unknown).
        index_price: Index price from the mark price stream, quote currency.
        premium_bps: ``(mark - index) / index`` in basis points.
        open_interest: Latest polled open interest, base units (``None`` until polled).
        oi_change: Window (``5m``, ``15m``, ``1h``) → open interest change as a fraction
            (0.02 = +2 %), only for windows the poll history covers.
        spread_bps: ``(ask - bid) / mid`` in basis points, from the synced book (else the
            book ticker); ``None`` when neither is known.
        imbalance: Book imbalance in [-1, 1] (+1 all bids) within the configured band.
        micro_score: Microstructure score 0-100 (50 neutral), ``None`` without a synced book.
        micro_signal: Latest microstructure signal (``MICRO_LONG``/``MICRO_SHORT``) while it is
            within its cooldown, else ``None``.
        book: Order book sync state, ``None`` for symbols without a book.
    """

    symbol: str
    last_price: float | None
    change_24h_pct: float | None
    quote_volume_24h: float | None
    funding_rate: float | None
    mark_price: float | None
    next_funding_time: int
    signal: Signal | None
    last_update: int
    age_ms: int
    stale: bool
    tick_size: float | None = None
    high_24h: float | None = None
    low_24h: float | None = None
    spike: str = ""
    new_listing: bool = False
    index_price: float | None = None
    premium_bps: float | None = None
    open_interest: float | None = None
    oi_change: dict[str, float] = msgspec.field(default_factory=dict)
    spread_bps: float | None = None
    imbalance: float | None = None
    micro_score: float | None = None
    micro_signal: Signal | None = None
    book: BookInfo | None = None


class CandleSeries(msgspec.Struct, frozen=True, kw_only=True):
    """Closed candles (plus the forming one, if any) of one symbol × timeframe, for charts.

    All arrays are plain tuples of equal length, oldest first.
    """

    symbol: str
    timeframe: str
    open_time: tuple[int, ...]
    open: tuple[float, ...]
    high: tuple[float, ...]
    low: tuple[float, ...]
    close: tuple[float, ...]
    volume: tuple[float, ...]
    forming_included: bool
    """True when the last element is the still-forming candle."""


class FeedHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Feed and backfill health for the status bar.

    Attributes:
        mode: ``LIVE``, ``REPLAY``, ``RECONNECTING`` or ``OFFLINE``.
        exchange: Exchange id (``binanceusdm``).
        reason: Why the mode is not LIVE/REPLAY (empty otherwise).
        retry_in: Seconds to the next connection attempt while OFFLINE/RECONNECTING.
        connections: Open connections / configured connections.
        streams: Streams subscribed.
        msgs_per_s: Frames per second over the last few seconds.
        last_msg_age_ms: Engine clock minus the last frame's time, ``None`` before any frame.
        reconnects: Reconnects since start.
        decode_errors: Malformed or unknown frames seen (counted, skipped).
        backfill_done: Symbol × timeframe series backfilled.
        backfill_total: Series to backfill (0 when no backfill is planned).
        stale_streams: Streams currently marked stale.
        books: Local order books kept.
        books_synced: Of them, synced.
        book_resyncs: Resyncs across all books since start.
        book_gaps: Diff-chain gaps across all books since start.
        open_interest: Open interest polling state: ``polling``, ``unavailable`` (with the
            reason in ``open_interest_reason``), ``disabled`` or empty before it starts.
        open_interest_reason: Why open interest is unavailable.
        rest_cooldown_s: Seconds until REST requests resume after a 429/418 (0 when none
            is in force; a cooldown saved by the last run counts too).
        rest_cooldown_reason: Why REST is halted (the exchange's answer), else empty.
    """

    mode: str
    exchange: str
    reason: str = ""
    retry_in: float | None = None
    connections: int = 0
    connections_total: int = 0
    streams: int = 0
    msgs_per_s: float = 0.0
    last_msg_age_ms: int | None = None
    reconnects: int = 0
    decode_errors: int = 0
    backfill_done: int = 0
    backfill_total: int = 0
    stale_streams: int = 0
    books: int = 0
    books_synced: int = 0
    book_resyncs: int = 0
    book_gaps: int = 0
    open_interest: str = ""
    open_interest_reason: str = ""
    rest_cooldown_s: float = 0.0
    rest_cooldown_reason: str = ""


class SpikeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One detected spike (``engine.spikes``).

    Attributes:
        symbol: Venue symbol.
        kind: ``price`` (return z-score), ``volume`` (x average) or ``liquidation``
            (notional in the rolling window, quote currency).
        time: Close time of the candle (ms UTC) or the liquidation's event time.
        value: The reading (z-score, volume ratio or notional).
        timeframe: Timeframe of a candle spike (empty for liquidations).
    """

    symbol: str
    kind: str
    time: int
    value: float
    timeframe: str = ""


class Breadth(msgspec.Struct, frozen=True, kw_only=True):
    """Market state across the universe at one instant (``engine.breadth``).

    Only fresh rows count (``stale`` rows, whose data stopped, are left out).

    Attributes:
        time: Engine clock, ms UTC.
        symbols: Fresh symbols with a 24 h change.
        advancers: Of them, 24 h change > 0.
        decliners: 24 h change < 0.
        unchanged: 24 h change == 0.
        median_change_pct: Median 24 h change, percent.
        new_highs: Last price within :data:`engine.breadth.NEW_EXTREME_TOLERANCE` of the 24 h
            high (ticker stream).
        new_lows: Last price within that tolerance of the 24 h low.
        above_ema50_pct: Timeframe → percent of symbols (ready on it) closing above EMA50.
        above_ema200_pct: Timeframe → percent closing above EMA200.
        median_funding: Median funding rate, fraction.
        max_funding: Highest funding rate, fraction (with ``max_funding_symbol``).
        min_funding: Lowest funding rate, fraction (with ``min_funding_symbol``).
        median_atr_pct: Median ATR as percent of the close on the smallest timeframe.
        volatility_percentile: Median over symbols of the Bollinger width percentile on the
            smallest timeframe (0-1).
        volatility_regime: ``low`` (< 0.2), ``normal`` or ``high`` (>= 0.8).
        longs: LONG signals.
        shorts: SHORT signals.
        btc_trend: BTC's fused direction (``LONG``/``SHORT``/``NEUTRAL``, empty if absent).
        btc_score: BTC's score (0-100).
        btc_microtrend: BTC's smallest-timeframe vote in [-1, 1] (short-term momentum).
        oi_symbols: Window (``5m``, ``15m``, ``1h``) → fresh symbols with an open interest
            change over that window (polled open interest must cover it).
        oi_rising: Window → of them, open interest up.
        oi_falling: Window → of them, open interest down.
        median_oi_change: Window → median open interest change, fraction.
    """

    time: int
    symbols: int = 0
    advancers: int = 0
    decliners: int = 0
    unchanged: int = 0
    median_change_pct: float | None = None
    new_highs: int = 0
    new_lows: int = 0
    above_ema50_pct: dict[str, float | None] = msgspec.field(default_factory=dict)
    above_ema200_pct: dict[str, float | None] = msgspec.field(default_factory=dict)
    median_funding: float | None = None
    max_funding: float | None = None
    max_funding_symbol: str = ""
    min_funding: float | None = None
    min_funding_symbol: str = ""
    median_atr_pct: float | None = None
    volatility_percentile: float | None = None
    volatility_regime: str = ""
    longs: int = 0
    shorts: int = 0
    btc_trend: str = ""
    btc_score: float | None = None
    btc_microtrend: float | None = None
    oi_symbols: dict[str, int] = msgspec.field(default_factory=dict)
    oi_rising: dict[str, int] = msgspec.field(default_factory=dict)
    oi_falling: dict[str, int] = msgspec.field(default_factory=dict)
    median_oi_change: dict[str, float | None] = msgspec.field(default_factory=dict)


class EngineSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Immutable view of the engine at one instant; the UI assigns it to a reactive.

    Attributes:
        time: Engine clock at snapshot time, ms UTC.
        version: Increments whenever any row changed; equal versions mean equal contents.
        timeframes: Configured timeframes, smallest first.
        symbols: One state per symbol in the universe, keyed by symbol.
        health: Feed health.
        breadth: Market state across the universe (``None`` before any row).
        spikes: The most recent spikes, newest last (bounded).
        new_listings: Symbols labelled as new listings, in universe order.
    """

    time: int
    version: int
    timeframes: tuple[str, ...]
    symbols: dict[str, SymbolState]
    health: FeedHealth
    breadth: Breadth | None = None
    spikes: tuple[SpikeEvent, ...] = ()
    new_listings: tuple[str, ...] = ()


class BookInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Sync state of one local order book (``feeds.book_sync``).

    Attributes:
        state: ``synced``, ``resyncing`` (waiting for a snapshot or the first bracketing diff)
            or ``none`` (no book for this symbol).
        resyncs: Resyncs since the book was first requested (not counting the first sync).
        gaps: Diff-chain gaps seen (``pu`` != previous ``u``).
        crossed: Times the book was found crossed (best bid >= best ask) and resynced.
        stale_snapshots: Snapshots rejected as older than the buffered diffs (refetched).
        last_reason: Why the latest resync started (empty if never).
        update_id: Final update id (``u``) the book reflects, 0 before the first sync.
        bid_levels: Bid levels held.
        ask_levels: Ask levels held.
    """

    state: str
    resyncs: int = 0
    gaps: int = 0
    crossed: int = 0
    stale_snapshots: int = 0
    last_reason: str = ""
    update_id: int = 0
    bid_levels: int = 0
    ask_levels: int = 0


class Wall(msgspec.Struct, frozen=True, kw_only=True):
    """A resting level much larger than its neighbours.

    Attributes:
        side: ``bid`` or ``ask``.
        price: Level price, quote currency.
        size: Level size, base units.
        notional: ``price * size``, quote currency.
        distance_bps: Distance from the mid in basis points (positive).
        multiple: Size divided by the median level size within the band.
    """

    side: str
    price: float
    size: float
    notional: float
    distance_bps: float
    multiple: float


class BookFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """Features of one book at one instant (``engine.micro.book_features``).

    Attributes:
        time: Time of the book's last update, ms UTC.
        best_bid: Best bid price, quote currency.
        best_ask: Best ask price, quote currency.
        mid: ``(best_bid + best_ask) / 2``, quote currency.
        spread_bps: ``(best_ask - best_bid) / mid * 1e4``.
        bid_depth: Band → bid depth in quote currency; bands ``top<N>`` (best N levels) and
            the configured percentage bands (``0.1%``, ``0.5%``, ``1%``: levels within that
            distance of the mid).
        ask_depth: Band → ask depth in quote currency, same bands.
        imbalance: ``(bid - ask) / (bid + ask)`` of the configured imbalance band, in [-1, 1].
        walls: Walls within the wall band, largest multiple first.
    """

    time: int
    best_bid: float
    best_ask: float
    mid: float
    spread_bps: float
    bid_depth: dict[str, float]
    ask_depth: dict[str, float]
    imbalance: float
    walls: tuple[Wall, ...] = ()


class Sweep(msgspec.Struct, frozen=True, kw_only=True):
    """A burst of aggressive same-side trades that took several levels.

    Attributes:
        time: Time of the burst's last trade, ms UTC.
        side: ``buy`` (takers lifted asks) or ``sell`` (takers hit bids).
        notional: Quote currency traded in the burst.
        levels: Distinct price levels traded through.
        trades: Trades in the burst.
        price_start: First trade price, quote currency.
        price_end: Last trade price, quote currency.
    """

    time: int
    side: str
    notional: float
    levels: int
    trades: int
    price_start: float
    price_end: float


class FlowFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """Trade-flow features of one symbol (``engine.micro.flow``).

    Attributes:
        time: Time of the latest trade, ms UTC.
        taker_buy: Window (``1m``, ``5m``, ``15m``) → taker buy volume, quote currency.
        taker_sell: Window → taker sell volume, quote currency.
        cvd: Window → cumulative volume delta (taker buy - taker sell), quote currency.
        trade_rate: Trades per second over the shortest window.
        sweeps: Recent sweeps, newest last.
        cvd_series: Session CVD sampled at fixed steps, oldest first (for a sparkline).
    """

    time: int
    taker_buy: dict[str, float]
    taker_sell: dict[str, float]
    cvd: dict[str, float]
    trade_rate: float
    sweeps: tuple[Sweep, ...] = ()
    cvd_series: tuple[float, ...] = ()


class LiquidationPrint(msgspec.Struct, frozen=True, kw_only=True):
    """One sampled liquidation (Binance sends at most one per symbol per second).

    Attributes:
        time: Event time, ms UTC.
        side: ``long`` (a long was liquidated, order side SELL) or ``short``.
        price: Average fill price (order price if unfilled), quote currency.
        quantity: Size, base units.
        notional: ``price * quantity``, quote currency.
    """

    time: int
    side: str
    price: float
    quantity: float
    notional: float


class Derivatives(msgspec.Struct, frozen=True, kw_only=True):
    """Mark price, funding, open interest and liquidations of one symbol.

    Attributes:
        time: Time of the latest input, ms UTC.
        mark_price: Mark price, quote currency (``None`` if no mark price seen).
        index_price: Index price, quote currency.
        premium_bps: ``(mark - index) / index * 1e4``.
        funding_rate: Current funding rate, fraction per funding interval.
        next_funding_time: Next funding time, ms UTC (0 if unknown).
        funding_in_ms: ``next_funding_time - now`` (clipped at 0), ``None`` if unknown.
        open_interest: Latest open interest, base units.
        oi_change: Window → open interest change, fraction.
        oi_divergence: ``oi_up_price_down`` (open interest rising while price falls: new
            shorts pressing), ``oi_down_price_up`` (the reverse: a rally on closing shorts) or
            empty, over the configured divergence window (``engine.micro.derivs``).
        liquidations: Recent sampled liquidations, newest last.
        liquidation_notional: ``<window>:<side>`` (``1m:long``, ``5m:short``) → liquidated
            notional in that window, quote currency (sampled: see :class:`LiquidationPrint`).
    """

    time: int
    mark_price: float | None = None
    index_price: float | None = None
    premium_bps: float | None = None
    funding_rate: float | None = None
    next_funding_time: int = 0
    funding_in_ms: int | None = None
    open_interest: float | None = None
    oi_change: dict[str, float] = msgspec.field(default_factory=dict)
    oi_divergence: str = ""
    liquidations: tuple[LiquidationPrint, ...] = ()
    liquidation_notional: dict[str, float] = msgspec.field(default_factory=dict)


class MicroScore(msgspec.Struct, frozen=True, kw_only=True):
    """Microstructure score of one symbol (``engine.micro.score``).

    Attributes:
        score: 0-100, 50 neutral, above leans long.
        direction: +1 long, -1 short, 0 neutral.
        factors: Breakdown (``orderflow_imbalance``, ``liquidity_pressure``, ``sweeps``,
            ``oi_divergence``, ``funding``, ``momentum``, ``btc_microtrend``), each with its
            reading, weight and signed contribution.
        entry_ok: True when every entry condition holds (before cooldown / daily maximum).
        unmet: Entry conditions that failed (``score``, ``imbalance``, ``sweep``,
            ``spread``), or ``cooldown`` / ``daily_max``.
    """

    score: float
    direction: int
    factors: tuple[Factor, ...] = ()
    entry_ok: bool = False
    unmet: tuple[str, ...] = ()


class MicroView(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the order book pane shows for one symbol.

    Attributes:
        symbol: Venue symbol.
        time: Engine clock, ms UTC.
        book: Sync state.
        bids: Top bid levels (price, size), best first (empty unless synced).
        asks: Top ask levels, best first.
        tick_size: Price tick, quote currency (``None`` if unknown).
        features: Book features (``None`` unless synced).
        flow: Trade-flow features (``None`` before any trade).
        derivatives: Mark, funding, open interest, liquidations.
        score: Microstructure score (``None`` without book features).
        signal: Latest microstructure signal while within its cooldown.
    """

    symbol: str
    time: int
    book: BookInfo
    bids: tuple[tuple[float, float], ...] = ()
    asks: tuple[tuple[float, float], ...] = ()
    tick_size: float | None = None
    features: BookFeatures | None = None
    flow: FlowFeatures | None = None
    derivatives: Derivatives | None = None
    score: MicroScore | None = None
    signal: Signal | None = None
