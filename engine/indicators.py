"""Indicators of one closed-candle series, computed with TA-Lib (Supertrend: ``engine.supertrend``).

Every output is a float64 array of the input's length, NaN where the indicator is not yet
defined (TA-Lib's lookback). Names in the returned :class:`IndicatorSet`:

========================== ==================================================================
``ema_<p>``                EMA of the close for each ``IndicatorConfig.ema_periods`` entry
``macd``, ``macd_signal``, MACD line, signal line, histogram (``MACD(fast, slow, signal)``)
``macd_hist``
``rsi``                    RSI (Wilder), 0-100
``stochrsi_k``,            StochRSI %K and %D, 0-100 (see :func:`compute_indicators`)
``stochrsi_d``
``obv``, ``obv_slope``     On-balance volume (base units) and its least-squares slope per bar
                           over ``obv_slope_bars`` (TA-Lib ``LINEARREG_SLOPE``)
``atr``                    ATR (Wilder), quote currency
``adx``, ``plus_di``,      ADX and the directional indicators, 0-100
``minus_di``
``bb_upper``, ``bb_middle``, Bollinger bands (SMA ± k·σ) and width ``(upper - lower) / middle``
``bb_lower``, ``bb_width``
``supertrend``,            Supertrend line (quote currency) and direction (+1 up / -1 down)
``supertrend_dir``
``support``,               Rolling lowest low / highest high over ``sr_lookback`` bars
``resistance``             (TA-Lib ``MIN`` / ``MAX``; the current bar included)
========================== ==================================================================
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine import ta
from engine.candles import ClosedArrays
from engine.config import IndicatorConfig
from engine.supertrend import SUPERTREND_PERIODS, supertrend

FloatArray = npt.NDArray[np.float64]


class IndicatorSet(dict[str, FloatArray]):
    """Indicator name → float64 array (same length as the candles, NaN while undefined)."""

    def last(self, name: str) -> float:
        """Latest value of ``name`` (NaN if the series is empty).

        Raises:
            KeyError: if ``name`` was not computed.
        """
        values = self[name]
        return float(values[-1]) if values.shape[0] else float("nan")


def compute_indicators(arrays: ClosedArrays, cfg: IndicatorConfig) -> IndicatorSet:
    """Compute every indicator of one closed-candle series.

    StochRSI follows the usual chart definition (RSI → stochastic over the RSI period → %K
    smoothed by an SMA of ``stochrsi_k`` bars → %D an SMA of ``stochrsi_d`` bars of %K): TA-Lib
    ``STOCHRSI(close, timeperiod=stochrsi_period, fastk_period=stochrsi_period,
    fastd_period=stochrsi_k)`` returns the raw stochastic and its SMA; that SMA is %K, and
    ``SMA(%K, stochrsi_d)`` is %D.

    Args:
        arrays: Closed candles, oldest first (contiguous float64 columns).
        cfg: Indicator periods.

    Returns:
        The :class:`IndicatorSet` described in the module docstring.
    """
    o, h, lo, c, v = arrays.open, arrays.high, arrays.low, arrays.close, arrays.volume
    del o
    out = IndicatorSet()
    for period in cfg.ema_periods:
        out[f"ema_{period}"] = ta.EMA(c, timeperiod=period)
    macd, signal, hist = ta.MACD(
        c, fastperiod=cfg.macd_fast, slowperiod=cfg.macd_slow, signalperiod=cfg.macd_signal
    )
    out["macd"], out["macd_signal"], out["macd_hist"] = macd, signal, hist
    out["rsi"] = ta.RSI(c, timeperiod=cfg.rsi_period)
    _fast_k, k = ta.STOCHRSI(
        c,
        timeperiod=cfg.stochrsi_period,
        fastk_period=cfg.stochrsi_period,
        fastd_period=cfg.stochrsi_k,
    )  # fastd_matype defaults to SMA
    out["stochrsi_k"] = k
    out["stochrsi_d"] = ta.SMA(k, timeperiod=cfg.stochrsi_d)
    obv = ta.OBV(c, v)
    out["obv"] = obv
    out["obv_slope"] = ta.LINEARREG_SLOPE(obv, timeperiod=cfg.obv_slope_bars)
    out["atr"] = ta.ATR(h, lo, c, timeperiod=cfg.atr_period)
    out["adx"] = ta.ADX(h, lo, c, timeperiod=cfg.adx_period)
    out["plus_di"] = ta.PLUS_DI(h, lo, c, timeperiod=cfg.adx_period)
    out["minus_di"] = ta.MINUS_DI(h, lo, c, timeperiod=cfg.adx_period)
    # matype defaults to SMA: the classic Bollinger middle band.
    upper, middle, lower = ta.BBANDS(
        c, timeperiod=cfg.bb_period, nbdevup=cfg.bb_stddev, nbdevdn=cfg.bb_stddev
    )
    out["bb_upper"], out["bb_middle"], out["bb_lower"] = upper, middle, lower
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bb_width"] = (upper - lower) / middle
    line, direction = supertrend(
        h, lo, c, period=cfg.supertrend_period, multiplier=cfg.supertrend_multiplier,
        bars=SUPERTREND_PERIODS * cfg.supertrend_period,
    )
    out["supertrend"], out["supertrend_dir"] = line, direction
    out["support"] = ta.MIN(lo, timeperiod=cfg.sr_lookback)
    out["resistance"] = ta.MAX(h, timeperiod=cfg.sr_lookback)
    return out
