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

import msgspec
import numpy as np

from engine import detectors, filters
from engine.candles import ClosedArrays
from engine.config import EngineConfig, SignalConfig
from engine.indicators import IndicatorSet, compute_indicators
from engine.models import (
    Direction,
    Factor,
    IndicatorVote,
    Signal,
    SignalType,
    TimeframeSignal,
    TradePlan,
)
from engine.profiles import RiskProfile, risk_profile
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
    "heikin_ashi": "pattern",
    "patterns": "pattern",
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
    traded = float(np.abs(arrays.volume[-n:]).sum())
    if math.isfinite(slope) and math.isfinite(traded) and traded > 0:
        votes.append(("obv", slope, _clip(2.0 * slope * (n - 1) / traded)))

    adx = ind.last("adx")
    trend = [v for name, _, v in votes if _GROUP_OF[name] == "trend"]
    if math.isfinite(adx) and trend:
        strength = min(adx / ADX_TRENDING, 1.0)
        votes.append(("adx", adx, (sum(trend) / len(trend)) * strength))
    return votes


def _candle_votes(
    ha_trend: int, labels: tuple[str, ...]
) -> list[tuple[str, float, float]]:
    """The candle group: Heikin Ashi trend always, patterns only when a signed one fired."""
    votes = [("heikin_ashi", float(ha_trend), float(ha_trend))]
    if any(p[-1] in "+-" for p in labels):
        vote = detectors.pattern_vote(labels)
        votes.append(("patterns", vote * 2.0, vote))
    return votes


