"""Trade plans on the exchange's tick grid: stop away from entry, targets toward it."""

from __future__ import annotations

import pytest

from engine.config import SignalConfig
from engine.models import Direction
from engine.signals import round_to_tick, trade_plan

CFG = SignalConfig()


def test_round_to_tick_modes_and_float_noise() -> None:
    assert round_to_tick(0.30000000000000004, 0.1, "floor") == 0.3
    assert round_to_tick(0.1008531, 0.00001, "ceil") == 0.10086
    assert round_to_tick(0.1008531, 0.00001, "floor") == 0.10085
    assert round_to_tick(31029.04, 0.1, "nearest") == 31029.0
    assert round_to_tick(8.58, 0.001, "floor") == 8.58


@pytest.mark.parametrize("direction", [Direction.LONG, Direction.SHORT])
def test_plan_levels_are_on_the_grid_and_conservative(direction: Direction) -> None:
    # ALPHAUSDT at the end of the recorded replay: entry 0.09984, 15m ATR ~0.000675.
    tick, entry, atr = 0.00001, 0.09984, 0.00067540773
    raw = trade_plan(direction, entry, atr, "15m", CFG)
    plan = trade_plan(direction, entry, atr, "15m", CFG, tick)
    assert raw is not None and plan is not None
    for price in (plan.entry, plan.stop_loss, plan.take_profit_1, plan.take_profit_2):
        assert abs(price / tick - round(price / tick)) < 1e-6
    side = 1 if direction is Direction.LONG else -1
    assert side * plan.stop_loss <= side * raw.stop_loss  # risk never understated
    assert side * plan.take_profit_1 <= side * raw.take_profit_1  # reward never overstated
    assert side * plan.stop_loss < side * plan.entry < side * plan.take_profit_1
    assert side * plan.take_profit_1 < side * plan.take_profit_2
    assert plan.risk_reward == pytest.approx(
        abs(plan.take_profit_1 - plan.entry) / abs(plan.entry - plan.stop_loss)
    )
    assert plan.risk_reward <= raw.risk_reward


def test_atr_below_the_tick_gives_no_plan() -> None:
    assert trade_plan(Direction.LONG, 0.01049, 0.000001, "1h", CFG, 0.00001) is None


async def test_engine_snapshot_carries_tick_sizes_and_rounds_plans() -> None:
    import polars as pl

    from engine.config import EngineConfig
    from engine.engine import Engine
    from engine.models import FeedHealth
    from tests.conftest import KLINES_55
    from tests.recorded import klines_from_rows, ohlcv_rows

    # 1500 bars ending at bar 2000 of the recording: CRVUSDT is SHORT there.
    frame = pl.read_ipc(KLINES_55 / "CRV_USDT_USDT-5m-futures.feather").head(2000).tail(1500)
    rows = ohlcv_rows(frame)
    now = int(rows[-1][0]) + 300_000
    engine = Engine(EngineConfig(), clock=lambda: now)
    engine.set_universe(["CRVUSDT"])
    engine.set_tick_sizes({"CRVUSDT": 0.001})
    for kline in klines_from_rows(rows, "CRVUSDT", "5m"):
        engine.on_event(kline)
    await engine.recompute()
    state = engine.snapshot(FeedHealth(mode="REPLAY", exchange="binanceusdm")).symbols["CRVUSDT"]
    assert state.tick_size == 0.001
    assert state.signal is not None and state.signal.direction.value == "SHORT"
    plan = state.signal.plan
    assert plan is not None and plan.stop_loss > plan.entry
    for price in (plan.entry, plan.stop_loss, plan.take_profit_1, plan.take_profit_2):
        assert round(price, 3) == price
