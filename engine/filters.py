"""Risk filters that block or downgrade a LONG/SHORT signal, each reported by name.

Read on the *entry* timeframe's last closed candle (the smallest ready timeframe, whose close is
the plan's entry) unless noted; ATR and levels in quote currency:

* ``overextension``: the close more than ``overextension_atr`` ATR beyond EMA21 in the signal
  direction (chasing a stretched move);
* ``trap_wick``: the adverse wick (upper for LONG, lower for SHORT) at least
  ``trap_wick_body`` x the body and at least ``trap_wick_atr`` ATR (rejection at the signal
  bar);
* ``oversized_candle``: the bar's range at least ``oversized_atr`` ATR;
* ``into_resistance`` (LONG) / ``into_support`` (SHORT): the close within ``sr_atr`` ATR of the
  rolling resistance/support, on the entry timeframe or on the plan (higher) timeframe;
* ``min_risk_reward``: the plan's R:R below the profile's minimum (or the per-timeframe
  ``min_risk_reward`` override);
* ``stale_data``: the entry timeframe's last closed candle more than ``stale_bars`` bars old
  at evaluation time;
* ``btc_gate``: for an alt (not BTC itself), BTC's microtrend (its smallest-timeframe vote in
  [-1, 1]) at or beyond ``btc_gate_vote`` against the signal: alts mostly follow BTC over
  minutes, so a long into a falling BTC is fighting the market.
"""

from __future__ import annotations

import math

from engine.config import SignalConfig
from engine.models import Direction, Factor, TimeframeSignal, TradePlan
from engine.profiles import RiskProfile
from feeds.intervals import interval_ms

RATIO_CAP = 999.0
"""Ratios with a zero denominator (a bodiless candle's wick) are reported as this."""


def _factor(name: str, fired: bool, value: float, note: str, profile: RiskProfile) -> Factor:
    action = ("blocks" if name in profile.blocking else "downgrades") if fired else "passed"
    return Factor(
        name=f"filter.{name}", category="filter", value=value,
        contribution=1.0 if fired else 0.0, note=f"{action}: {note}",
    )


def _level_distance(tf: TimeframeSignal, side: int) -> float:
    """Distance (ATR) from the close to resistance (side +1) or support (side -1)."""
    close, atr = tf.values.get("close"), tf.atr
    level = tf.values.get("resistance" if side > 0 else "support")
    if close is None or level is None or atr is None or atr <= 0:
        return math.nan
    return side * (level - close) / atr


def risk_filters(
    direction: Direction,
    entry: TimeframeSignal,
    plan_tf: TimeframeSignal | None,
    plan: TradePlan | None,
    cfg: SignalConfig,
    profile: RiskProfile,
    now: int | None = None,
    btc_microtrend: float | None = None,
) -> list[Factor]:
    """Evaluate every filter for a LONG/SHORT signal (module docstring for definitions).

    Args:
        direction: LONG or SHORT (NEUTRAL gives no filters).
        entry: The entry timeframe's signal (its ``values`` hold the last closed candle's OHLC,
            EMAs, support and resistance).
        plan_tf: The timeframe that sized the plan (higher-timeframe levels), if any.
        plan: The trade plan, if any (R:R filter).
        cfg: Filter thresholds.
        profile: Risk profile (minimum R:R, which filters block).
        now: Evaluation time, ms UTC; ``None`` skips the stale-data filter.
        btc_microtrend: BTC's smallest-timeframe vote for an alt; ``None`` (BTC itself, no
            BTC data, or the gate disabled) skips the BTC gate.

    Returns:
        One ``filter.<name>`` :class:`Factor` per evaluated filter, ``contribution`` 1 when it
        fired, with its reading in ``value`` and what it does in ``note``.
    """
    if direction is Direction.NEUTRAL:
        return []
    side = 1 if direction is Direction.LONG else -1
    v = entry.values
    atr = entry.atr
    close, open_, high, low = (v.get(k, math.nan) for k in ("close", "open", "high", "low"))
    out: list[Factor] = []

    ema = v.get("ema_21")
    if ema is not None and atr:
        stretch = (close - ema) / atr
        out.append(_factor(
            "overextension", side * stretch > cfg.overextension_atr, stretch,
            f"close {stretch:+.2f} ATR from EMA21 (limit {cfg.overextension_atr:g})", profile,
        ))

    body = abs(close - open_)
    wick = high - max(close, open_) if side > 0 else min(close, open_) - low
    if math.isfinite(wick):
        ratio = min(wick / body, RATIO_CAP) if body > 0 else (RATIO_CAP if wick > 0 else 0.0)
        out.append(_factor(
            "trap_wick",
            wick > 0 and ratio >= cfg.trap_wick_body and wick >= cfg.trap_wick_atr * (atr or 0.0),
            ratio,
            f"{'upper' if side > 0 else 'lower'} wick "
            + (f"{ratio:.2f}x body" if body > 0 else "on a bodiless candle")
            + f", {wick / atr if atr else 0.0:.2f} ATR (limits {cfg.trap_wick_body:g}x body, "
            f"{cfg.trap_wick_atr:g} ATR)", profile,
        ))

    if atr:
        size = (high - low) / atr
        out.append(_factor(
            "oversized_candle", size >= cfg.oversized_atr, size,
            f"range {size:.2f} ATR (limit {cfg.oversized_atr:g})", profile,
        ))

    name = "into_resistance" if side > 0 else "into_support"
    distances = [_level_distance(entry, side)]
    if plan_tf is not None and plan_tf.timeframe != entry.timeframe:
        distances.append(_level_distance(plan_tf, side))
    defined = [d for d in distances if math.isfinite(d)]
    if defined:
        nearest = min(defined)
        out.append(_factor(
            name, nearest <= cfg.sr_atr, nearest,
            f"{nearest:.2f} ATR to {'resistance' if side > 0 else 'support'} "
            f"(limit {cfg.sr_atr:g})", profile,
        ))

    if plan is not None:
        minimum = cfg.min_risk_reward.get(plan.timeframe, profile.min_risk_reward)
        out.append(_factor(
            "min_risk_reward", plan.risk_reward < minimum, plan.risk_reward,
            f"R:R {plan.risk_reward:.2f} (minimum {minimum:g})", profile,
        ))

    if now is not None and entry.as_of:
        age_bars = (now - entry.as_of) / interval_ms(entry.timeframe)
        out.append(_factor(
            "stale_data", age_bars > cfg.stale_bars, age_bars,
            f"last close {age_bars:.1f} bars ago (limit {cfg.stale_bars:g})", profile,
        ))

    if btc_microtrend is not None and cfg.btc_gate:
        against = -side * btc_microtrend
        out.append(_factor(
            "btc_gate", against >= cfg.btc_gate_vote, btc_microtrend,
            f"BTC microtrend {btc_microtrend:+.2f} (gate at {-side * cfg.btc_gate_vote:+.2f})",
            profile,
        ))
    return out
