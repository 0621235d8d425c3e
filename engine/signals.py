"""Indicator votes → timeframe votes → fused multi-timeframe signal and ATR trade plan.

Everything here is a pure function of closed candles: the same candles always give the same
:class:`~engine.models.Signal`, and nothing after the last closed candle is ever read.

Votes are in [-1, 1] (+1 fully long). Per timeframe:

* **trend** group — ``ema_stack``: the close and the EMAs (fastest first) compared pairwise
  (close vs fastest EMA, each EMA vs the next slower one); the vote is the mean of the pair
  signs, so the fully bullish order ``close > EMA9 > EMA21 > EMA50 > EMA200`` is +1, the bearish
  order -1, and partial stacks fall in between. ``supertrend``: its direction, ±1.
* **momentum** group — ``macd``: half the histogram (line vs signal line) in units of
  :data:`MACD_HIST_ATR` ATR plus half the MACD line in units of :data:`MACD_LINE_ATR` ATR, each
  clipped to ±1 (ATR scaling makes it comparable across symbols and timeframes). ``rsi``: the
  RSI read as momentum, not as overbought/oversold: 30 → -1, 50 → 0, 70 → +1, clipped — the same
  trend-following reading as the other votes, so they can be averaged. ``stochrsi``: half %K vs
  %D (a 10-point lead is a full vote) plus half the %K level (20 → -1, 80 → +1), clipped.
* **volume** group — ``obv``: the least-squares OBV slope over ``obv_slope_bars`` bars times
  the window length, divided by the volume traded in the window (the share of the window's
  volume the OBV trend gained or lost), doubled and clipped to ±1.
* **strength** group — ``adx``: the trend group's direction scaled by ``min(ADX / 25, 1)``
  (ADX 25 is the usual threshold of a trending market).

A group votes the mean of its available votes; the timeframe vote is the group-weighted mean
(``SignalConfig.weight_*``) over groups that have a vote. A timeframe with fewer than
``TimeframeConfig.min_bars`` closed candles is warming up: vote ``None``, excluded from fusion.

Fusion over READY timeframes with ``SignalConfig.timeframe_weights`` ``w``:

* ``fused = Σ w·vote / Σ w`` and ``score = 50 + 50·fused`` (0-100, 50 neutral);
* ``confidence = agreement × coverage``: ``agreement`` is the timeframe-weighted share of
  indicator-vote weight whose sign equals the sign of ``fused`` (zero votes do not agree);
  ``coverage`` is the ready timeframes' share of the configured timeframes' weight. It is 0
  when ``fused`` is exactly 0 or no timeframe is ready;
* LONG if ``score >= long_threshold`` and ``confidence >= min_confidence``, SHORT if
  ``score <= short_threshold`` and ``confidence >= min_confidence``, else NEUTRAL.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from engine.candles import ClosedArrays
from engine.config import EngineConfig, SignalConfig
from engine.indicators import IndicatorSet, compute_indicators
from engine.models import Direction, IndicatorVote, Signal, TimeframeSignal, TradePlan
from feeds.intervals import interval_ms

MACD_HIST_ATR = 0.25
"""MACD histogram (in ATR) that makes a full half-vote."""
MACD_LINE_ATR = 0.5
"""MACD line (in ATR) that makes a full half-vote."""
ADX_TRENDING = 25.0
"""ADX at and above which the trend counts at full strength."""
STOCHRSI_CROSS_POINTS = 10.0
"""%K lead over %D (points) that makes a full half-vote."""

_GROUP_OF = {
    "ema_stack": "trend",
    "supertrend": "trend",
    "macd": "momentum",
    "rsi": "momentum",
    "stochrsi": "momentum",
    "obv": "volume",
    "adx": "strength",
}


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _raw_votes(
    arrays: ClosedArrays, ind: IndicatorSet, cfg: EngineConfig
) -> list[tuple[str, float, float]]:
    """``(name, reading, vote)`` of every indicator whose reading is defined at the last bar."""
    votes: list[tuple[str, float, float]] = []
    close = float(arrays.close[-1])

    stack = [close]
    for period in sorted(cfg.indicators.ema_periods):
        value = ind.last(f"ema_{period}")
        if math.isfinite(value):
            stack.append(value)
    if len(stack) >= 2:
        signs = [_sign(a - b) for a, b in itertools.pairwise(stack)]
        votes.append(("ema_stack", float(sum(signs)), sum(signs) / len(signs)))

    st_dir, st_line = ind.last("supertrend_dir"), ind.last("supertrend")
    if _finite(st_dir, st_line):
        votes.append(("supertrend", st_line, float(st_dir)))

    atr = ind.last("atr")
    macd, hist = ind.last("macd"), ind.last("macd_hist")
    if _finite(macd, hist, atr) and atr > 0:
        vote = 0.5 * _clip(hist / (MACD_HIST_ATR * atr)) + 0.5 * _clip(macd / (MACD_LINE_ATR * atr))
        votes.append(("macd", hist, vote))

    rsi = ind.last("rsi")
    if math.isfinite(rsi):
        votes.append(("rsi", rsi, _clip((rsi - 50.0) / 20.0)))

    k, d = ind.last("stochrsi_k"), ind.last("stochrsi_d")
    if _finite(k, d):
        vote = 0.5 * _clip((k - d) / STOCHRSI_CROSS_POINTS) + 0.5 * _clip((k - 50.0) / 30.0)
        votes.append(("stochrsi", k, vote))

    n = cfg.indicators.obv_slope_bars
    slope = ind.last("obv_slope")
    traded = float(np.sum(np.abs(arrays.volume[-n:])))
    if math.isfinite(slope) and math.isfinite(traded) and traded > 0:
        votes.append(("obv", slope, _clip(2.0 * slope * (n - 1) / traded)))

    adx = ind.last("adx")
    trend = [v for name, _, v in votes if _GROUP_OF[name] == "trend"]
    if math.isfinite(adx) and trend:
        strength = min(adx / ADX_TRENDING, 1.0)
        votes.append(("adx", adx, (sum(trend) / len(trend)) * strength))
    return votes


def _group_weights(cfg: SignalConfig) -> dict[str, float]:
    return {
        "trend": cfg.weight_trend,
        "momentum": cfg.weight_momentum,
        "volume": cfg.weight_volume,
        "strength": cfg.weight_strength,
    }


def _close_time(arrays: ClosedArrays, timeframe: str) -> int:
    if len(arrays) == 0:
        return 0
    return int(arrays.open_time[-1]) + interval_ms(timeframe) - 1


def timeframe_signal(
    timeframe: str,
    arrays: ClosedArrays,
    indicators: IndicatorSet | None,
    cfg: EngineConfig,
) -> TimeframeSignal:
    """The vote of one timeframe from its closed candles and their indicators.

    Args:
        timeframe: Interval code.
        arrays: Closed candles, oldest first.
        indicators: :func:`~engine.indicators.compute_indicators` of ``arrays``; may be ``None``
            while warming up (fewer than ``cfg.timeframes.min_bars`` candles).
        cfg: Engine configuration (min bars, indicator periods, group weights).

    Returns:
        A warming-up :class:`TimeframeSignal` (vote ``None``) with too few candles or no
        defined indicator, else the weighted vote in [-1, 1] with its indicator votes.

    Raises:
        ValueError: if there are enough candles but ``indicators`` is ``None``.
    """
    bars = len(arrays)
    needed = cfg.timeframes.min_bars
    as_of = _close_time(arrays, timeframe)
    warming = TimeframeSignal(
        timeframe=timeframe, vote=None, bars=bars, bars_needed=needed, as_of=as_of
    )
    if bars < needed:
        return warming
    if indicators is None:
        raise ValueError(f"{timeframe}: {bars} closed candles but no indicators were given")
    raw = _raw_votes(arrays, indicators, cfg)
    if not raw:
        return warming
    group_weight = _group_weights(cfg.signals)
    members: dict[str, int] = {}
    for name, _, _ in raw:
        members[_GROUP_OF[name]] = members.get(_GROUP_OF[name], 0) + 1
    total = sum(group_weight[g] for g in members)
    votes: list[IndicatorVote] = []
    for name, reading, vote in raw:
        group = _GROUP_OF[name]
        weight = group_weight[group] / total / members[group] if total > 0 else 0.0
        votes.append(IndicatorVote(name=name, group=group, value=reading, vote=vote, weight=weight))
    tf_vote = _clip(sum(v.weight * v.vote for v in votes))
    values = {"close": float(arrays.close[-1])}
    for name, series in indicators.items():
        value = float(series[-1])
        if math.isfinite(value):
            values[name] = value
    atr = values.get("atr")
    return TimeframeSignal(
        timeframe=timeframe,
        vote=tf_vote,
        bars=bars,
        bars_needed=needed,
        as_of=as_of,
        atr=atr if atr is not None and atr > 0 else None,
        indicators=tuple(votes),
        values=values,
    )


def fuse(
    symbol: str, timeframe_signals: Sequence[TimeframeSignal], cfg: SignalConfig
) -> tuple[Direction, float, float]:
    """Fuse the READY timeframe votes (formula in the module docstring).

    Args:
        symbol: Venue symbol (for error messages).
        timeframe_signals: One per configured timeframe, warming-up ones included.
        cfg: Timeframe weights, thresholds and minimum confidence.

    Returns:
        ``(direction, score 0-100, confidence 0-1)``; ``(NEUTRAL, 50.0, 0.0)`` when no
        timeframe is ready.

    Raises:
        ValueError: if a timeframe weight is negative or the ready weights sum to 0.
    """
    weights = [cfg.timeframe_weights.get(s.timeframe, 1.0) for s in timeframe_signals]
    if any(w < 0 for w in weights):
        raise ValueError(f"{symbol}: negative timeframe weight in {cfg.timeframe_weights}")
    ready = [(s, w) for s, w in zip(timeframe_signals, weights, strict=True) if s.vote is not None]
    if not ready:
        return Direction.NEUTRAL, 50.0, 0.0
    w_ready = sum(w for _, w in ready)
    w_all = sum(weights)
    if w_ready <= 0:
        raise ValueError(f"{symbol}: the ready timeframes all have weight 0")
    fused = _clip(sum(w * (s.vote or 0.0) for s, w in ready) / w_ready)
    score = 50.0 + 50.0 * fused
    side = _sign(fused)
    agreement = 0.0
    if side:
        for s, w in ready:
            agree = sum(v.weight for v in s.indicators if _sign(v.vote) == side)
            agreement += w * agree
        agreement /= w_ready
    confidence = max(0.0, min(1.0, agreement * (w_ready / w_all)))
    if score >= cfg.long_threshold and confidence >= cfg.min_confidence:
        direction = Direction.LONG
    elif score <= cfg.short_threshold and confidence >= cfg.min_confidence:
        direction = Direction.SHORT
    else:
        direction = Direction.NEUTRAL
    return direction, score, confidence


def round_to_tick(price: float, tick: float, mode: str) -> float:
    """``price`` on the tick grid: ``mode`` is ``floor``, ``ceil`` or ``nearest``.

    The result is rounded to the tick's decimals so it prints as the exchange would.
    """
    steps = price / tick
    # Absorb float noise (0.30000000000000004 / 0.1) before floor/ceil.
    nearest = round(steps)
    if abs(steps - nearest) < 1e-9:
        steps = nearest
    if mode == "floor":
        count = math.floor(steps)
    elif mode == "ceil":
        count = math.ceil(steps)
    else:
        count = round(steps)
    decimals = max(0, -math.floor(math.log10(tick)) + 1)
    return float(round(count * tick, decimals))


def trade_plan(
    direction: Direction,
    entry: float,
    atr: float,
    timeframe: str,
    cfg: SignalConfig,
    tick_size: float | None = None,
) -> TradePlan | None:
    """ATR trade plan.

    LONG: ``SL = entry - stop_atr·ATR``, ``TP1 = entry + tp1_atr·ATR``,
    ``TP2 = entry + tp2_atr·ATR``; SHORT mirrored. ``R:R = |TP1 - entry| / |entry - SL|``.
    With ``tick_size`` every price is put on the exchange's tick grid conservatively: the stop
    away from the entry, the targets towards it, and R:R is computed from the rounded prices.

    Args:
        direction: LONG or SHORT (NEUTRAL gives ``None``).
        entry: Entry price, quote currency.
        atr: ATR, quote currency.
        timeframe: Timeframe the ATR comes from.
        cfg: ATR multiples.
        tick_size: Price tick (quote currency), or ``None`` to leave prices unrounded.

    Returns:
        The plan, or ``None`` for NEUTRAL, a non-positive/non-finite entry or ATR, a stop at
        or below zero for a LONG, or an ATR so small against the tick that the rounded levels
        collapse onto each other.
    """
    if direction is Direction.NEUTRAL or not _finite(entry, atr) or entry <= 0 or atr <= 0:
        return None
    side = 1.0 if direction is Direction.LONG else -1.0
    stop = entry - side * cfg.stop_atr * atr
    if stop <= 0:
        return None
    tp1 = entry + side * cfg.tp1_atr * atr
    tp2 = entry + side * cfg.tp2_atr * atr
    if tick_size is not None and tick_size > 0:
        away, toward = ("floor", "floor") if side > 0 else ("ceil", "ceil")
        entry = round_to_tick(entry, tick_size, "nearest")
        stop = round_to_tick(stop, tick_size, away)
        tp1 = round_to_tick(tp1, tick_size, toward)
        tp2 = round_to_tick(tp2, tick_size, toward)
        if stop <= 0 or not (side * stop < side * entry < side * tp1 < side * tp2):
            return None
    return TradePlan(
        entry=entry,
        stop_loss=stop,
        take_profit_1=tp1,
        take_profit_2=tp2,
        risk_reward=abs(tp1 - entry) / abs(entry - stop),
        atr=atr,
        timeframe=timeframe,
    )


def evaluate_timeframe(timeframe: str, arrays: ClosedArrays, cfg: EngineConfig) -> TimeframeSignal:
    """Indicators (only when enough candles) and :func:`timeframe_signal` of one timeframe."""
    indicators = (
        compute_indicators(arrays, cfg.indicators)
        if len(arrays) >= cfg.timeframes.min_bars
        else None
    )
    return timeframe_signal(timeframe, arrays, indicators, cfg)


def combine(
    symbol: str,
    timeframe_signals: Sequence[TimeframeSignal],
    cfg: EngineConfig,
    tick_size: float | None = None,
) -> Signal:
    """The fused :class:`Signal` from per-timeframe signals (configured order, all included).

    The plan's ATR comes from ``SignalConfig.plan_timeframe`` when it is ready, else from the
    largest ready timeframe; the entry is the last close of the smallest ready timeframe.
    ``tick_size`` (quote currency) puts the plan's prices on the exchange's tick grid.
    """
    direction, score, confidence = fuse(symbol, timeframe_signals, cfg.signals)
    ready = sorted(
        (s for s in timeframe_signals if s.vote is not None),
        key=lambda s: interval_ms(s.timeframe),
    )
    plan = None
    if ready and direction is not Direction.NEUTRAL:
        by_tf = {s.timeframe: s for s in ready}
        sized = by_tf.get(cfg.signals.plan_timeframe, ready[-1])
        if sized.atr is None:
            sized = next((s for s in reversed(ready) if s.atr is not None), sized)
        entry = ready[0].values.get("close", math.nan)
        plan = trade_plan(
            direction, entry, sized.atr or math.nan, sized.timeframe, cfg.signals, tick_size
        )
    return Signal(
        symbol=symbol,
        direction=direction,
        score=score,
        confidence=confidence,
        timeframes=tuple(timeframe_signals),
        plan=plan,
        as_of=max((s.as_of for s in timeframe_signals), default=0),
    )


def evaluate(
    symbol: str,
    arrays: Mapping[str, ClosedArrays],
    cfg: EngineConfig,
    tick_size: float | None = None,
) -> Signal:
    """The signal of one symbol from its closed candles: a pure function (causal, repeatable).

    Args:
        symbol: Venue symbol.
        arrays: Closed candles by timeframe; a configured timeframe missing here counts as
            having no candles (warming up). Extra timeframes are ignored.
        cfg: Engine configuration.
        tick_size: Price tick of the contract (quote currency) for the plan, if known.

    Returns:
        The fused :class:`Signal` with one :class:`TimeframeSignal` per configured timeframe.
    """
    empty = ClosedArrays.empty()
    signals = [
        evaluate_timeframe(tf, arrays.get(tf, empty), cfg) for tf in cfg.timeframes.timeframes
    ]
    return combine(symbol, signals, cfg, tick_size)
