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

The carry and the direction are path dependent, so one pass walks the bars over plain floats
(cheaper than numpy for a recursion: ``bench/backtest.py``).

Window: with ``bars`` the Supertrend is computed over the last ``bars`` candles only, as if the
series began there. Both of its memories fade: the ATR's seed weighs ``(1 - 1/period)^k``
after ``k`` bars (about ``e^-14`` after ``15 x period``), and the band carry and direction
restart at every break of a band (every few dozen bars on real data), so a longer history
does not change the last values in practice (``tests/engine/test_engine_indicators.py``
checks it on the recorded klines) while it costs a longer walk on every evaluation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine import ta

FloatArray = npt.NDArray[np.float64]


SUPERTREND_PERIODS = 15
"""Window of the engine's Supertrend in ATR periods (see the module docstring)."""


def supertrend(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    period: int = 10,
    multiplier: float = 3.0,
    *,
    bars: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Supertrend line and direction.

    Args:
        high: Highs, quote currency, shape ``(n,)``, float64.
        low: Lows, same shape.
        close: Closes, same shape.
        period: ATR period (bars).
        multiplier: ATR multiple of the bands.
        bars: Compute over the last ``bars`` candles only (``None``: all of them).

    Returns:
        ``(line, direction)``, both shape ``(n,)``: the Supertrend level in quote currency and
        ``+1.0`` (uptrend) / ``-1.0`` (downtrend); NaN until the ATR is defined (and before
        the window with ``bars``).

    Raises:
        ValueError: if the arrays differ in length, or ``period`` < 1, ``multiplier`` <= 0 or
            ``bars`` < 1.
    """
    if not high.shape == low.shape == close.shape:
        raise ValueError(
            f"supertrend: high/low/close shapes differ: {high.shape} {low.shape} {close.shape}"
        )
    if period < 1 or multiplier <= 0:
        raise ValueError(f"supertrend: bad period {period} or multiplier {multiplier}")
    if bars is not None and bars < 1:
        raise ValueError(f"supertrend: bars must be at least 1, got {bars}")
    n = close.shape[0]
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    first = 0 if bars is None else max(0, n - bars)
    if n - first <= period:
        return line, direction
    h, lo, c = high[first:], low[first:], close[first:]
    atr = ta.ATR(h, lo, c, timeperiod=period)
    valid = np.flatnonzero(np.isfinite(atr))
    if valid.shape[0] == 0:
        return line, direction
    start = int(valid[0])
    mid = (h + lo) / 2.0
    upper_basic = (mid + multiplier * atr)[start:].tolist()
    lower_basic = (mid - multiplier * atr)[start:].tolist()
    closes = c[start:].tolist()
    upper, lower, state = upper_basic[0], lower_basic[0], -1.0  # the first bar starts down
    lines, states = [upper], [state]
    previous = closes[0]
    for up, down, close_ in zip(upper_basic[1:], lower_basic[1:], closes[1:], strict=True):
        # Final bands: the upper only moves down unless the previous close broke above it;
        # the lower only moves up unless the previous close broke below it.
        if previous > upper or up < upper:
            upper = up
        if previous < lower or down > lower:
            lower = down
        if state < 0.0:
            if close_ > upper:
                state = 1.0
        elif close_ < lower:
            state = -1.0
        states.append(state)
        lines.append(lower if state > 0.0 else upper)
        previous = close_
    line[first + start :] = lines
    direction[first + start :] = states
    return line, direction
