"""Spike detector: price spikes (return z-score), volume spikes and liquidation spikes.

Price and volume spikes are read on a timeframe's last closed candle (pure functions of closed
candles, TA-Lib for the statistics); liquidation spikes on the rolling notional of the
``forceOrder`` stream (:class:`LiquidationWindow`).
"""

from __future__ import annotations

import math
from collections import deque

from engine import ta
from engine.candles import ClosedArrays
from engine.indicators import FloatArray

SPIKE_WINDOW = 20
"""Closed candles before the last one that set the return and volume baselines."""
SPIKE_Z = 3.0
"""Absolute return z-score at or above which the last candle is a price spike."""
SPIKE_VOLUME = 3.0
"""Volume (x the baseline SMA) at or above which the last candle is a volume spike."""
LIQUIDATION_WINDOW_MS = 60_000
"""Rolling window of the liquidation notional, ms."""
LIQUIDATION_SPIKE_QUOTE = 250_000.0
"""Liquidated notional (quote currency) within the window that makes a liquidation spike."""


def return_zscore(close: FloatArray, window: int = SPIKE_WINDOW) -> float:
    """z-score of the last one-bar return against the ``window`` returns before it:
    ``(r - SMA(r)) / STDDEV(r)`` with TA-Lib ``ROCP``, ``SMA`` and (population) ``STDDEV``;
    NaN with too few candles or a flat baseline."""
    if close.shape[0] < window + 2:
        return math.nan
    tail = close[-(window + 2) :]
    returns = ta.ROCP(tail, timeperiod=1)  # first element NaN
    mean = float(ta.SMA(returns[1:-1], timeperiod=window)[-1])
    std = float(ta.STDDEV(returns[1:-1], timeperiod=window, nbdev=1.0)[-1])
    if not (math.isfinite(std) and std > 0):
        return math.nan
    return (float(returns[-1]) - mean) / std


def volume_ratio(volume: FloatArray, window: int = SPIKE_WINDOW) -> float:
    """Last volume over the TA-Lib ``SMA`` of the ``window`` volumes before it (NaN if
    undefined)."""
    if volume.shape[0] < window + 1:
        return math.nan
    base = float(ta.SMA(volume[-(window + 1) : -1], timeperiod=window)[-1])
    return float(volume[-1]) / base if base > 0 else math.nan


def candle_spikes(arrays: ClosedArrays) -> dict[str, float]:
    """``{"price": z, "volume": ratio}`` for the kinds whose threshold the last closed candle
    reaches (empty when none)."""
    out: dict[str, float] = {}
    z = return_zscore(arrays.close)
    if math.isfinite(z) and abs(z) >= SPIKE_Z:
        out["price"] = z
    ratio = volume_ratio(arrays.volume)
    if math.isfinite(ratio) and ratio >= SPIKE_VOLUME:
        out["volume"] = ratio
    return out


class LiquidationWindow:
    """Rolling liquidated notional of one symbol over :data:`LIQUIDATION_WINDOW_MS`."""

    __slots__ = ("_events", "total")

    def __init__(self) -> None:
        self._events: deque[tuple[int, float]] = deque()
        self.total = 0.0
        """Notional (quote currency) liquidated within the window."""

    def add(self, time_ms: int, notional: float) -> bool:
        """Add one liquidation; True when the window total reaches the spike threshold."""
        self._events.append((time_ms, notional))
        self.total += notional
        while self._events and self._events[0][0] <= time_ms - LIQUIDATION_WINDOW_MS:
            self.total -= self._events.popleft()[1]
        self.total = max(self.total, 0.0)
        return self.total >= LIQUIDATION_SPIKE_QUOTE



