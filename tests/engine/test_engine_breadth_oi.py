"""Open-interest breadth: rising/falling counts and the median change per window.

The recorded data holds no open interest, so the readings are Binance's documented
``GET /fapi/v1/openInterest`` example (``{"openInterest":"10659.509","symbol":"BTCUSDT",
"time":1589437530011}``) and copies of it moved by whole percents: wire-format examples that
exercise the arithmetic, not market data.
"""

from __future__ import annotations

import statistics

import msgspec
import pytest

from engine.breadth import compute_breadth
from engine.config import EngineConfig
from engine.engine import Engine
from engine.models import FeedHealth
from feeds.events import OpenInterest

DOC_OI = 10659.509
DOC_TIME = 1589437530011
HEALTH = FeedHealth(mode="REPLAY", exchange="binanceusdm")


def test_oi_breadth_counts_rising_and_falling_per_window() -> None:
    moves = {"BTCUSDT": 0.02, "ETHUSDT": -0.01, "XRPUSDT": 0.03}
    now = DOC_TIME + 3_600_000
    engine = Engine(EngineConfig(stale_after_s=86_400), clock=lambda: now)
    engine.set_universe([*moves, "LTCUSDT"])  # LTC never polled: not counted
    for symbol, move in moves.items():
        for k in range(13):  # one reading each 5 minutes over the hour
            engine.on_event(OpenInterest(
                symbol=symbol, open_interest=DOC_OI * (1 + move * k / 12),
                time=DOC_TIME + k * 300_000,
            ))
    snap = engine.snapshot(HEALTH)
    # Polled open interest alone does not make a row fresh; breadth counts fresh rows only.
    rows = {s: msgspec.structs.replace(r, stale=False) for s, r in snap.symbols.items()}
    breadth = compute_breadth(rows, ("5m",), now)
    changes = {s: r.oi_change for s, r in rows.items() if r.oi_change}
    assert set(changes) == set(moves)
    for window in ("5m", "15m", "1h"):
        values = [c[window] for c in changes.values()]
        assert breadth.oi_symbols[window] == 3
        assert breadth.oi_rising[window] == sum(v > 0 for v in values) == 2
        assert breadth.oi_falling[window] == sum(v < 0 for v in values) == 1
        assert breadth.median_oi_change[window] == pytest.approx(statistics.median(values))
    stale = compute_breadth(engine.snapshot(HEALTH).symbols, ("5m",), now)
    assert stale.oi_symbols == {}
