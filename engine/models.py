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
