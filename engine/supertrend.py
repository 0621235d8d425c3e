"""Supertrend (Olivier Seban), which TA-Lib lacks.

Formula (Seban's Supertrend as implemented by TradingView's built-in ``ta.supertrend``):

* ATR = TA-Lib ``ATR(high, low, close, period)`` (Wilder smoothing);
* basic bands: ``upper = (H + L) / 2 + m·ATR``, ``lower = (H + L) / 2 - m·ATR``;
* final-band carry: the final upper band only moves down — it takes the basic upper band if that is
  lower than the previous final upper band or the previous close broke above it, else it keeps
  the previous value; the final lower band mirrors this (only moves up, resets when the previous
  close broke below it);
* direction: starts down on the first bar with an ATR; a downtrend turns up when the close rises
  above the final upper band, an uptrend turns down when the close falls below the final lower
  band. The Supertrend line is the final lower band in an uptrend, the final upper band in a
  downtrend.

The carry is path dependent; between two band resets the final band is a running minimum
(maximum) of the basic band, so it is computed one reset segment at a time with
``np.minimum.accumulate`` instead of a per-bar Python loop. Resets are rare (about one per trend
change), so this stays a handful of numpy calls per series.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import talib

FloatArray = npt.NDArray[np.float64]


def _carry(
    basic: FloatArray, close: FloatArray, start: int, accumulate: np.ufunc, broke: np.ufunc
) -> FloatArray:
    """Final band from ``basic`` (NaN before ``start``).

    ``accumulate`` is ``np.minimum`` for the upper band (``broke`` = ``np.greater``: the previous
    close above the band resets it) and ``np.maximum`` for the lower band (``np.less``). The
    recursion is path-dependent, so it walks the bars; over plain floats that walk is cheaper
    than re-running a vectorised accumulate after every reset (``bench/backtest.py``).
    """
    n = basic.shape[0]
    out = [math.nan] * n
    if start >= n:
        return np.asarray(out)
    b = basic.tolist()
    c = close.tolist()
    upper = accumulate is np.minimum
    band = b[start]
    out[start] = band
    for i in range(start + 1, n):
        value = b[i]
        previous_close = c[i - 1]
        if upper:
            if previous_close > band or value < band:
                band = value
        elif previous_close < band or value > band:
            band = value
        out[i] = band
    del broke  # the walk tests the break itself
    return np.asarray(out, dtype=np.float64)


def supertrend(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    period: int = 10,
    multiplier: float = 3.0,
) -> tuple[FloatArray, FloatArray]:
    """Supertrend line and direction.

    Args:
        high: Highs, quote currency, shape ``(n,)``, float64.
        low: Lows, same shape.
        close: Closes, same shape.
        period: ATR period (bars).
        multiplier: ATR multiple of the bands.

    Returns:
        ``(line, direction)``, both shape ``(n,)``: the Supertrend level in quote currency and
        ``+1.0`` (uptrend) / ``-1.0`` (downtrend); NaN until the ATR is defined.

    Raises:
        ValueError: if the arrays differ in length, or ``period`` < 1 or ``multiplier`` <= 0.
    """
    if not high.shape == low.shape == close.shape:
        raise ValueError(
            f"supertrend: high/low/close shapes differ: {high.shape} {low.shape} {close.shape}"
        )
    if period < 1 or multiplier <= 0:
        raise ValueError(f"supertrend: bad period {period} or multiplier {multiplier}")
    n = close.shape[0]
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    if n == 0:
        return line, direction
    atr = talib.ATR(high, low, close, timeperiod=period)
    valid = np.flatnonzero(np.isfinite(atr))
    if valid.shape[0] == 0:
        return line, direction
    start = int(valid[0])
    mid = (high + low) / 2.0
    upper = _carry(mid + multiplier * atr, close, start, np.minimum, np.greater)
    lower = _carry(mid - multiplier * atr, close, start, np.maximum, np.less)

    up_break = close > upper
    down_break = close < lower
    up_break[: start + 1] = False
    down_break[: start + 1] = False
    if np.any(up_break & down_break):
        # Both bands broken on one bar (the bands crossed after a huge gap): the outcome depends
        # on the previous direction, so walk the bars.
        state = -1.0
        for i in range(start, n):
            if i > start:
                state = (1.0 if up_break[i] else -1.0) if state < 0 else (
                    -1.0 if down_break[i] else 1.0
                )
            direction[i] = state
    else:
        # A flip-flop: the last break decides; the first bar starts down.
        event = np.where(up_break, 1.0, np.where(down_break, -1.0, 0.0))
        event[start] = -1.0
        idx = np.where(event != 0.0, np.arange(n), start)
        idx = np.maximum.accumulate(idx)
        direction[start:] = event[idx[start:]]
    line[start:] = np.where(direction[start:] > 0, lower[start:], upper[start:])
    return line, direction
