"""SignalStore: commit-resolved futures, dedupe, immutability, reload, overflow, outcomes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import talib

from engine.models import Direction
from engine.outcomes import OutcomeConfig, triple_barrier
from engine.signal_log import MemorySignalSink, SignalLog
from storage.db import Database
from storage.signals import CalibrationRow, SignalQueueFull, SignalRecord, SignalStore
from tests.engine.engine_data import arrays, frame


def _record(i: int, source: str = "replay:test") -> SignalRecord:
    a = arrays(frame("ETH", "5m"))
    atr = float(talib.ATR(a.high, a.low, a.close, 14)[i])
    c = float(a.close[i])
    return SignalRecord(
        symbol="ETHUSDT", kind="technical", signal_type="MOMENTUM_LONG", direction="LONG",
        as_of=int(a.open_time[i]) + 299_999, timeframes=("5m", "1h"), score=66.0,
        confidence=0.55, calibrated=None, entry=c, stop_loss=c - atr, take_profit_1=c + atr,
        take_profit_2=c + 2 * atr, risk_reward=1.0, plan_timeframe="5m", atr=atr,
        regime="trending", risk_profile="balanced", factors=(), source=source,
        engine_version="test",
    )


async def test_dedupe_immutability_outcome_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "perpscope.db"
    a = arrays(frame("ETH", "5m"))
    rec = _record(103)
    async with Database(path) as db:
        store = SignalStore(db)
        store.start()
        first = await store.submit(rec)
        again = await store.submit(rec)  # same bar re-emitted
        other = await store.submit(_record(103, source="live:binanceusdm"))
        assert again == first and other != first
        assert store.written == 2 and store.duplicates == 1
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            await db.conn.execute("UPDATE signals SET entry = 1 WHERE id = ?", (first,))
        open_before = await store.open_signals("replay:test")
        assert [s.id for s in open_before] == [first]
        out = triple_barrier(Direction.LONG, rec.entry, rec.stop_loss, rec.take_profit_1,
                             rec.take_profit_2, rec.as_of, a, interval="5m", cfg=OutcomeConfig())
        assert out is not None and out.result == "SL"
        assert await store.submit_outcome(rec, out) == first
        assert await store.open_signals("replay:test") == []
        cal = CalibrationRow(kind="technical", fitted_ms=1, data_from=2, data_to=3,
                             source="replay:test", engine_version="test", samples=10,
                             ece_before=0.2, ece_after=0.1, model='{"x": [0, 1]}')
        cal_id = await store.save_calibration(cal)
        await store.stop()
    async with Database(path) as db:  # reopened: everything committed is there
        store = SignalStore(db)
        rows = await store.history(source="replay:test")
        assert len(rows) == 1 and rows[0].record == rec and rows[0].outcome == out
        assert [s.id for s in await store.outcomes(symbol="ETHUSDT")] == [first]
        assert len(await store.history(symbol="ETHUSDT")) == 2
        assert await store.latest_calibration("technical") == CalibrationRow(
            **{**{f: getattr(cal, f) for f in cal.__struct_fields__}, "id": cal_id}
        )
        assert await store.latest_calibration("micro") is None


async def test_queue_overflow_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with Database(tmp_path / "perpscope.db") as db:
        store = SignalStore(db, max_queue=3)  # not started: nothing drains the queue
        futures = [store.submit(_record(200 + i)) for i in range(5)]
        assert store.dropped == 2 and store.pending == 3
        for f in futures[3:]:
            with pytest.raises(SignalQueueFull):
                await f
        assert "queue full" in caplog.text
        store.start()
        ids = [await f for f in futures[:3]]
        await store.stop()
        assert len(set(ids)) == 3 and len(await store.history()) == 3


async def test_signal_log_emits_once_and_resolves(tmp_path: Path) -> None:
    """The log's rule on real records: resume an open trade, resolve it from real bars."""
    a = arrays(frame("ETH", "5m"))
    sink = MemorySignalSink()
    log = SignalLog(sink, source="replay:test", timeframes=["5m", "1h"])
    rec = _record(103)
    sink.submit(rec)
    log.resume([rec])
    assert log.track(lambda s, tf: a.window(0, 108) if tf == "5m" else None) == []
    resolved = log.track(lambda s, tf: a if tf == "5m" else None)
    assert [(r.key, o.result) for r, o in resolved] == [(rec.key, "SL")]
    assert sink.outcomes[rec.key].result == "SL" and log.open_trades() == {}
