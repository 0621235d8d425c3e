"""Wilson interval against published values; track stats on real outcomes."""

from __future__ import annotations

import pytest
import talib

from engine.models import Direction
from engine.outcomes import OutcomeConfig, triple_barrier
from engine.track_record import track_stats, wilson_interval
from tests.engine.engine_data import arrays, frame


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Brown, Cai & DasGupta (2001) / standard tables: 8/10 → [0.490, 0.943].
    [(8, 10, 0.490, 0.943), (0, 10, 0.0, 0.278), (10, 10, 0.722, 1.0), (50, 100, 0.404, 0.596)],
)
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-4)


def test_wilson_bad_args() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_track_stats_on_real_outcomes() -> None:
    a = arrays(frame("BTC", "5m"))
    atr = talib.ATR(a.high, a.low, a.close, 14)
    outs = []
    for i in range(100, 400, 10):
        e, r = float(a.close[i]), float(atr[i])
        o = triple_barrier(Direction.LONG, e, e - r, e + r, e + 2 * r,
                           int(a.open_time[i]) + 299_999, a, interval="5m", cfg=OutcomeConfig())
        assert o is not None
        outs.append(o)
    st = track_stats(outs, "STRONG_LONG")
    wins = [o for o in outs if o.result in ("TP1", "TP2")]
    assert st.count == 30 and st.wins == len(wins) and 0 < st.wins < 30
    assert st.hit_rate == pytest.approx(len(wins) / 30)
    assert (st.hit_low, st.hit_high) == wilson_interval(len(wins), 30)
    assert st.avg_r == pytest.approx(sum(o.realized_r for o in outs) / 30)
    assert st.expectancy < st.avg_r + 1e-12  # lower-bound hit rate is conservative
    assert st.avg_bars == pytest.approx(sum(o.bars for o in outs) / 30)
