"""Subprocess for tests/test_signal_kill.py: writes signals through SignalStore and prints each
row id once its future resolved (committed). Usage: python -m tests.signal_writer DB COUNT."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from engine.models import Factor
from storage.db import Database
from storage.signals import SignalRecord, SignalStore
from tests.engine.engine_data import frame


async def main(path: Path, count: int) -> None:
    rows = frame("BTC", "5m").head(count).rows()
    async with Database(path) as db:
        store = SignalStore(db, max_batch=8)
        store.start()
        for t, _o, h, lo, c, _v in rows:
            record = SignalRecord(
                symbol="BTCUSDT", kind="technical", signal_type="STRONG_LONG", direction="LONG",
                as_of=t + 299_999, timeframes=("5m",), score=70.0, confidence=0.6,
                calibrated=None, entry=c, stop_loss=lo - 1, take_profit_1=h + 1,
                take_profit_2=h + 2, risk_reward=1.0, plan_timeframe="5m", atr=h - lo,
                regime="trending", risk_profile="balanced",
                factors=(Factor(name="rsi", category="indicator", value=55.0),),
                source="replay:kill-test", engine_version="test",
            )
            row_id = await store.submit(record)
            print(f"{row_id} {record.as_of}", flush=True)
        await store.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
