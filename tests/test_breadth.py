"""`perpscope breadth --replay` end to end on the real 55-symbol kline history, checked against a
direct polars computation over the same replayed universe (the recorded files as of the end)."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from textual.app import App, ComposeResult

from engine.config import EngineConfig, TimeframeConfig
from engine.engine import Engine
from engine.models import EngineSnapshot, FeedHealth
from tests.conftest import KLINES_55
from tests.recorded import klines_from_rows, ohlcv_rows
from tui.widgets.breadth import BreadthPane, breadth_summary

REPO = Path(__file__).resolve().parents[1]
START = "2023-08-02T12:00"
DAY = 86_400_000
TOLERANCE = 0.0025  # engine.breadth.NEW_EXTREME_TOLERANCE


def read(base: str, kind: str) -> pl.DataFrame | None:
    path = KLINES_55 / f"{base}_USDT_USDT-{kind}.feather"
    if not path.exists():
        return None
    return pl.read_ipc(path).with_columns(pl.col("date").dt.epoch("ms").alias("t"))


@pytest.fixture(scope="module")
def breadth() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "breadth", "--replay", str(KLINES_55), "--start", START,
         "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stderr
    record: dict[str, object] = json.loads(result.stdout)
    return record


def test_breadth_equals_a_direct_polars_computation(breadth: dict[str, object]) -> None:
    end = breadth["time"]
    assert isinstance(end, int)
    bases = sorted({p.name.split("_")[0] for p in KLINES_55.glob("*-5m-futures.feather")})
    # Universe: the symbols whose recorded data runs to the end (the others are stale).
    fresh = []
    for base in bases:
        five = read(base, "5m-futures")
        assert five is not None
        if int(five["t"][-1]) + 300_000 >= end:
            fresh.append(base)
    assert breadth["universe"] == [f"{b}USDT" for b in fresh]
    assert 40 < len(fresh) < 55

    changes, highs, lows, funding, above50 = [], 0, 0, [], 0
    for base in fresh:
        # The finest recorded file that reaches the end (some 1m files stop earlier).
        finest, step = read(base, "1m-futures"), 60_000
        if finest is None or int(finest["t"][-1]) + step < end:
            finest, step = read(base, "5m-futures"), 300_000
        assert finest is not None
        day = finest.filter((pl.col("t") >= end - DAY) & (pl.col("t") + step <= end))
        open_, last = day["open"][0], day["close"][-1]
        changes.append((last - open_) / open_ * 100)
        highs += last >= day["high"].max() * (1 - TOLERANCE)  # type: ignore[operator]
        lows += last <= day["low"].min() * (1 + TOLERANCE)  # type: ignore[operator]
        rates = read(base, "8h-funding_rate")
        if rates is not None:
            settled = rates.filter(pl.col("t") <= end)
            funding.append((settled["open"][-1] if settled.height else rates["open"][0], base))
        five = read(base, "5m-futures")
        assert five is not None
        closed = five.filter(pl.col("t") + 300_000 <= end)
        ema = closed["close"].ewm_mean(span=50, adjust=False)
        above50 += closed["close"][-1] > ema[-1]

    assert breadth["symbols"] == len(changes)
    # The ticker sends the change with 3 decimals, as Binance does.
    assert breadth["advancers"] == sum(round(c, 3) > 0 for c in changes)
    assert breadth["decliners"] == sum(round(c, 3) < 0 for c in changes)
    assert breadth["median_change_pct"] == pytest.approx(statistics.median(changes), abs=1e-3)
    assert (breadth["new_highs"], breadth["new_lows"]) == (highs, lows)
    assert highs + lows > 0
    rates_only = [r for r, _ in funding]
    assert breadth["median_funding"] == pytest.approx(statistics.median(rates_only), abs=1e-12)
    assert breadth["max_funding"] == pytest.approx(max(rates_only), abs=1e-12)
    assert breadth["min_funding"] == pytest.approx(min(rates_only), abs=1e-12)
    assert breadth["min_funding_symbol"] == f"{min(funding)[1]}USDT"
    above = breadth["above_ema50_pct"]
    assert isinstance(above, dict)
    assert above["5m"] == pytest.approx(100 * above50 / len(fresh))
    assert above["4h"] is None  # 4h warming up: no EMA reading, not guessed
    assert breadth["btc_trend"] in ("LONG", "SHORT", "NEUTRAL")
    assert breadth["volatility_regime"] in ("low", "normal", "high")


def test_breadth_table_output() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "breadth", "--replay",
         str(KLINES_55 / "ETH_USDT_USDT-5m-futures.feather"), "--start", START],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "perpscope breadth · 1 symbols" in result.stdout
    assert "advancers / decliners" in result.stdout and "BTC trend" in result.stdout


# -- breadth pane (snapshot) --------------------------------------------------------------

BASES = ["BTC", "ETH", "ADA", "DOGE", "DOT", "EOS", "ETC", "ZEC", "AAVE", "CRV"]


def pane_snapshots() -> list[EngineSnapshot]:
    """Snapshots of the real engine fed 5m klines of ten recorded symbols, one per hour."""
    cfg = EngineConfig(timeframes=TimeframeConfig(timeframes=["5m", "15m"], min_bars=60))
    files = {b: pl.read_ipc(KLINES_55 / f"{b}_USDT_USDT-5m-futures.feather") for b in BASES}
    first = max(df["date"][0] for df in files.values())  # files start on different days
    frames = {b: df.filter(pl.col("date") >= first).head(900) for b, df in files.items()}
    clock = {"now": 0}
    engine = Engine(cfg, clock=lambda: clock["now"])
    engine.set_universe([f"{b}USDT" for b in BASES])
    rows = {b: ohlcv_rows(df) for b, df in frames.items()}
    klines = {b: klines_from_rows(r, f"{b}USDT", "5m") for b, r in rows.items()}
    out = []

    async def feed() -> None:
        for t in range(900):
            for b in BASES:
                k = klines[b][t]
                clock["now"] = k.close_time + 1
                engine.on_event(k)
            await engine.recompute()
            if t >= 300 and t % 12 == 0:
                out.append(engine.snapshot(FeedHealth(mode="REPLAY", exchange="binanceusdm")))

    asyncio.run(feed())
    return out


class PaneApp(App[None]):
    def __init__(self, snapshots: list[EngineSnapshot]) -> None:
        super().__init__()
        self.snapshots = snapshots

    def compose(self) -> ComposeResult:
        yield BreadthPane()

    def on_mount(self) -> None:
        pane = self.query_one(BreadthPane)
        for snap in self.snapshots:
            pane.update_snapshot(snap)


def test_breadth_pane_snapshot(snap_compare: Callable[..., bool]) -> None:
    snaps = pane_snapshots()
    last = snaps[-1].breadth
    assert last is not None and last.symbols == len(BASES)
    assert len({s.time for s in snaps}) == len(snaps) == 50
    assert breadth_summary(last).startswith(f"▲{last.advancers} ▼{last.decliners}")
    assert snaps[-1].spikes, "a month of 5m DOGE/CRV bars has volume spikes"
    assert snap_compare(PaneApp(snaps), terminal_size=(90, 48))
