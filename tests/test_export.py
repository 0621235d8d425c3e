"""``perpscope export signals``: exported rows equal the stored rows (parquet and CSV)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import polars as pl
import pytest

from engine.backtest import BacktestOptions, run_backtest
from engine.config import EngineConfig
from storage.db import Database
from storage.signals import SignalStore, StoredSignal
from tests.conftest import KLINES_55
from tui.backtest_cli import export_main, register, signal_row

START = 1689811200000
BAR = 300_000


async def _store_backtest(db_path: Path) -> list[StoredSignal]:
    run = await asyncio.to_thread(
        run_backtest, KLINES_55, EngineConfig(),
        BacktestOptions(start_ms=START, end_ms=START + 700 * BAR,
                        symbols=("BTCUSDT", "ETHUSDT", "ADAUSDT"), source="backtest:test"),
    )
    assert run.signals
    async with Database(db_path) as db:
        store = SignalStore(db)
        store.start()
        futures = []
        for item in run.signals:
            futures.append(store.submit(item.record))
            if item.outcome is not None:
                futures.append(store.submit_outcome(item.record, item.outcome))
        await asyncio.gather(*futures)
        await store.stop()
        return await SignalStore(db).history()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="perpscope")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_exported_rows_equal_stored_rows(tmp_path: Path, fmt: str) -> None:
    db_path = tmp_path / "perpscope.db"
    stored = await _store_backtest(db_path)
    assert len(stored) >= 3
    assert any(s.outcome is not None for s in stored)
    out = tmp_path / f"signals.{fmt}"
    args = _parse(["export", "signals", "--format", fmt, "--out", str(out)])
    assert await export_main(None, args, db_path=db_path) == 0

    frame = pl.read_parquet(out) if fmt == "parquet" else pl.read_csv(out, infer_schema_length=None)
    assert frame.height == len(stored)
    exported = {row["id"]: row for row in frame.to_dicts()}
    for item in stored:
        want = signal_row(item)
        got = exported[item.id]
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12, abs=0.0), column
            else:
                assert got[column] == value, (item.id, column)
        # Every factor of the breakdown is a column with its value.
        for factor in item.record.factors:
            key = f"factor.{factor.name}@{factor.timeframe}" if factor.timeframe else (
                f"factor.{factor.name}"
            )
            assert got[key] == pytest.approx(factor.value, rel=1e-12, abs=0.0)
        assert (got["result"] is None) == (item.outcome is None)


async def test_export_filters_by_source(tmp_path: Path) -> None:
    db_path = tmp_path / "perpscope.db"
    stored = await _store_backtest(db_path)
    out = tmp_path / "none.parquet"
    args = _parse(["export", "signals", "--out", str(out), "--source", "live:binanceusdm"])
    assert await export_main(None, args, db_path=db_path) == 0
    assert pl.read_parquet(out).height == 0
    args = _parse(["export", "signals", "--out", str(out), "--source", "backtest:test"])
    assert await export_main(None, args, db_path=db_path) == 0
    assert pl.read_parquet(out).height == len(stored)
