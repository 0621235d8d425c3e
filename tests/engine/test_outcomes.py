"""Triple-barrier outcomes on real recorded 5m bars, checked against direct computations.

Plans come from a real close and TA-Lib ATR(14): LONG stop = close - ATR, TP1 = close + ATR,
TP2 = close + 2 ATR (SHORT mirrored). The bar indices were picked by hand from the recorded
files (ETH has 1m klines to order ambiguous bars, BTC does not).
"""

from __future__ import annotations

import numpy as np
import pytest
import talib

from engine.candles import ClosedArrays
from engine.models import Direction
from engine.outcomes import OutcomeConfig, triple_barrier
from tests.engine.engine_data import arrays, frame

FIVE_MIN = 300_000
CFG = OutcomeConfig()
COST = (CFG.fees_bps + CFG.slippage_bps) / 1e4


def _plan(base: str, i: int, direction: Direction) -> tuple[ClosedArrays, float, float, float,
                                                          float, int]:
    a = arrays(frame(base, "5m"))
    atr = float(talib.ATR(a.high, a.low, a.close, 14)[i])
    entry = float(a.close[i])
    s = 1.0 if direction is Direction.LONG else -1.0
    return a, entry, entry - s * atr, entry + s * atr, entry + s * 2 * atr, int(a.open_time[i])


def _eth_1m() -> ClosedArrays:
    return arrays(frame("ETH", "1m"))


def test_long_stop_loss_on_real_bars() -> None:
    a, entry, sl, tp1, tp2, t = _plan("ETH", 103, Direction.LONG)
    start = t + FIVE_MIN - 1
    out = triple_barrier(Direction.LONG, entry, sl, tp1, tp2, start, a, interval="5m", cfg=CFG)
    assert out is not None
    first = 104
    k = first + int(np.argmax(a.low[first:] <= sl))
    assert not np.any(a.high[first : k + 1] >= tp1)  # no target before (or in) the stop bar
    risk = entry - sl
    fill = min(sl, float(a.open[k]))
    assert out.result == "SL" and out.resolved_by == "bar"
    assert out.exit_time == int(a.open_time[k]) + FIVE_MIN - 1
    assert out.bars == k - first + 1 == 8
    assert out.time_to_outcome_ms == out.exit_time - start
    assert out.exit_price == pytest.approx(fill)
    assert out.mfe_r == pytest.approx(max(0.0, float(a.high[first:k].max()) - entry) / risk)
    assert out.mae_r == pytest.approx((entry - fill) / risk)
    assert out.realized_r == pytest.approx((fill - entry) / risk - COST * (entry + fill) / risk)
    assert not out.win


def test_long_tp1_then_break_even_stop() -> None:
    a, entry, sl, tp1, tp2, t = _plan("ETH", 100, Direction.LONG)
    out = triple_barrier(
        Direction.LONG, entry, sl, tp1, tp2, t + FIVE_MIN - 1, a, interval="5m", cfg=CFG
    )
    assert out is not None
    first = 101
    k1 = first + int(np.argmax(a.high[first:] >= tp1))
    assert not np.any(a.low[first : k1 + 1] <= sl)
    assert a.high[k1] < tp2
    # Break-even stop armed from the bar after TP1's fill.
    after = np.arange(k1 + 1, len(a))
    k2 = int(after[np.argmax((a.low[after] <= entry) | (a.high[after] >= tp2))])
    assert a.low[k2] <= entry and a.high[k2] < tp2
    risk = entry - sl
    fill = min(entry, float(a.open[k2]))
    assert out.result == "TP1" and out.resolved_by == "bar" and out.win
    assert out.exit_time == int(a.open_time[k2]) + FIVE_MIN - 1
    assert out.bars == k2 - first + 1 == 11
    assert out.exit_price == pytest.approx(fill)
    gross = 0.5 * (tp1 - entry) / risk + 0.5 * (fill - entry) / risk
    cost = COST * (entry + 0.5 * tp1 + 0.5 * fill) / risk
    assert out.realized_r == pytest.approx(gross - cost)
    assert out.mfe_r == pytest.approx((float(a.high[first:k2].max()) - entry) / risk)
    assert out.mae_r == pytest.approx(max(0.0, entry - float(a.low[first : k2 + 1].min())) / risk)


