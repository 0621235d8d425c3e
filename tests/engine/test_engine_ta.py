"""``engine.ta`` calls TA-Lib's C functions directly, with TA-Lib's own results."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from engine_data import arrays, frame

from engine import ta
from engine.detectors import PATTERNS


def test_unwrapped_functions_give_talibs_results_on_recorded_klines() -> None:
    a = arrays(frame("ETH", "5m").tail(600))
    h, lo, c, v = a.high, a.low, a.close, a.volume
    pairs = [
        (ta.EMA(c, timeperiod=21), talib.EMA(c, timeperiod=21)),
        (ta.ADX(h, lo, c, timeperiod=14), talib.ADX(h, lo, c, timeperiod=14)),
        (ta.OBV(c, v), talib.OBV(c, v)),
        (ta.STOCHRSI(c, timeperiod=14)[1], talib.STOCHRSI(c, timeperiod=14)[1]),
    ]
    for name in PATTERNS.values():
        pairs.append((ta.function(name)(a.open, h, lo, c), getattr(talib, name)(a.open, h, lo, c)))
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
    # TA-Lib's polars dispatch is what is skipped: a polars Series is not converted.
    assert getattr(talib.EMA, "__wrapped__", talib.EMA) is ta.EMA


def test_unknown_function_names_the_function() -> None:
    with pytest.raises(AttributeError, match="NOT_AN_INDICATOR"):
        ta.function("NOT_AN_INDICATOR")
