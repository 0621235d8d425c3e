"""storage.alerts: the alert log rows, per-channel outcomes, undelivered rows, restore data
(cooldowns, ``once`` price levels across a restart), corrupt payloads, reopen."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine.alerts import Alert, AlertEngine, AlertsConfig, PriceAlert, render_text
from storage.alerts import AlertLogStore
from storage.db import Database
from tests.conftest import KLINES_55


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    """Price alerts of real BTCUSDT 5m closes crossing their own quartiles."""
    df = pl.read_ipc(KLINES_55 / "BTC_USDT_USDT-5m-futures.feather").head(500)
    closes = df["close"].to_list()
    level = PriceAlert(
        symbol="BTCUSDT", above=sorted(closes)[375], below=sorted(closes)[125], once=False
    )
    engine = AlertEngine(AlertsConfig(rules=[], price_alerts=[level]))
    out: list[Alert] = []
    for t, c in zip(df["date"].dt.epoch("ms").to_list(), closes, strict=True):
        out += engine.on_price("BTCUSDT", c, t + 300_000)
    assert len(out) >= 3
    return out


async def test_append_mark_and_read_back(tmp_path: Path, alerts: list[Alert]) -> None:
    path = tmp_path / "p.db"
    async with Database(path) as db:
        store = AlertLogStore(db)
        ids = [await store.append(a, render_text(a), ["in_app", "telegram"]) for a in alerts[:3]]
        assert ids == sorted(ids)
        await store.mark_delivered(ids[0], "in_app")
        await store.mark_delivered(ids[0], "in_app")  # idempotent
        await store.mark_failed(ids[0], "telegram", "HTTP 500")
        await store.mark_delivered(ids[1], "telegram")
        await store.mark_failed(ids[2], "telegram", "timed out after 10s")
        await store.mark_delivered(ids[2], "telegram")  # a later redelivery clears the failure
    async with Database(path) as db:  # committed: survives reopen
        store = AlertLogStore(db)
        rows = await store.recent(10)
        assert [r.id for r in rows] == ids[::-1]
        first = await store.get(ids[0])
        assert first is not None and first.alert == alerts[0]
        assert (first.delivered, first.failed, first.pending) == (("in_app",), ("telegram",), ())
        assert first.errors == {"telegram": "HTTP 500"}
        assert first.message == render_text(alerts[0]) and first.kind == "price"
        third = await store.get(ids[2])
        assert third is not None and third.delivered == ("telegram",) and third.failed == ()
        assert third.errors == {} and third.pending == ("in_app",)
        assert [r.id for r in await store.undelivered()] == ids[1:]
        assert await store.recent(1) == [rows[0]]
        assert await store.get(10_000) is None


async def test_history_since_feeds_restore(tmp_path: Path, alerts: list[Alert]) -> None:
    async with Database(tmp_path / "p.db") as db:
        store = AlertLogStore(db)
        for a in alerts:
            await store.append(a, render_text(a), [])
        since = alerts[1].time
        history = await store.history_since(since)
        assert history == [(a.rule, a.symbol, a.time) for a in alerts if a.time >= since]


async def test_once_price_level_stays_quiet_after_restart(tmp_path: Path) -> None:
    """Fire a ``once`` and a repeating level on real closes, log them, restart (a new
    database connection and a new engine restored from the log): the same price fires the
    repeating level only."""
    df = pl.read_ipc(KLINES_55 / "BTC_USDT_USDT-5m-futures.feather").head(500)
    closes = df["close"].to_list()
    times = [t + 300_000 for t in df["date"].dt.epoch("ms").to_list()]
    high, low = sorted(closes)[400], sorted(closes)[100]
    once = PriceAlert(symbol="BTCUSDT", above=high, below=low)
    repeat = PriceAlert(symbol="BTCUSDT", below=low, once=False, name="dip")
    config = AlertsConfig(rules=[], price_alerts=[once, repeat])
    path = tmp_path / "p.db"
    engine = AlertEngine(config)
    async with Database(path) as db:
        store = AlertLogStore(db)
        for t, c in zip(times, closes, strict=True):
            for alert in engine.on_price("BTCUSDT", c, t):
                await store.append(alert, render_text(alert), ["in_app"])
        fired = await store.recent(500)
    assert {(e.rule, e.alert.type) for e in fired if e.alert} >= {
        ("price", "PRICE_ABOVE"),
        ("price", "PRICE_BELOW"),
        ("dip", "PRICE_BELOW"),
    }
    dip = min(closes)
    async with Database(path) as db:  # the restart
        store = AlertLogStore(db)
        assert await store.price_levels_hit() == [
            ("BTCUSDT", "above", high),
            ("BTCUSDT", "below", low),
        ]
        restarted = AlertEngine(config)
        restarted.restore(
            await store.history_since(times[-1] - 86_400_000),
            price_levels=await store.price_levels_hit(),
        )
        later = times[-1] + 7 * 86_400_000  # another UTC day: once is once, ever
        assert [(a.rule, a.type) for a in restarted.on_price("BTCUSDT", dip, later)] == [
            ("dip", "PRICE_BELOW")
        ]
        assert restarted.on_price("BTCUSDT", max(closes), later) == []
        # The repeating level re-arms as before: back above, then down again.
        assert restarted.on_price("BTCUSDT", max(closes), later + 1) == []
        assert [a.rule for a in restarted.on_price("BTCUSDT", dip, later + 2)] == ["dip"]


async def test_price_levels_hit_skip_unreadable_rows(
    tmp_path: Path, alerts: list[Alert], caplog: pytest.LogCaptureFixture
) -> None:
    async with Database(tmp_path / "p.db") as db:
        store = AlertLogStore(db)
        assert await store.price_levels_hit() == []
        for a in alerts:
            await store.append(a, render_text(a), [])
        want = sorted({(a.symbol, a.type.removeprefix("PRICE_").lower(), a.level) for a in alerts})
        assert await store.price_levels_hit() == want and len(want) == 2
        bad = await store.append(alerts[0], "x", [])
        await db.conn.execute("UPDATE alert_log SET payload = 'nope' WHERE id = ?", (bad,))
        await db.conn.commit()
        assert await store.price_levels_hit() == want
        assert store.bad_payloads == 1
        assert f"alert_log row {bad}: unreadable price payload" in caplog.text


async def test_bad_input_is_clear_and_counted(
    tmp_path: Path, alerts: list[Alert], caplog: pytest.LogCaptureFixture
) -> None:
    async with Database(tmp_path / "p.db") as db:
        store = AlertLogStore(db)
        with pytest.raises(ValueError, match="invalid alert channel name 'Tele gram'"):
            await store.append(alerts[0], "x", ["Tele gram"])
        row_id = await store.append(alerts[0], "x", ["in_app"])
        await db.conn.execute("UPDATE alert_log SET payload = '{\"time\": \"soon\"}'")
        await db.conn.commit()
        (row,) = await store.recent(5)
        assert row.id == row_id and row.alert is None and row.message == "x"
        assert store.bad_payloads == 1
        assert f"alert_log row {row_id}: unreadable payload" in caplog.text
