"""Picks survive SIGKILL: a subprocess adds picks (and moves some to TP1) through PickStore and
prints each id once the write has returned (committed); the test kills it mid-stream and
every printed pick — and every printed status change — is in the reopened database.

Levels come from real recorded BTCUSDT 5m bars."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.db import Database
from storage.picks import PickStatus, PickStore
from tests.engine import engine_data

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import asyncio, json, sys
from engine.models import Direction
from storage.db import Database
from storage.picks import Pick, PickStatus, PickStore

async def run(path, bars):
    async with Database(path) as db:
        store = PickStore(db)
        for n in range(400):
            close, low, high, t = bars[n % len(bars)]
            rng = max(high - low, 1.0)
            pick = await store.add(Pick(symbol="BTCUSDT", side=Direction.LONG, entry=close,
                                        stop_loss=close - rng, take_profit_1=close + rng,
                                        take_profit_2=close + 2 * rng, opened_ms=t + 1,
                                        note=f"n={n}"))
            print(f"added {pick.id} {n}", flush=True)
            if n % 3 == 0:
                await store.update_status(pick.id, PickStatus.TP1, t + 300_000,
                                          pick.take_profit_1, "take profit 1")
                print(f"tp1 {pick.id}", flush=True)

asyncio.run(run(sys.argv[1], json.loads(sys.argv[2])))
"""


def test_every_printed_pick_survives_sigkill(tmp_path: Path) -> None:
    df = engine_data.frame("BTC", "5m").slice(200, 50)
    bars = [(r[4], r[3], r[2], r[0] + 299_999) for r in df.iter_rows()]
    path = tmp_path / "kill.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), json.dumps(bars)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    added: dict[int, int] = {}
    tp1: set[int] = set()
    deadline = time.monotonic() + 20
    try:
        assert proc.stdout is not None
        while len(added) < 60 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            kind, *rest = line.split()
            if kind == "added":
                added[int(rest[0])] = int(rest[1])
            else:
                tp1.add(int(rest[0]))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "writer finished before it was killed"
    assert len(added) >= 60, proc.stderr.read() if proc.stderr else ""

    async def check() -> None:
        async with Database(path) as db:
            store = PickStore(db)
            stored = {p.id: p for p in await store.all()}
            for pick_id, n in added.items():
                pick = stored[pick_id]
                close, _, _, t = bars[n % len(bars)]
                assert (pick.entry, pick.opened_ms, pick.note) == (close, t + 1, f"n={n}")
            for pick_id in tp1:
                assert stored[pick_id].status is PickStatus.TP1
                assert [e.status for e in await store.events(pick_id)] == ["OPEN", "TP1"]

    asyncio.run(asyncio.wait_for(check(), 10))