@pytest.mark.parametrize(("i", "direction"), [(101, Direction.LONG), (108, Direction.SHORT)])
def test_tp2_long_and_short(i: int, direction: Direction) -> None:
    a, entry, sl, tp1, tp2, t = _plan("ETH", i, direction)
    out = triple_barrier(direction, entry, sl, tp1, tp2, t + FIVE_MIN - 1, a, interval="5m",
                         cfg=CFG)
    assert out is not None
    s = 1.0 if direction is Direction.LONG else -1.0
    fav = a.high if s > 0 else a.low
    adv = a.low if s > 0 else a.high
    first = i + 1
    k1 = first + int(np.argmax(s * fav[first:] >= s * tp1))
    k2 = k1 + int(np.argmax(s * fav[k1:] >= s * tp2))
    assert not np.any(s * adv[first : k1 + 1] <= s * sl)
    assert not np.any(s * adv[k1 + 1 : k2 + 1] <= s * entry)
    risk = abs(entry - sl)
    assert out.result == "TP2"
    assert out.exit_time == int(a.open_time[k2]) + FIVE_MIN - 1
    assert out.exit_price == tp2
    assert out.mfe_r == pytest.approx(2.0)
    gross = 0.5 * 1.0 + 0.5 * 2.0
    assert out.realized_r == pytest.approx(gross - COST * (entry + 0.5 * tp1 + 0.5 * tp2) / risk)


def test_ambiguous_bar_lower_timeframe_and_conservative() -> None:
    # ETH 5m bar after index 130 touches both a SHORT's stop and TP1; LONG the same bar's mirror.
    a, entry, sl, tp1, tp2, t = _plan("ETH", 130, Direction.LONG)
    m1 = _eth_1m()
    start = t + FIVE_MIN - 1
    no_lower = triple_barrier(Direction.LONG, entry, sl, tp1, tp2, start, a, interval="5m",
                              cfg=CFG)
    with_lower = triple_barrier(Direction.LONG, entry, sl, tp1, tp2, start, a, interval="5m",
                                cfg=CFG, lower=m1, lower_interval="1m")
    assert no_lower is not None and with_lower is not None
    # Direct: the first 5m bar touching both levels, then its 1m bars in order.
    first = 131
    both = (a.low[first:] <= sl) & (a.high[first:] >= tp1)
    k = first + int(np.argmax(both))
    assert not np.any((a.low[first:k] <= sl) | (a.high[first:k] >= tp1))
    assert no_lower.result == "SL" and no_lower.resolved_by == "conservative"
    assert no_lower.exit_time == int(a.open_time[k]) + FIVE_MIN - 1
    assert no_lower.realized_r == pytest.approx(-1.0 - COST * (entry + sl) / (entry - sl))
    j0 = int(np.searchsorted(m1.open_time, a.open_time[k]))
    sub = slice(j0, j0 + 5)
    first_tp = int(np.argmax(m1.high[sub] >= tp1))
    first_sl = int(np.argmax(m1.low[sub] <= sl))
    assert m1.high[sub][first_tp] >= tp1 and first_tp < first_sl  # the 1m bars prove TP1 first
    assert with_lower.result == "TP1" and with_lower.resolved_by == "lower_timeframe"
    assert with_lower.win


