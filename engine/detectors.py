"""Per-timeframe detectors read at the last closed candle: regime, mean reversion, high-volume
candle clustering, TA-Lib candlestick patterns and the Heikin Ashi trend.

Each is a pure function of closed candles (and their :mod:`engine.indicators`), reading nothing
after the last bar: the result for bar ``t`` is the function of ``arrays.window(stop=t + 1)``.
"""

from __future__ import annotations

import math

import numpy as np

from engine import ta
from engine.candles import ClosedArrays
from engine.config import SignalConfig
from engine.indicators import FloatArray, IndicatorSet
from engine.models import CandleCluster, Factor, Reversion

REGIMES = ("trending", "ranging", "high_volatility")
"""Regime labels."""

REVERSION_POINTS = 25.0
"""Points of each of the four mean-reversion factors (4 x 25 = 100)."""

PATTERNS: dict[str, str] = {
    "hammer": "CDLHAMMER",
    "inverted_hammer": "CDLINVERTEDHAMMER",
    "hanging_man": "CDLHANGINGMAN",
    "shooting_star": "CDLSHOOTINGSTAR",
    "engulfing": "CDLENGULFING",
    "doji": "CDLDOJI",
    "morning_star": "CDLMORNINGSTAR",
    "evening_star": "CDLEVENINGSTAR",
    "harami": "CDLHARAMI",
    "piercing": "CDLPIERCING",
    "dark_cloud": "CDLDARKCLOUDCOVER",
    "three_soldiers": "CDL3WHITESOLDIERS",
    "three_crows": "CDL3BLACKCROWS",
    "marubozu": "CDLMARUBOZU",
}
"""Pattern label → TA-Lib function (all from TA-Lib's Pattern Recognition group)."""

PATTERN_TAIL = 60
"""Bars handed to the TA-Lib pattern functions: their candle-size averages look back at most
ten-odd bars, so the last value over this tail equals the one over the whole series."""

_PATTERN_FUNCTIONS = tuple((label, ta.function(name)) for label, name in PATTERNS.items())

UNSIGNED_PATTERNS = frozenset({"doji"})
"""Patterns TA-Lib reports as +100 that carry no direction (indecision)."""


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def bb_width_percentile(bb_width: FloatArray) -> float:
    """Share (0-1) of the series' defined Bollinger widths at or below the last one; NaN if the
    last width is undefined."""
    last = float(bb_width[-1]) if bb_width.shape[0] else math.nan
    if not math.isfinite(last):
        return math.nan
    defined = bb_width[np.isfinite(bb_width)]
    return float(np.count_nonzero(defined <= last)) / float(defined.shape[0])


def regime(adx: float, width_percentile: float, cfg: SignalConfig) -> str:
    """``high_volatility`` when the Bollinger width percentile is at least
    ``regime_high_vol_percentile``, else ``trending`` when ADX >= ``regime_trend_adx``, else
    ``ranging``; empty when either input is undefined."""
    if not (math.isfinite(adx) and math.isfinite(width_percentile)):
        return ""
    if width_percentile >= cfg.regime_high_vol_percentile:
        return "high_volatility"
    return "trending" if adx >= cfg.regime_trend_adx else "ranging"


def streak(close: FloatArray) -> int:
    """Signed count of consecutive same-direction closes ending at the last bar (+3: three
    closes each above the previous one; an unchanged close ends a streak)."""
    n = close.shape[0]
    if n < 2:
        return 0
    # Walk back from the end: streaks are a few bars long, so this reads a handful of values
    # where a vectorised diff would touch the whole series.
    later = float(close[-1])
    earlier = float(close[-2])
    last = _sign(later - earlier)
    if last == 0:
        return 0
    run = 1
    for i in range(n - 3, -1, -1):
        later, earlier = earlier, float(close[i])
        if _sign(later - earlier) != last:
            break
        run += 1
    return run * last


