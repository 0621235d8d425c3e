"""Spike detector and new-listing labels on real klines (direct numpy computation as reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_data import arrays, frame, klines

from engine import spikes
from engine.config import EngineConfig, TimeframeConfig
from engine.engine import Engine
from engine.models import FeedHealth


def direct(close: np.ndarray, volume: np.ndarray, t: int) -> tuple[float, float]:
    """Return z-score and volume ratio of bar t against the 20 bars before it."""
    r = close[1:] / close[:-1] - 1  # r[i - 1] is the return of bar i
    base = r[t - 21 : t - 1]
    z = (r[t - 1] - base.mean()) / base.std()
    ratio = volume[t] / volume[t - 20 : t].mean()
    return float(z), float(ratio)


def test_price_and_volume_spikes_match_a_direct_computation() -> None:
    df = frame("DOGE", "5m").head(4000)
    close, volume = df["close"].to_numpy(), df["volume"].to_numpy()
    found = {"price": 0, "volume": 0, "none": 0}
    for t in range(30, 4000, 3):
        z, ratio = direct(close, volume, t)
        assert spikes.return_zscore(close[: t + 1]) == pytest.approx(z, rel=1e-6, abs=1e-9)
        assert spikes.volume_ratio(volume[: t + 1]) == pytest.approx(ratio, rel=1e-9)
        got = spikes.candle_spikes(arrays(df.head(t + 1)))
        assert ("price" in got) == (abs(z) >= 3.0)
        assert ("volume" in got) == (ratio >= 3.0)
        for kind in got:
            found[kind] += 1
        found["none"] += not got
    assert found["price"] > 5 and found["volume"] > 5 and found["none"] > 100, found


async def test_engine_records_spikes_as_candles_close_and_flags_the_row() -> None:
    cfg = EngineConfig(timeframes=TimeframeConfig(timeframes=["5m", "15m"], min_bars=60))
    df = frame("DOGE", "5m").head(1200)
    close, volume = df["close"].to_numpy(), df["volume"].to_numpy()
    bars = klines(df, "DOGEUSDT", "5m")
    engine = Engine(cfg, clock=lambda: 0)
    engine.set_universe(["DOGEUSDT"])
    for kline in bars[:600]:
        engine.on_event(kline)
    await engine.recompute()
    before = len(engine.spikes)
    flagged = 0
    for t in range(600, 1200):
        engine.on_event(bars[t])
        await engine.recompute()
        z, ratio = direct(close, volume, t)
        want = {k for k, hit in (("price", abs(z) >= 3), ("volume", ratio >= 3)) if hit}
        new = [s for s in engine.spikes if s.time == bars[t].close_time]
        assert {s.kind for s in new} == want, t
        for s in new:
            assert s.symbol == "DOGEUSDT" and s.timeframe == "5m"
            assert s.value == pytest.approx(z if s.kind == "price" else ratio, rel=1e-6)
        row = engine.snapshot(_health()).symbols["DOGEUSDT"]
        if want:
            assert row.spike in want
            flagged += 1
    assert flagged > 3 and len(engine.spikes) > before
    assert math.isfinite(engine.spikes[-1].value)


def test_symbols_joining_during_the_session_are_new_listings() -> None:
    now = 1_691_000_000_000
    engine = Engine(EngineConfig(), clock=lambda: now)
    engine.set_universe(["BTCUSDT", "ETHUSDT"])
    engine.set_universe(["BTCUSDT", "ETHUSDT", "ARBUSDT"])
    engine.set_onboard_dates({"ETHUSDT": now - 5 * 86_400_000, "BTCUSDT": now - 900 * 86_400_000})
    snap = engine.snapshot(_health())
    assert snap.new_listings == ("ETHUSDT", "ARBUSDT")
    assert [s for s, row in snap.symbols.items() if row.new_listing] == ["ETHUSDT", "ARBUSDT"]


def _health() -> FeedHealth:
    return FeedHealth(mode="REPLAY", exchange="binanceusdm")
