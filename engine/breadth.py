"""Market breadth: the state of the whole universe from the snapshot rows.

A pure function of :class:`~engine.models.SymbolState` rows (the ticker stream's 24 h change,
high and low, the mark-price stream's funding, polled open interest changes, and each signal's
per-timeframe readings), so
the same rows always give the same numbers. Stale rows (data stopped) are left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from engine.models import Breadth, Direction, SymbolState

NEW_EXTREME_TOLERANCE = 0.0025
"""A last price within this fraction of the 24 h high (low) counts as a new high (low)."""
BTC_SYMBOL = "BTCUSDT"
"""Symbol whose signal gives the market's BTC trend."""
HIGH_VOLATILITY = 0.8
"""Median Bollinger width percentile at or above which the market is ``high`` volatility."""
LOW_VOLATILITY = 0.2
"""... and below which it is ``low``."""


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _above(rows: Sequence[SymbolState], timeframe: str, ema: str) -> float | None:
    """Percent of rows whose ``timeframe`` reading has ``ema`` defined with close above it."""
    above = total = 0
    for row in rows:
        if row.signal is None:
            continue
        tf = next((t for t in row.signal.timeframes if t.timeframe == timeframe), None)
        if tf is None or tf.vote is None or ema not in tf.values or "close" not in tf.values:
            continue
        total += 1
        above += tf.values["close"] > tf.values[ema]
    return 100.0 * above / total if total else None


def compute_breadth(
    rows: Mapping[str, SymbolState], timeframes: Sequence[str], time: int
) -> Breadth:
    """Breadth of the fresh rows.

    Args:
        rows: Snapshot rows by symbol.
        timeframes: Configured timeframes, smallest first.
        time: Engine clock, ms UTC.

    Returns:
        The :class:`Breadth` (fields documented there).
    """
    fresh = [r for r in rows.values() if not r.stale]
    changes = [r.change_24h_pct for r in fresh if r.change_24h_pct is not None]
    highs = lows = 0
    for r in fresh:
        if r.last_price is None:
            continue
        if r.high_24h is not None and r.last_price >= r.high_24h * (1 - NEW_EXTREME_TOLERANCE):
            highs += 1
        if r.low_24h is not None and r.last_price <= r.low_24h * (1 + NEW_EXTREME_TOLERANCE):
            lows += 1
    funding = [(r.funding_rate, r.symbol) for r in fresh if r.funding_rate is not None]
    top = max(funding, default=None)
    bottom = min(funding, default=None)
    atr_pct: list[float] = []
    width_pct: list[float] = []
    smallest = timeframes[0] if timeframes else ""
    for r in fresh:
        if r.signal is None:
            continue
        tf = next((t for t in r.signal.timeframes if t.timeframe == smallest), None)
        if tf is None or tf.vote is None:
            continue
        close = tf.values.get("close")
        if tf.atr is not None and close:
            atr_pct.append(100.0 * tf.atr / close)
        if "bb_width_pct" in tf.values:
            width_pct.append(tf.values["bb_width_pct"])
    vol = _median(width_pct)
    regime = ""
    if vol is not None:
        regime = "high" if vol >= HIGH_VOLATILITY else ("low" if vol < LOW_VOLATILITY else "normal")
    btc = rows.get(BTC_SYMBOL)
    btc_signal = btc.signal if btc is not None else None
    micro = None
    if btc_signal is not None:
        micro = next((t.vote for t in btc_signal.timeframes if t.vote is not None), None)
    signals = [r.signal for r in fresh if r.signal is not None]
    oi: dict[str, list[float]] = {}
    for r in fresh:
        for window, change in r.oi_change.items():
            oi.setdefault(window, []).append(change)
    return Breadth(
        time=time,
        symbols=len(changes),
        advancers=sum(c > 0 for c in changes),
        decliners=sum(c < 0 for c in changes),
        unchanged=sum(c == 0 for c in changes),
        median_change_pct=_median(changes),
        new_highs=highs,
        new_lows=lows,
        above_ema50_pct={tf: _above(fresh, tf, "ema_50") for tf in timeframes},
        above_ema200_pct={tf: _above(fresh, tf, "ema_200") for tf in timeframes},
        median_funding=_median([f for f, _ in funding]),
        max_funding=top[0] if top else None,
        max_funding_symbol=top[1] if top else "",
        min_funding=bottom[0] if bottom else None,
        min_funding_symbol=bottom[1] if bottom else "",
        median_atr_pct=_median(atr_pct),
        volatility_percentile=vol,
        volatility_regime=regime,
        longs=sum(s.direction is Direction.LONG for s in signals),
        shorts=sum(s.direction is Direction.SHORT for s in signals),
        btc_trend=btc_signal.direction.value if btc_signal is not None else "",
        btc_score=btc_signal.score if btc_signal is not None else None,
        btc_microtrend=micro,
        oi_symbols={w: len(v) for w, v in oi.items()},
        oi_rising={w: sum(c > 0 for c in v) for w, v in oi.items()},
        oi_falling={w: sum(c < 0 for c in v) for w, v in oi.items()},
        median_oi_change={w: _median(v) for w, v in oi.items()},
    )