def reversion(
    timeframe: str, arrays: ClosedArrays, ind: IndicatorSet, cfg: SignalConfig
) -> Reversion:
    """Mean-reversion score of the last closed candle from four factors, 25 points each,
    signed by the reversion direction (+ bounce expected, - pullback expected):

    * ``exhaustion``: at least ``reversion_streak`` consecutive same-direction closes → against
      the streak;
    * ``volume_exhaustion``: the previous candle's volume at least ``reversion_volume_spike`` x
      the ``volume_average_bars`` SMA of the volumes before it, and the last volume at least
      ``reversion_volume_drop`` below it → against the climax candle's direction;
    * ``excessive_move``: ``|close / close[-1 - reversion_move_bars] - 1|`` at least the
      timeframe's ``reversion_move`` → against the move;
    * ``rsi_extreme``: RSI above ``reversion_rsi_high`` → short, below ``reversion_rsi_low``
      → long.

    ``score = |Σ points|`` (0-100), ``direction = sign(Σ points)``.
    """
    close, volume = arrays.close, arrays.volume
    n = close.shape[0]
    factors: list[Factor] = []

    run = streak(close)
    d = -_sign(run) if abs(run) >= cfg.reversion_streak else 0
    factors.append(Factor(
        name="exhaustion", category="reversion", timeframe=timeframe, value=float(run),
        weight=REVERSION_POINTS, contribution=REVERSION_POINTS * d,
        note=f"{abs(run)} consecutive closes (needs {cfg.reversion_streak})",
    ))

    d, ratio = 0, math.nan
    k = cfg.volume_average_bars
    if n >= k + 2:
        average = float(ta.SMA(volume[n - 2 - k : n - 2], timeperiod=k)[-1])
        if average > 0:
            ratio = float(volume[-2]) / average
            falling = volume[-1] <= (1.0 - cfg.reversion_volume_drop) * volume[-2]
            if ratio >= cfg.reversion_volume_spike and falling:
                d = -_sign(float(close[-2] - arrays.open[-2]))
    factors.append(Factor(
        name="volume_exhaustion", category="reversion", timeframe=timeframe, value=ratio,
        weight=REVERSION_POINTS, contribution=REVERSION_POINTS * d,
        note=f"climax {cfg.reversion_volume_spike}x avg then -{cfg.reversion_volume_drop:.0%}",
    ))

    d, move = 0, math.nan
    bars = cfg.reversion_move_bars
    limit = cfg.reversion_move.get(timeframe, cfg.reversion_move_default)
    if n > bars and close[-1 - bars] > 0:
        move = float(close[-1] / close[-1 - bars] - 1.0)
        if abs(move) >= limit:
            d = -_sign(move)
    factors.append(Factor(
        name="excessive_move", category="reversion", timeframe=timeframe, value=move,
        weight=REVERSION_POINTS, contribution=REVERSION_POINTS * d,
        note=f">= {limit:.1%} in {bars} bars",
    ))

    rsi = ind.last("rsi")
    d = 0
    if math.isfinite(rsi):
        d = -1 if rsi > cfg.reversion_rsi_high else (1 if rsi < cfg.reversion_rsi_low else 0)
    factors.append(Factor(
        name="rsi_extreme", category="reversion", timeframe=timeframe, value=rsi,
        weight=REVERSION_POINTS, contribution=REVERSION_POINTS * d,
        note=f"RSI > {cfg.reversion_rsi_high:g} or < {cfg.reversion_rsi_low:g}",
    ))
    net = sum(f.contribution for f in factors)
    return Reversion(score=abs(net), direction=_sign(net), factors=tuple(factors))


def candle_cluster(arrays: ClosedArrays, cfg: SignalConfig) -> CandleCluster:
    """High-volume candles in the last ``cluster_lookback`` bars, grouped by direction.

    A candle is high-volume when its volume is at least ``cluster_volume`` x the
    ``volume_average_bars`` SMA of the volumes before it; its direction is ``sign(close -
    open)`` (doji-bodied candles are left out). ``follow_through`` is the share of
    majority-direction candles with ``cluster_follow_bars`` later bars whose close that many
    bars later lies further in their direction. ``strength = direction x ratio x
    follow_through x min(count / cluster_min_count, 1)``.
    """
    volume, close, open_ = arrays.volume, arrays.close, arrays.open
    n = close.shape[0]
    k = cfg.volume_average_bars
    if n < k + 1:
        return CandleCluster()
    # SMA of the k volumes before each bar i: talib.SMA at i - 1.
    average = ta.SMA(volume, timeperiod=k)
    start = max(k, n - cfg.cluster_lookback)
    prior = average[start - 1 : n - 1]
    dirs = np.sign(close[start:] - open_[start:])
    with np.errstate(invalid="ignore"):
        high = (volume[start:] >= cfg.cluster_volume * prior) & (prior > 0) & (dirs != 0)
    offsets = np.flatnonzero(high)
    hv = (offsets + start).tolist()
    hv_dirs = dirs[offsets].tolist()
    up = hv_dirs.count(1.0)
    down = hv_dirs.count(-1.0)
    count = up + down
    if count == 0:
        return CandleCluster()
    direction = _sign(up - down)
    ratio = max(up, down) / count
    follow = 0.0
    f = cfg.cluster_follow_bars
    if direction:
        eligible = [i for i, d in zip(hv, hv_dirs, strict=True) if d == direction and i + f < n]
        if eligible:
            moved = sum(direction * (float(close[i + f]) - float(close[i])) > 0 for i in eligible)
            follow = float(moved) / float(len(eligible))
    strength = direction * ratio * follow * min(count / cfg.cluster_min_count, 1.0)
    forming = bool(
        direction
        and count >= cfg.cluster_min_count
        and ratio >= cfg.cluster_min_ratio
        and follow >= cfg.cluster_min_follow
    )
    return CandleCluster(
        count=count, up=up, down=down, ratio=ratio, follow_through=follow,
        strength=float(strength), trend_forming=forming,
    )


