"""Signal history, picks and alerts wired into the real pipeline, on a replay of real klines.

The replay runs through the loopback exchange with an in-memory database: emitted signals are
stored once with their outcomes, a pick taken on a real bar reaches the status the following
klines dictate, and alerts go to the alert log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import polars as pl

from ai.config import AiConfig
from ai.context import build_context
from engine.alerts.config import AlertRule, AlertsConfig
from engine.config import EngineConfig
from engine.models import Direction
from engine.picks import PicksConfig, new_pick
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tests.conftest import KLINES_55

SYMBOLS = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "ETCUSDT"]
START_MS = 1_691_020_800_000  # 2023-08-03 00:00 UTC: 149 5m bars to the end of the data
SPEED = 6000.0
"""A 5m bar every 50 ms: the runner evaluates every bar as it closes, as it does live."""


def runner(**kw: object) -> MarketRunner:
    return MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=SYMBOLS),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=KLINES_55, speed=SPEED, start_ms=START_MS),
        db_path=":memory:",
        **kw,  # type: ignore[arg-type]
    )


async def wait_for(predicate: Callable[[], bool], limit_s: float = 30.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling pipeline state, bounded
            await asyncio.sleep(0.01)


async def test_replay_stores_each_emitted_signal_once_with_outcomes() -> None:
    run = runner(desk=False)
    task = asyncio.create_task(run.run())
    try:
        await wait_for(lambda: run.replay_server is not None and run.history is not None)
        server = run.replay_server
        assert server is not None
        await server.wait_finished()
        await asyncio.sleep(0.5)  # the last bar's recompute and outcome walk
        history = run.history
        assert history is not None
        # An analyst verdict on a symbol with a plan is tracked like a signal source.
        planned = next(
            (s for s, r in run.snapshot().symbols.items() if r.signal and r.signal.plan), None
        )
        assert planned is not None
        assert run.record_verdict(planned, "short", None)
        assert not run.record_verdict(planned, "short", None), "one open verdict per symbol"
        assert not run.record_verdict(planned, "flat", None)
        await asyncio.sleep(0.2)
        stored = await history.store.history(source=history.log.source)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    snapshot = run.snapshot()
    assert run.desk() is None  # headless: no alerts
    record = run.track_record()
    assert record is not None and record.source == "replay:alpergulsen-freqtrade"
    # Stored once: one row per (symbol, kind, bar), and every outcome belongs to a stored row.
    keys = [(s.record.symbol, s.record.kind, s.record.as_of) for s in stored]
    assert len(keys) == len(set(keys)) == history.log.emitted
    resolved = [s for s in stored if s.outcome is not None]
    assert len(resolved) == history.log.resolved
    verdict = [s.record for s in stored if s.record.kind == "verdict"]
    assert len(verdict) == 1 and verdict[0].signal_type == "VERDICT_SHORT"
    assert verdict[0].stop_loss > verdict[0].entry > verdict[0].take_profit_1
    # The analyst context carries the measured record of the symbol's signal type.
    row = snapshot.symbols[planned]
    assert row.signal is not None
    text = build_context(snapshot, planned, AiConfig(), track=record).text
    assert "## track record (replay:alpergulsen-freqtrade" in text
    kind = row.signal.signal_type.value
    stats = record.by_type.get(kind)
    if stats is not None:
        assert f"{kind} signals, all symbols: {stats.count} resolved" in text
    else:
        assert f"{kind} signals, all symbols: none resolved yet" in text
    assert f"everything: {record.overall.count} resolved" in text
    assert record.overall is not None and record.overall.count > 0
    assert sum(s.count for s in record.by_type.values()) == record.overall.count
    assert set(record.by_symbol) <= set(SYMBOLS)
    for stats in record.by_type.values():
        assert 0 <= stats.hit_low <= stats.hit_rate <= stats.hit_high <= 1
    assert snapshot.symbols["BTCUSDT"].signal is not None


async def test_pick_on_a_real_bar_reaches_the_status_the_klines_dictate() -> None:
    alerts = AlertsConfig(rules=[AlertRule(name="any", cooldown_s=0, daily_max=0)])
    run = runner(alerts=alerts, picks=PicksConfig(expire_hours=1000))
    task = asyncio.create_task(run.run())
    try:
        await wait_for(lambda: run.desk() is not None and run.replay_server is not None)
        server, desk = run.replay_server, run.desk()
        assert server is not None and desk is not None
        server.pause_streaming()
        await wait_for(lambda: run.snapshot().symbols["ETHUSDT"].last_price is not None)
        row = run.snapshot().symbols["ETHUSDT"]
        opened = server.replay_time_ms
        entry = row.last_price
        assert entry is not None
        # A tight real-price plan: 0.4 % stop, 0.4 % / 0.8 % targets.
        pick = new_pick(
            "ETHUSDT", Direction.LONG, entry, round(entry * 0.996, 2),
            round(entry * 1.004, 2), round(entry * 1.008, 2),
            opened_ms=opened, cfg=PicksConfig(expire_hours=1000),
        )
        stored = await desk.add_pick(pick)
        server.resume_streaming()
        await server.wait_finished()
        await wait_for(lambda: not desk.snapshot().open_picks or desk.snapshot().history)
        await asyncio.sleep(0.2)  # let queued status writes land
        final = next(
            (p for p in desk.snapshot(run.snapshot()).history if p.id == stored.id), None
        )
        live = [v for v in desk.snapshot(run.snapshot()).open_picks if v.pick.id == stored.id]
        status = final.status.value if final is not None else live[0].pick.status.value
        assert status == _expected(stored.entry, stored.stop_loss, stored.take_profit_1,
                                   stored.take_profit_2 or 0.0, opened)
        assert desk.snapshot().alerts, "the replay's signals fired the catch-all rule"
        assert all(a.delivered == ("in_app",) for a in desk.snapshot().alerts)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _expected(entry: float, stop: float, tp1: float, tp2: float, opened: int) -> str:
    """Walk the recorded 5m ETH bars after ``opened``: SL first when a bar holds both; after
    TP1 the stop moves to the entry from the next bar (engine/picks.py's documented rule)."""
    bars = pl.read_ipc(KLINES_55 / "ETH_USDT_USDT-5m-futures.feather").with_columns(
        pl.col("date").dt.epoch("ms").alias("t")
    ).filter(pl.col("t") >= opened - 300_000 + 1)
    status, active_stop = "OPEN", stop
    for high, low in bars.select("high", "low").iter_rows():
        if low <= active_stop:
            return "SL" if status == "OPEN" else "TP1"
        if status == "OPEN" and high >= tp1:
            status, active_stop = "TP1", entry
            if high >= tp2:
                return "TP2"
            continue
        if status == "TP1" and high >= tp2:
            return "TP2"
    return status
