"""SIGKILL while signals are written: every id reported stored is on disk after reopening."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from storage.db import Database
from storage.signals import SignalStore
from tests.conftest import REPO


async def test_sigkill_loses_no_reported_signal(tmp_path: Path) -> None:
    db_path = tmp_path / "perpscope.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.signal_writer", str(db_path), "400",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    reported: dict[int, int] = {}
    async with asyncio.timeout(20):
        while len(reported) < 60:
            line = await proc.stdout.readline()
            assert line, "writer exited before being killed"
            row_id, as_of = map(int, line.split())
            reported[row_id] = as_of
        proc.send_signal(signal.SIGKILL)
        # Lines already flushed before the kill were also reported stored.
        rest = await proc.stdout.read()
        await proc.wait()
    for text in rest.decode().splitlines():
        row_id, as_of = map(int, text.split())
        reported[row_id] = as_of
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) < 400  # killed mid-stream
    async with Database(db_path) as db:
        stored = {s.id: s.record.as_of for s in await SignalStore(db).history()}
    assert reported.items() <= stored.items()