def patterns(arrays: ClosedArrays) -> tuple[str, ...]:
    """TA-Lib candlestick patterns completed by the last closed candle, as labels in
    :data:`PATTERNS` order: ``name+`` bullish, ``name-`` bearish, bare ``doji``."""
    if len(arrays) == 0:
        return ()
    start = max(0, len(arrays) - PATTERN_TAIL)
    # Views: the columns are contiguous float64, as TA-Lib needs.
    o, h, lo, c = (arrays.open[start:], arrays.high[start:], arrays.low[start:],
                   arrays.close[start:])
    found: list[str] = []
    for label, func in _PATTERN_FUNCTIONS:
        value = int(func(o, h, lo, c)[-1])
        if value == 0:
            continue
        found.append(label if label in UNSIGNED_PATTERNS else f"{label}{'+' if value > 0 else '-'}")
    return tuple(found)


def pattern_vote(labels: tuple[str, ...]) -> float:
    """Vote in [-1, 1] of pattern labels: each signed pattern is half a vote, clipped."""
    total = sum(1 if p.endswith("+") else -1 for p in labels if p[-1] in "+-")
    return max(-1.0, min(1.0, total / 2.0))


HEIKIN_ASHI_BARS = 3
"""Consecutive same-colour Heikin Ashi candles that make a trend."""
HEIKIN_ASHI_TAIL = 80
"""Candles the Heikin Ashi trend is computed over: the HA open's seed weighs ``2^-77`` at the
last bar, far below float64 precision."""


def heikin_ashi(arrays: ClosedArrays) -> tuple[FloatArray, FloatArray]:
    """Heikin Ashi open and close.

    ``HA close = (O + H + L + C) / 4``; ``HA open[i] = (HA open[i-1] + HA close[i-1]) / 2``,
    an EMA with alpha 1/2 of the previous HA close — TA-Lib ``EMA(ha_close, 3)`` (alpha
    2/(3+1)) shifted one bar. TA-Lib seeds it with an SMA instead of ``(O0 + C0) / 2``; the
    seed's weight halves every bar, so it is below float precision after ~55 bars.
    """
    return _heikin_ashi(arrays.open, arrays.high, arrays.low, arrays.close)


def _heikin_ashi(
    open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray
) -> tuple[FloatArray, FloatArray]:
    ha_close = (open_ + high + low + close) / 4.0
    ha_open = np.full_like(ha_close, np.nan)
    if ha_close.shape[0] >= 4:
        ha_open[1:] = ta.EMA(ha_close, timeperiod=3)[:-1]
    return ha_open, ha_close


def heikin_ashi_trend(arrays: ClosedArrays) -> int:
    """+1 when the last :data:`HEIKIN_ASHI_BARS` Heikin Ashi candles all close above their
    open, -1 when all below, else 0.

    Computed over the last :data:`HEIKIN_ASHI_TAIL` candles: the HA open's seed halves every
    bar (see :func:`heikin_ashi`), so a longer series gives the same last candles."""
    start = max(0, len(arrays) - HEIKIN_ASHI_TAIL)
    ha_open, ha_close = _heikin_ashi(
        arrays.open[start:], arrays.high[start:], arrays.low[start:], arrays.close[start:]
    )
    if ha_close.shape[0] < HEIKIN_ASHI_BARS:
        return 0
    body = (ha_close[-HEIKIN_ASHI_BARS:] - ha_open[-HEIKIN_ASHI_BARS:]).tolist()
    if not all(math.isfinite(b) for b in body):
        return 0
    if all(b > 0 for b in body):
        return 1
    if all(b < 0 for b in body):
        return -1
    return 0
