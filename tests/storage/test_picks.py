"""storage.picks: picks committed with their status history, validation naming the field,
manual close/remove, last prices, the watchlist, and survival across reopen and migrations.

Levels come from real recorded BTCUSDT 5m bars (entry = a real close, stop/targets from the
bar's real range)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.models import Direction
from feeds.events import Kline
from storage.chat import ChatStore
from storage.db import MIGRATIONS, Database
from storage.picks import Pick, PickError, PickStatus, PickStore, WatchlistStore


def _pick(k: Kline, side: Direction = Direction.LONG, **changes: object) -> Pick:
    """A pick on real bar ``k``: entry its close, stop/targets one bar range away."""
    rng = k.high - k.low
    s = 1 if side is Direction.LONG else -1
    pick = Pick(
        symbol=k.symbol, side=side, entry=k.close, stop_loss=k.close - s * rng,
        take_profit_1=k.close + s * rng, take_profit_2=k.close + s * 2 * rng,
        opened_ms=k.close_time + 1, expires_ms=k.close_time + 1 + 3_600_000, note="real bar",
    )
    return msgspec.structs.replace(pick, **changes)


async def test_add_commits_and_lists(tmp_path: Path, btc_5m: list[Kline]) -> None:
    k = btc_5m[100]
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        long = await store.add(_pick(k))
        short = await store.add(_pick(btc_5m[101], Direction.SHORT, size_quote=500.0,
                                      risk_pct=1.0, signal_type="MOMENTUM_SHORT",
                                      signal_as_of=btc_5m[101].close_time))
        assert long.id > 0 and short.id > long.id
        assert long.status is PickStatus.OPEN and long.live
    # Committed: visible from a fresh connection.
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        assert await store.open() == [long, short]
        assert await store.get(short.id) == short
        assert short.signal_type == "MOMENTUM_SHORT" and short.size_quote == 500.0
        (event,) = await store.events(long.id)
        assert (event.status, event.time_ms, event.price) == ("OPEN", long.opened_ms, k.close)


@pytest.mark.parametrize(
    ("side", "changes", "field"),
    [
        (Direction.LONG, {"stop_loss_above": True}, "stop_loss"),
        (Direction.LONG, {"tp1_below": True}, "take_profit_1"),
        (Direction.SHORT, {"stop_loss_above": False}, "stop_loss"),
        (Direction.LONG, {"tp2_inside": True}, "take_profit_2"),
        (Direction.LONG, {"size_quote": -5.0}, "size_quote"),
        (Direction.LONG, {"risk_pct": 150.0}, "risk_pct"),
        (Direction.NEUTRAL, {}, "side"),
    ],
)
async def test_invalid_levels_name_the_field(
    tmp_path: Path, btc_5m: list[Kline], side: Direction, changes: dict[str, object], field: str
) -> None:
    k = btc_5m[50]
    pick = _pick(k, side if side is not Direction.NEUTRAL else Direction.LONG)
    if side is Direction.NEUTRAL:
        pick = msgspec.structs.replace(pick, side=Direction.NEUTRAL)
    if "stop_loss_above" in changes:
        # LONG with its stop above the entry; SHORT with its stop below.
        pick = msgspec.structs.replace(pick, stop_loss=2 * pick.entry - pick.stop_loss)
    elif "tp1_below" in changes:
        pick = msgspec.structs.replace(pick, take_profit_1=k.low - 1)
    elif "tp2_inside" in changes:
        pick = msgspec.structs.replace(pick, take_profit_2=(pick.entry + pick.take_profit_1) / 2)
    else:
        pick = msgspec.structs.replace(pick, **changes)
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        with pytest.raises(ValueError, match=field):
            await store.add(pick)
        assert await store.all() == []


async def test_status_changes_are_stored_with_time_and_result(
    tmp_path: Path, btc_5m: list[Kline]
) -> None:
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        pick = await store.add(_pick(btc_5m[10]))
        t1, t2 = btc_5m[11].close_time, btc_5m[14].close_time
        at_tp1 = await store.update_status(pick.id, PickStatus.TP1, t1, pick.take_profit_1,
                                           "take profit 1")
        assert at_tp1.live and at_tp1.status is PickStatus.TP1 and at_tp1.realized_r is None
        done = await store.update_status(pick.id, PickStatus.TP2, t2, pick.take_profit_2)
        assert not done.live and done.closed_ms == t2
        # Half taken at TP1 (1 R), the rest at TP2 (2 R).
        assert done.realized_r == pytest.approx(1.5)
        assert [(e.status, e.time_ms) for e in await store.events(pick.id)] == [
            ("OPEN", pick.opened_ms), ("TP1", t1), ("TP2", t2)]
        assert await store.open() == [] and await store.history() == [done]
        with pytest.raises(PickError, match=f"pick {pick.id} is already closed"):
            await store.update_status(pick.id, PickStatus.SL, t2, pick.stop_loss)
        with pytest.raises(PickError, match="no pick with id 999"):
            await store.update_status(999, PickStatus.SL, t2, 1.0)
        # Closed by hand after TP1: the part taken at TP1 counts (store fraction 0.25 here).
        quarter = PickStore(db, tp1_fraction=0.25)
        other = await quarter.add(_pick(btc_5m[12]))
        await quarter.update_status(other.id, PickStatus.TP1, t1, other.take_profit_1)
        exit_price = btc_5m[15].close
        by_hand = await quarter.close(other.id, exit_price, t2)
        assert by_hand.status is PickStatus.CLOSED
        assert by_hand.realized_r == pytest.approx(0.25 * 1 + 0.75 * other.r_multiple(exit_price))


async def test_manual_close_remove_and_last_price(tmp_path: Path, btc_5m: list[Kline]) -> None:
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        a = await store.add(_pick(btc_5m[20], Direction.SHORT))
        b = await store.add(_pick(btc_5m[21]))
        c = await store.add(_pick(btc_5m[22]))
        later = btc_5m[30]
        assert await store.set_symbol_last_price("BTCUSDT", later.close, later.close_time) == 3
        closed = await store.close(a.id, later.close, later.close_time + 1)
        assert closed.status is PickStatus.CLOSED and closed.close_price == later.close
        assert closed.realized_r == pytest.approx((a.entry - later.close) / (a.stop_loss - a.entry))
        with pytest.raises(PickError, match="already closed"):
            await store.close(a.id, later.close, later.close_time)
        with pytest.raises(ValueError, match="finite price"):
            await store.close(b.id, float("nan"), later.close_time)
        await store.remove(c.id)
        with pytest.raises(PickError, match=f"no pick with id {c.id}"):
            await store.remove(c.id)
        assert await store.events(c.id) == []
        await store.set_last_price(b.id, btc_5m[31].close, btc_5m[31].close_time)
        await store.set_last_price(a.id, 1.0, 1)  # ended: left as it was
    async with Database(tmp_path / "p.db") as db:
        store = PickStore(db)
        (live,) = await store.open()
        assert live.id == b.id
        assert (live.last_price, live.last_price_ms) == (btc_5m[31].close, btc_5m[31].close_time)
        (ended,) = await store.history()
        assert ended.last_price == later.close and ended.status is PickStatus.CLOSED
        assert [p.id for p in await store.all()] == [a.id, b.id]


async def test_watchlist_toggle_persists(tmp_path: Path, btc_5m: list[Kline]) -> None:
    async with Database(tmp_path / "p.db") as db:
        watch = WatchlistStore(db)
        assert await watch.toggle("btcusdt") is True
        assert await watch.toggle("ETHUSDT") is True
        assert await watch.toggle("ETHUSDT") is False
        with pytest.raises(ValueError, match="must not be empty"):
            await watch.toggle("  ")
    async with Database(tmp_path / "p.db") as db:
        assert await WatchlistStore(db).symbols() == ["BTCUSDT"]


async def test_v1_database_is_upgraded_keeping_data_and_picks_survive_reopen(
    tmp_path: Path, btc_5m: list[Kline]
) -> None:
    path = tmp_path / "old.db"
    async with Database(path, MIGRATIONS[:1]) as db:
        assert await db.schema_version() == 1
        chat = ChatStore(db)
        await chat.append("BTCUSDT", "user", "what now?")
        await chat.add_verdict(symbol="BTCUSDT", signal_as_of=btc_5m[5].close_time,
                               source="rules", model="", decision="flat", target_price=None,
                               entry_price=btc_5m[5].close, payload={"decision": "flat"})
    async with Database(path) as db:
        assert await db.schema_version() == MIGRATIONS[-1].version >= 3
        chat = ChatStore(db)
        assert [m.content for m in await chat.load("BTCUSDT")] == ["what now?"]
        assert len(await chat.verdicts("BTCUSDT")) == 1
        store = PickStore(db)
        pick = await store.add(_pick(btc_5m[40]))
        await store.update_status(pick.id, PickStatus.TP1, btc_5m[41].close_time,
                                  pick.take_profit_1)
        await WatchlistStore(db).toggle("BTCUSDT")
    async with Database(path) as db:
        (again,) = await PickStore(db).open()
        assert again.id == pick.id and again.status is PickStatus.TP1
        assert len(await PickStore(db).events(pick.id)) == 2
        assert await WatchlistStore(db).symbols() == ["BTCUSDT"]
        assert len(await ChatStore(db).load("BTCUSDT")) == 1
