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
    """

    timeframe: str
    vote: float | None
    bars: int
    bars_needed: int
    as_of: int = 0
    atr: float | None = None
    indicators: tuple[IndicatorVote, ...] = ()
    values: dict[str, float] = msgspec.field(default_factory=dict)

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
    """

    entry: float
    stop_loss: float
    take_profit_1: float
    take_profit_2: float
    risk_reward: float
    atr: float
    timeframe: str


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
    """

    symbol: str
    direction: Direction
    score: float
    confidence: float
    timeframes: tuple[TimeframeSignal, ...]
    plan: TradePlan | None
    as_of: int


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


class EngineSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Immutable view of the engine at one instant; the UI assigns it to a reactive.

    Attributes:
        time: Engine clock at snapshot time, ms UTC.
        version: Increments whenever any row changed; equal versions mean equal contents.
        timeframes: Configured timeframes, smallest first.
        symbols: One state per symbol in the universe, keyed by symbol.
        health: Feed health.
    """

    time: int
    version: int
    timeframes: tuple[str, ...]
    symbols: dict[str, SymbolState]
    health: FeedHealth