def test_ambiguous_first_bar_resolved_by_1m_stop() -> None:
    a, entry, sl, tp1, tp2, t = _plan("ETH", 534, Direction.LONG)
    m1 = _eth_1m()
    out = triple_barrier(Direction.LONG, entry, sl, tp1, tp2, t + FIVE_MIN - 1, a,
                         interval="5m", cfg=CFG, lower=m1, lower_interval="1m")
    assert out is not None
    k = 535
    assert a.low[k] <= sl and a.high[k] >= tp1
    j0 = int(np.searchsorted(m1.open_time, a.open_time[k]))
    j = j0 + int(np.argmax((m1.low[j0 : j0 + 5] <= sl) | (m1.high[j0 : j0 + 5] >= tp1)))
    assert m1.low[j] <= sl and m1.high[j] < tp1
    assert out.result == "SL" and out.resolved_by == "lower_timeframe"
    assert out.exit_time == int(m1.open_time[j]) + 60_000 - 1
    assert out.bars == 1
    risk = entry - sl
    fav = float(m1.high[j0:j].max()) if j > j0 else entry
    assert out.mfe_r == pytest.approx(max(0.0, fav - entry) / risk)


def test_btc_without_1m_counts_the_stop() -> None:
    a, entry, sl, tp1, tp2, t = _plan("BTC", 259, Direction.SHORT)
    out = triple_barrier(Direction.SHORT, entry, sl, tp1, tp2, t + FIVE_MIN - 1, a,
                         interval="5m", cfg=CFG)
    assert out is not None
    k = 260
    assert a.high[k] >= sl and a.low[k] <= tp1
    assert out.result == "SL" and out.resolved_by == "conservative" and out.bars == 1
    assert out.mfe_r == 0.0  # the exit bar's favourable side is not counted
    assert out.mae_r == pytest.approx((max(sl, float(a.open[k])) - entry) / (sl - entry))


def test_timeout_and_unresolved() -> None:
    cfg = OutcomeConfig(horizon_bars={"5m": 3})
    a, entry, _, _, _, t = _plan("ETH", 2000, Direction.LONG)
    atr = float(talib.ATR(a.high, a.low, a.close, 14)[2000])
    sl, tp1, tp2 = entry - 20 * atr, entry + 20 * atr, entry + 40 * atr
    start = t + FIVE_MIN - 1
    out = triple_barrier(Direction.LONG, entry, sl, tp1, tp2, start, a, interval="5m", cfg=cfg)
    assert out is not None
    w = slice(2001, 2004)
    risk = entry - sl
    close = float(a.close[2003])
    assert out.result == "TIMEOUT" and out.resolved_by == "timeout" and out.bars == 3
    assert out.exit_time == int(a.open_time[2003]) + FIVE_MIN - 1 == start + 3 * FIVE_MIN
    assert out.exit_price == close
    assert out.mfe_r == pytest.approx(max(0.0, float(a.high[w].max()) - entry) / risk)
    assert out.mae_r == pytest.approx(max(0.0, entry - float(a.low[w].min())) / risk)
    assert out.realized_r == pytest.approx((close - entry) / risk - COST * (entry + close) / risk)
    # Live tracking: two of the three horizon bars closed → still open.
    partial = a.window(0, 2003)
    assert triple_barrier(Direction.LONG, entry, sl, tp1, tp2, start, partial, interval="5m",
                          cfg=cfg) is None


def test_bad_plans_are_refused() -> None:
    a, entry, sl, tp1, tp2, t = _plan("ETH", 100, Direction.LONG)
    with pytest.raises(ValueError, match="out of order"):
        triple_barrier(Direction.SHORT, entry, sl, tp1, tp2, t, a, interval="5m", cfg=CFG)
    with pytest.raises(ValueError, match="NEUTRAL"):
        triple_barrier(Direction.NEUTRAL, entry, sl, tp1, tp2, t, a, interval="5m", cfg=CFG)
    with pytest.raises(ValueError, match="lower_interval"):
        triple_barrier(Direction.LONG, entry, sl, tp1, tp2, t, a, interval="5m", cfg=CFG,
                       lower=a)
