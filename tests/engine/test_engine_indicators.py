"""Indicators on recorded klines equal TA-Lib called directly; Supertrend equals a per-bar loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from engine_data import arrays, frame
from numpy.lib.stride_tricks import sliding_window_view

from engine.candles import ClosedArrays
from engine.config import IndicatorConfig
from engine.indicators import compute_indicators
from engine.supertrend import SUPERTREND_PERIODS, supertrend

SYMBOLS = ["BTC", "ETH", "DOGE", "TRX", "YFI", "AUDIO"]


def closed(base: str, timeframe: str = "5m", n: int = 600) -> ClosedArrays:
    return arrays(frame(base, timeframe).tail(n))


def same(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("base", SYMBOLS)
@pytest.mark.parametrize("timeframe", ["5m", "1h"])
def test_indicators_equal_talib(base: str, timeframe: str) -> None:
    if timeframe == "1h" and base == "TRX":
        timeframe = "5m"  # no recorded 1h file for TRX
    a = closed(base, timeframe)
    cfg = IndicatorConfig()
    ind = compute_indicators(a, cfg)
    h, lo, c, v = a.high, a.low, a.close, a.volume
    for p in cfg.ema_periods:
        same(ind[f"ema_{p}"], talib.EMA(c, timeperiod=p))
    macd, sig, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    same(ind["macd"], macd)
    same(ind["macd_signal"], sig)
    same(ind["macd_hist"], hist)
    same(ind["rsi"], talib.RSI(c, timeperiod=14))
    _, k = talib.STOCHRSI(c, timeperiod=14, fastk_period=14, fastd_period=3)
    same(ind["stochrsi_k"], k)
    same(ind["stochrsi_d"], talib.SMA(k, timeperiod=3))
    obv = talib.OBV(c, v)
    same(ind["obv"], obv)
    same(ind["obv_slope"], talib.LINEARREG_SLOPE(obv, timeperiod=cfg.obv_slope_bars))
    same(ind["atr"], talib.ATR(h, lo, c, timeperiod=14))
    same(ind["adx"], talib.ADX(h, lo, c, timeperiod=14))
    same(ind["plus_di"], talib.PLUS_DI(h, lo, c, timeperiod=14))
    same(ind["minus_di"], talib.MINUS_DI(h, lo, c, timeperiod=14))
    up, mid, low = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    same(ind["bb_upper"], up)
    same(ind["bb_middle"], mid)
    same(ind["bb_lower"], low)
    same(ind["bb_width"], (up - low) / mid)
    # Support/resistance against an independent numpy rolling window.
    win_low = sliding_window_view(lo, 20).min(axis=1)
    win_high = sliding_window_view(h, 20).max(axis=1)
    same(ind["support"][19:], win_low)
    same(ind["resistance"][19:], win_high)
    assert np.all(np.isnan(ind["support"][:19]))
    for name, values in ind.items():
        assert values.shape == c.shape, name
        assert np.isfinite(values[-1]), name  # 600 bars: everything is defined at the end


def test_stochrsi_k_is_the_smoothed_stochastic_of_rsi() -> None:
    # %K = SMA3(stochastic(14) of RSI14), %D = SMA3(%K): the usual chart definition.
    a = closed("ETH")
    ind = compute_indicators(a, IndicatorConfig())
    rsi = talib.RSI(a.close, timeperiod=14)
    windows = sliding_window_view(rsi, 14)
    lowest, highest = windows.min(axis=1), windows.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = 100.0 * (rsi[13:] - lowest) / (highest - lowest)
    k = sliding_window_view(raw, 3).mean(axis=1)
    got = ind["stochrsi_k"][15:]
    ok = np.isfinite(got) & np.isfinite(k)
    assert ok.sum() > 500
    np.testing.assert_allclose(got[ok], k[ok], rtol=1e-9, atol=1e-9)


def supertrend_reference(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, mult: float
) -> tuple[np.ndarray, np.ndarray]:
    """Plain per-bar loop of TradingView's ``ta.supertrend`` (Seban's Supertrend)."""
    atr = talib.ATR(high, low, close, timeperiod=period)
    n = close.shape[0]
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    prev_upper = prev_lower = math.nan
    prev_dir = 0.0
    for i in range(n):
        if math.isnan(atr[i]):
            continue
        hl2 = (high[i] + low[i]) / 2.0
        upper = hl2 + mult * atr[i]
        lower = hl2 - mult * atr[i]
        if not math.isnan(prev_upper):
            if not (upper < prev_upper or close[i - 1] > prev_upper):
                upper = prev_upper
            if not (lower > prev_lower or close[i - 1] < prev_lower):
                lower = prev_lower
        if math.isnan(atr[i - 1]) if i > 0 else True:
            d = -1.0
        elif prev_dir < 0:
            d = 1.0 if close[i] > upper else -1.0
        else:
            d = -1.0 if close[i] < lower else 1.0
        line[i] = lower if d > 0 else upper
        direction[i] = d
        prev_upper, prev_lower, prev_dir = upper, lower, d
    return line, direction


@pytest.mark.parametrize("base", [*SYMBOLS, "ZEC", "CKB"])
@pytest.mark.parametrize(("period", "mult"), [(10, 3.0), (7, 1.5), (14, 0.5)])
def test_supertrend_equals_per_bar_loop(base: str, period: int, mult: float) -> None:
    a = closed(base, n=2000)
    line, direction = supertrend(a.high, a.low, a.close, period, mult)
    ref_line, ref_dir = supertrend_reference(a.high, a.low, a.close, period, mult)
    np.testing.assert_array_equal(direction, ref_dir)
    np.testing.assert_allclose(line, ref_line, rtol=0, atol=0, equal_nan=True)
    flips = np.count_nonzero(np.diff(direction[period:]) != 0)
    assert flips >= 5  # both trend states are exercised
    assert set(np.unique(direction[period:])) == {-1.0, 1.0}


def test_supertrend_short_and_mismatched_inputs() -> None:
    a = closed("BTC", n=8)
    line, direction = supertrend(a.high, a.low, a.close, 10, 3.0)
    assert np.all(np.isnan(line)) and np.all(np.isnan(direction))
    with pytest.raises(ValueError, match="shapes differ"):
        supertrend(a.high, a.low[:-1], a.close)


@pytest.mark.parametrize("base", SYMBOLS)
def test_engine_supertrend_window_gives_the_whole_window_values(base: str) -> None:
    """The engine reads the Supertrend over its last ``15 x period`` candles; at every one of
    1,400 recorded 5m bars that gives the direction of the whole 500-candle window and its
    line to a millionth."""
    a = closed(base, n=1900)
    cfg = IndicatorConfig()
    bars = SUPERTREND_PERIODS * cfg.supertrend_period
    worst = 0.0
    for end in range(500, 1900):
        h, lo, c = a.high[end - 500 : end], a.low[end - 500 : end], a.close[end - 500 : end]
        period, mult = cfg.supertrend_period, cfg.supertrend_multiplier
        whole_line, whole_dir = supertrend(h, lo, c, period, mult)
        line, direction = supertrend(h, lo, c, period, mult, bars=bars)
        assert direction[-1] == whole_dir[-1], f"{base}: direction differs at bar {end}"
        worst = max(worst, abs(line[-1] / whole_line[-1] - 1.0))
        assert np.all(np.isnan(line[: 500 - bars]))
    assert worst < 1e-5
    ind = compute_indicators(a.window(start=1400), cfg)
    want_line, want_dir = supertrend(
        a.high[1400:], a.low[1400:], a.close[1400:], cfg.supertrend_period,
        cfg.supertrend_multiplier, bars=bars,
    )
    same(ind["supertrend"], want_line)
    same(ind["supertrend_dir"], want_dir)


def test_supertrend_window_must_hold_a_bar() -> None:
    a = closed("BTC", n=50)
    with pytest.raises(ValueError, match="bars must be at least 1"):
        supertrend(a.high, a.low, a.close, 10, 3.0, bars=0)
    line, direction = supertrend(a.high, a.low, a.close, 10, 3.0, bars=10)  # no ATR yet
    assert np.all(np.isnan(line)) and np.all(np.isnan(direction))
