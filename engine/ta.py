"""TA-Lib's functions as the engine calls them: the C functions themselves.

``import talib`` wraps every function in a dispatcher that checks each argument for a pandas or
polars Series (polars is installed here, so the wrapper is always on). The engine only passes
float64 numpy arrays, and the check costs about 1 µs per call against 1-2 µs for the call
itself; an evaluation makes about 35 calls, so the backtest spends ~10 % of its time there
(``python -m bench.backtest``). ``functools.wraps`` keeps the C function as ``__wrapped__``;
without a wrapper (neither library installed) the function is used as it is. Results are
identical: the wrapper passes numpy arrays through unchanged.

Usage: ``from engine import ta`` then ``ta.EMA(close, timeperiod=21)`` (TA-Lib's signatures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import talib

TaFunction = Callable[..., Any]


def function(name: str) -> TaFunction:
    """The unwrapped TA-Lib function ``name`` (e.g. ``"CDLHAMMER"``).

    Raises:
        AttributeError: TA-Lib has no function of that name.
    """
    func = getattr(talib, name)
    return getattr(func, "__wrapped__", func)  # type: ignore[no-any-return]


ADX = function("ADX")
ATR = function("ATR")
BBANDS = function("BBANDS")
EMA = function("EMA")
LINEARREG_SLOPE = function("LINEARREG_SLOPE")
MACD = function("MACD")
MAX = function("MAX")
MIN = function("MIN")
MINUS_DI = function("MINUS_DI")
OBV = function("OBV")
PLUS_DI = function("PLUS_DI")
ROCP = function("ROCP")
RSI = function("RSI")
SMA = function("SMA")
STDDEV = function("STDDEV")
STOCHRSI = function("STOCHRSI")