def _group_weights(cfg: SignalConfig, regime: str = "") -> dict[str, float]:
    """Group weights, with the regime multipliers: trend and strength x
    ``regime_trend_boost`` when trending, momentum x ``regime_oscillator_boost`` when
    ranging."""
    trend_x = cfg.regime_trend_boost if regime == "trending" else 1.0
    osc_x = cfg.regime_oscillator_boost if regime == "ranging" else 1.0
    return {
        "trend": cfg.weight_trend * trend_x,
        "momentum": cfg.weight_momentum * osc_x,
        "volume": cfg.weight_volume,
        "strength": cfg.weight_strength * trend_x,
        "pattern": cfg.weight_pattern,
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
    width_pct = detectors.bb_width_percentile(indicators["bb_width"])
    regime = detectors.regime(indicators.last("adx"), width_pct, cfg.signals)
    labels = detectors.patterns(arrays)
    ha_trend = detectors.heikin_ashi_trend(arrays)
    if cfg.signals.weight_pattern > 0:
        raw.extend(_candle_votes(ha_trend, labels))
    group_weight = _group_weights(cfg.signals, regime)
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
    values["open"] = float(arrays.open[-1])
    values["high"] = float(arrays.high[-1])
    values["low"] = float(arrays.low[-1])
    if math.isfinite(width_pct):
        values["bb_width_pct"] = width_pct
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
        regime=regime,
        reversion=detectors.reversion(timeframe, arrays, indicators, cfg.signals),
        cluster=detectors.candle_cluster(arrays, cfg.signals),
        patterns=labels,
        heikin_ashi=ha_trend,
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


def plan_on_ticks(
    side: float,
    entry: float,
    stop: float,
    tp1: float,
    tp2: float,
    *,
    tick_size: float | None,
    atr: float,
    timeframe: str,
) -> TradePlan | None:
    """A :class:`TradePlan` from raw levels, put on the exchange's tick grid conservatively.

    With ``tick_size`` the entry goes to the nearest tick, the stop away from the entry and the
    targets towards it (floor for a LONG, ceil for a SHORT), and R:R
    (``|TP1 - entry| / |entry - SL|``) is computed from the rounded prices.

    Args:
        side: +1 LONG, -1 SHORT.
        entry: Entry price, quote currency.
        stop: Stop loss, quote currency.
        tp1: First target, quote currency.
        tp2: Second target, quote currency.
        tick_size: Price tick, quote currency (``None`` leaves prices unrounded).
        atr: ATR that sized the plan (0 when it was not ATR-based), quote currency.
        timeframe: Timeframe of that ATR (empty when none).

    Returns:
        The plan, or ``None`` when the stop is not above zero or the levels are not strictly
        ordered (``SL < entry < TP1 < TP2`` for a LONG, mirrored) after rounding.
    """
    if tick_size is not None and tick_size > 0:
        mode = "floor" if side > 0 else "ceil"
        entry = round_to_tick(entry, tick_size, "nearest")
        stop = round_to_tick(stop, tick_size, mode)
        tp1 = round_to_tick(tp1, tick_size, mode)
        tp2 = round_to_tick(tp2, tick_size, mode)
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
    return plan_on_ticks(
        side, entry, stop, tp1, tp2, tick_size=tick_size, atr=atr, timeframe=timeframe
    )


def evaluate_timeframe(timeframe: str, arrays: ClosedArrays, cfg: EngineConfig) -> TimeframeSignal:
    """Indicators (only when enough candles) and :func:`timeframe_signal` of one timeframe."""
    indicators = (
        compute_indicators(arrays, cfg.indicators)
        if len(arrays) >= cfg.timeframes.min_bars
        else None
    )
    return timeframe_signal(timeframe, arrays, indicators, cfg)


def _decide(score: float, confidence: float, profile: RiskProfile) -> Direction:
    if score >= profile.long_threshold and confidence >= profile.min_confidence:
        return Direction.LONG
    if score <= profile.short_threshold and confidence >= profile.min_confidence:
        return Direction.SHORT
    return Direction.NEUTRAL


def boosted_vote(vote: float, cluster_strength: float, boost: float) -> float:
    """``vote x (1 + boost x |strength|)`` clipped to [-1, 1] when the candle cluster agrees
    with the vote's sign, else ``vote`` unchanged."""
    if _sign(vote) and _sign(vote) == _sign(cluster_strength):
        return _clip(vote * (1.0 + boost * abs(cluster_strength)))
    return vote


def _side_type(side: int, kind: str) -> SignalType:
    return SignalType[f"{kind}_{'LONG' if side > 0 else 'SHORT'}"]


def signal_type(
    direction: Direction,
    confidence: float,
    balanced_score: float,
    reversion_score: float,
    reversion_direction: int,
    downgraded: bool,
    cfg: SignalConfig,
) -> SignalType:
    """The finer type of a signal.

    For a LONG/SHORT ``direction`` (side ``d``): ``WEAK_d`` when a filter downgraded it or a
    reversion setup (score >= ``reversion_threshold``) opposes it; ``STRONG_d`` when the
    balanced score is at least ``strong_score`` on its side (``100 - strong_score`` for SHORT)
    with confidence >= ``strong_confidence``; else ``MOMENTUM_d``. For NEUTRAL (including a
    blocked signal): ``REVERSION_r`` when the reversion score reaches ``reversion_threshold``
    (``r`` its direction); ``WEAK_*`` when the balanced score leans past ``weak_score``;
    else ``NEUTRAL``.
    """
    if direction is not Direction.NEUTRAL:
        side = 1 if direction is Direction.LONG else -1
        opposed = reversion_score >= cfg.reversion_threshold and reversion_direction == -side
        if downgraded or opposed:
            return _side_type(side, "WEAK")
        lean = side * (balanced_score - 50.0)
        if lean >= cfg.strong_score - 50.0 and confidence >= cfg.strong_confidence:
            return _side_type(side, "STRONG")
        return _side_type(side, "MOMENTUM")
    if reversion_direction and reversion_score >= cfg.reversion_threshold:
        return _side_type(reversion_direction, "REVERSION")
    if abs(balanced_score - 50.0) >= cfg.weak_score - 50.0 and balanced_score != 50.0:
        return _side_type(1 if balanced_score > 50.0 else -1, "WEAK")
    return SignalType.NEUTRAL


def _timeframe_factors(s: TimeframeSignal, weight: float) -> list[Factor]:
    tf = s.timeframe
    out = [Factor(
        name="vote", category="timeframe", timeframe=tf, value=s.vote or 0.0, weight=weight,
        contribution=weight * (s.vote or 0.0), note=f"{s.bars} closed candles",
    )]
    out.extend(
        Factor(
            name=v.name, category="indicator", timeframe=tf, value=v.value, weight=v.weight,
            contribution=v.vote * v.weight, note=f"{v.group} vote {v.vote:+.2f}",
        )
        for v in s.indicators
    )
    width = s.values.get("bb_width_pct", math.nan)
    out.append(Factor(
        name="regime", category="regime", timeframe=tf, value=s.values.get("adx", math.nan),
        note=f"{s.regime or 'unknown'}: ADX, BB width percentile {width:.0%}",
    ))
    if s.reversion is not None:
        out.extend(s.reversion.factors)
    if s.cluster is not None:
        c = s.cluster
        out.append(Factor(
            name="cluster", category="cluster", timeframe=tf, value=c.strength,
            weight=c.ratio, contribution=c.follow_through,
            note=f"{c.count} high-volume candles ({c.up} up, {c.down} down), follow-through "
            f"{c.follow_through:.0%}{', trend forming' if c.trend_forming else ''}",
        ))
    if s.patterns:
        out.append(Factor(
            name="patterns", category="pattern", timeframe=tf,
            value=detectors.pattern_vote(s.patterns), note=" ".join(s.patterns),
        ))
    return out


def plan_eta_minutes(
    plan: TradePlan, entry_atr: float | None, entry_timeframe: str
) -> float | None:
    """Minutes to TP1 at the entry timeframe's ATR speed: ``|TP1 - entry| / ATR`` bars of the
    entry timeframe (a bar covers about one ATR); ``None`` without an ATR."""
    if entry_atr is None or entry_atr <= 0:
        return None
    bars = abs(plan.take_profit_1 - plan.entry) / entry_atr
    return bars * interval_ms(entry_timeframe) / 60_000.0


def combine(
    symbol: str,
    timeframe_signals: Sequence[TimeframeSignal],
    cfg: EngineConfig,
    tick_size: float | None = None,
    *,
    now: int | None = None,
    profile: str | None = None,
    btc_microtrend: float | None = None,
) -> Signal:
    """The fused :class:`Signal` from per-timeframe signals (configured order, all included).

    The plan's ATR comes from ``SignalConfig.plan_timeframe`` when it is ready, else from the
    largest ready timeframe; the entry is the last close of the smallest ready timeframe.
    ``tick_size`` (quote currency) puts the plan's prices on the exchange's tick grid.

    Beyond :func:`fuse`: the risk profile's thresholds decide the direction; the momentum score
    fuses the timeframe votes boosted by agreeing candle clusters (:func:`boosted_vote`); the
    reversion score fuses ``direction x score`` of each timeframe's mean-reversion reading with
    the same timeframe weights; ``balanced = momentum_weight x momentum + (1 -
    momentum_weight) x reversion`` (both in [-1, 1], shown as 0-100). Risk filters
    (:mod:`engine.filters`) then block (NEUTRAL, no plan) or downgrade the signal and
    :func:`signal_type` types it.

    Args:
        symbol: Venue symbol.
        timeframe_signals: One per configured timeframe, warming-up ones included.
        cfg: Engine configuration.
        tick_size: Price tick, quote currency, or ``None``.
        now: Evaluation time (ms UTC) for the stale-data filter; ``None`` skips it.
        profile: Risk profile name overriding ``cfg.signals.risk_profile``.
        btc_microtrend: BTC's smallest-timeframe vote, for the ``btc_gate`` filter of an alt
            (``None`` for BTC itself or when unknown).

    Raises:
        ValueError: on an unknown profile or invalid timeframe weights (see :func:`fuse`).
    """
    sc = cfg.signals
    rp = risk_profile(sc, profile)
    _, score, confidence = fuse(symbol, timeframe_signals, sc)
    direction = _decide(score, confidence, rp)
    ready = sorted(
        (s for s in timeframe_signals if s.vote is not None),
        key=lambda s: interval_ms(s.timeframe),
    )
    weights = {s.timeframe: sc.timeframe_weights.get(s.timeframe, 1.0) for s in ready}
    w_ready = sum(weights.values())
    momentum = reversion = 0.0
    factors: list[Factor] = []
    for s in ready:
        w = weights[s.timeframe] / w_ready if w_ready > 0 else 0.0
        strength = s.cluster.strength if s.cluster else 0.0
        momentum += w * boosted_vote(s.vote or 0.0, strength, sc.cluster_boost)
        if s.reversion is not None:
            reversion += w * s.reversion.direction * s.reversion.score / 100.0
        factors.extend(_timeframe_factors(s, w))
    momentum, reversion = _clip(momentum), _clip(reversion)
    balanced = _clip(sc.momentum_weight * momentum + (1.0 - sc.momentum_weight) * reversion)
    momentum_score, balanced_score = 50.0 + 50.0 * momentum, 50.0 + 50.0 * balanced
    factors.extend((
        Factor(name="momentum", category="blend", value=momentum_score,
               weight=sc.momentum_weight, contribution=sc.momentum_weight * momentum,
               note="fused votes with candle-cluster boost"),
        Factor(name="reversion", category="blend", value=100.0 * abs(reversion),
               weight=1.0 - sc.momentum_weight,
               contribution=(1.0 - sc.momentum_weight) * reversion,
               note=f"direction {_sign(reversion):+d}"),
        Factor(name="balanced", category="blend", value=balanced_score, weight=1.0,
               contribution=balanced, note=f"profile {rp.name}"),
    ))

    plan = None
    plan_tf: TimeframeSignal | None = None
    if ready and direction is not Direction.NEUTRAL:
        by_tf = {s.timeframe: s for s in ready}
        plan_tf = by_tf.get(sc.plan_timeframe, ready[-1])
        if plan_tf.atr is None:
            plan_tf = next((s for s in reversed(ready) if s.atr is not None), plan_tf)
        entry = ready[0].values.get("close", math.nan)
        plan = trade_plan(
            direction, entry, plan_tf.atr or math.nan, plan_tf.timeframe, sc, tick_size
        )
        if plan is not None:
            level = plan_tf.values.get("support" if direction is Direction.LONG else "resistance")
            plan = msgspec.structs.replace(
                plan,
                eta_minutes=plan_eta_minutes(plan, ready[0].atr, ready[0].timeframe),
                invalidation=level,
            )
    fired: list[str] = []
    blocked = False
    if ready and direction is not Direction.NEUTRAL:
        checks = filters.risk_filters(
            direction, ready[0], plan_tf, plan, sc, rp, now, btc_microtrend
        )
        factors.extend(checks)
        fired = [f.name.removeprefix("filter.") for f in checks if f.contribution]
        blocked = any(name in rp.blocking for name in fired)
    final = Direction.NEUTRAL if blocked else direction
    kind = signal_type(
        final, confidence, balanced_score, 100.0 * abs(reversion), _sign(reversion),
        bool(fired) and not blocked, sc,
    )
    return Signal(
        symbol=symbol,
        direction=final,
        score=score,
        confidence=confidence,
        timeframes=tuple(timeframe_signals),
        plan=None if blocked else plan,
        as_of=max((s.as_of for s in timeframe_signals), default=0),
        signal_type=kind,
        momentum_score=momentum_score,
        reversion_score=100.0 * abs(reversion),
        reversion_direction=_sign(reversion),
        balanced_score=balanced_score,
        filters=tuple(fired),
        blocked=blocked,
        risk_profile=rp.name,
        patterns=ready[0].patterns if ready else (),
        factors=tuple(factors),
    )


def evaluate(
    symbol: str,
    arrays: Mapping[str, ClosedArrays],
    cfg: EngineConfig,
    tick_size: float | None = None,
    *,
    now: int | None = None,
    profile: str | None = None,
) -> Signal:
    """The signal of one symbol from its closed candles: a pure function (causal, repeatable).

    Args:
        symbol: Venue symbol.
        arrays: Closed candles by timeframe; a configured timeframe missing here counts as
            having no candles (warming up). Extra timeframes are ignored.
        cfg: Engine configuration.
        tick_size: Price tick of the contract (quote currency) for the plan, if known.
        now: Evaluation time (ms UTC) for the stale-data filter; ``None`` skips it.
        profile: Risk profile overriding ``cfg.signals.risk_profile``.

    Returns:
        The fused :class:`Signal` with one :class:`TimeframeSignal` per configured timeframe.
    """
    empty = ClosedArrays.empty()
    signals = [
        evaluate_timeframe(tf, arrays.get(tf, empty), cfg) for tf in cfg.timeframes.timeframes
    ]
    return combine(symbol, signals, cfg, tick_size, now=now, profile=profile)
