"""Headless ``perpscope picks``: JSON fields, open vs ``--all``, the table, and exit codes on a
temp data dir (levels from real recorded BTCUSDT 5m bars)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from engine.models import Direction
from storage.db import DB_NAME, Database
from storage.picks import Pick, PickStatus, PickStore
from tests.engine import engine_data
from tests.recorded import klines_from_rows
from tui.picks_cli import JSON_FIELDS, main

REPO = Path(__file__).resolve().parents[1]


def _bars() -> list[tuple[float, float, float, int]]:
    """(close, low, high, close time) of real BTCUSDT 5m bars 100..110."""
    df = engine_data.frame("BTC", "5m").slice(100, 10)
    return [(k.close, k.low, k.high, k.close_time)
            for k in klines_from_rows(df.iter_rows(), "BTCUSDT", "5m")]


async def _fill(path: Path) -> tuple[Pick, Pick, float]:
    bars = _bars()
    (c0, lo0, hi0, t0), (c1, lo1, hi1, t1), (last, _, _, t_last) = bars[0], bars[1], bars[-1]
    async with Database(path) as db:
        store = PickStore(db)
        live = await store.add(Pick(symbol="BTCUSDT", side=Direction.LONG, entry=c0,
                                    stop_loss=lo0 - 50, take_profit_1=hi0 + 50,
                                    take_profit_2=hi0 + 100, opened_ms=t0 + 1))
        await store.set_last_price(live.id, last, t_last)
        short = await store.add(Pick(symbol="BTCUSDT", side=Direction.SHORT, entry=c1,
                                     stop_loss=hi1 + 50, take_profit_1=lo1 - 50,
                                     opened_ms=t1 + 1))
        ended = await store.close(short.id, last, t_last)
    return msgspec.structs.replace(live, last_price=last, last_price_ms=t_last), ended, last


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    os.environ["PERPSCOPE_GENERAL__DATA_DIR"] = str(tmp_path)
    return tmp_path


def test_json_lists_open_picks_then_all(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live, ended, last = asyncio.run(_fill(data_dir / DB_NAME))
    assert main(["picks", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert tuple(record) == JSON_FIELDS
    assert record["id"] == live.id and record["status"] == "OPEN" and record["live"] is True
    assert record["side"] == "LONG" and record["price"] == last
    assert record["price_ms"] == live.last_price_ms
    assert record["pnl_pct"] == pytest.approx((last - live.entry) / live.entry * 100, abs=1e-4)
    assert record["pnl_r"] == pytest.approx(
        (last - live.entry) / (live.entry - live.stop_loss), abs=1e-4)
    assert record["realized_r"] is None

    assert main(["picks", "--json", "--all"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == [live.id, ended.id]
    closed = records[1]
    assert closed["status"] == PickStatus.CLOSED.value and closed["live"] is False
    assert closed["price"] == last and closed["closed_ms"] == ended.closed_ms
    assert closed["realized_r"] == pytest.approx(ended.realized_r, abs=1e-4)
    assert closed["pnl_r"] == closed["realized_r"]


def test_table_output(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ended, _ = asyncio.run(_fill(data_dir / DB_NAME))
    assert main(["picks", "--all"]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT" in out and "OPEN" in out and "CLOSED" in out
    assert f"{ended.realized_r:+.2f}" in out


def test_missing_and_corrupt_database_exit_2_with_one_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["picks", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert "no perpscope database" in line and str(data_dir) in line
    assert not (data_dir / DB_NAME).exists()  # not created by looking
    (data_dir / DB_NAME).write_bytes(b"not a database, just bytes " * 200)
    # The real entry point in a subprocess: one line on stderr, no traceback, exit 2.
    env = {**os.environ, "PERPSCOPE_GENERAL__DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "tui.picks_cli", "picks"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    (err,) = proc.stderr.splitlines()
    assert err.startswith("perpscope: ") and str(data_dir / DB_NAME) in err
    assert proc.stdout == ""


def test_empty_database_exit_0(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def create() -> None:
        async with Database(data_dir / DB_NAME):
            pass

    asyncio.run(create())
    assert main(["picks", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["picks"]) == 0
    assert "no picks" in capsys.readouterr().out
