"""Alert log, alert rules editor, track record screen, in-app toasts, ctrl+s, calibration marks.

Every test runs the real engine on recorded 5m klines with the real desk and signal history on
an in-memory database (:mod:`alert_service`), stepped bar by bar so alert times and outcomes
are those of the recorded data; the failing channel is a real webhook POST to a closed
loopback port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from alert_service import DeskService, alerts_config, closed_port_url
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from tui_service import (
    KLINES_DIR,
    REPLAY_END_MS,
    REPLAY_START_MS,
    SYMBOLS,
    FinishedReplay,
    app_with,
)

from engine.config import EngineConfig
from engine.desk import EARLY_ALERTS, Desk
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tui.app import PerpscopeApp, make_app
from tui.screens.alert_rules import AlertRulesScreen, FormScreen
from tui.screens.alerts import AlertLogScreen, log_row, unique_entries
from tui.screens.stats import StatsScreen, stats_row, summary
from tui.screens.symbol import SymbolScreen
from tui.ui_config import UiConfig
from tui.widgets.signal_table import SignalTable, cell_confidence, format_track
from tui.widgets.status_bar import StatusBar
from tui.widgets.symbol_header import SymbolHeader

SnapCompare = Callable[..., bool]

ALERT_BARS = 80
"""Bars stepped for alert tests (2023-08-01 08:05-14:40 UTC: ~25 alerts of the raw rule)."""
OUTCOME_BARS = 150
"""Bars stepped for the track record (some 1h plans resolve within them)."""


@pytest.fixture(autouse=True)
def utc_local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so the alerts' local time column is the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
async def desk_service() -> AsyncIterator[DeskService]:
    service = DeskService(alerts_config())
    await service.open()
    try:
        yield service
    finally:
        await service.close()


def _desk(service: DeskService) -> Desk:
    desk = service.desk()
    assert desk is not None
    return desk


async def _registered(pilot: Pilot[None], service: DeskService) -> None:
    """Wait until the app registered its toast on the desk (it polls every 0.5 s)."""
    app = pilot.app
    assert isinstance(app, PerpscopeApp)
    for _ in range(40):
        if app._desk is service.desk():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app never registered on the desk")


async def test_alert_log_rows_match_desk_and_toasts(desk_service: DeskService) -> None:
    app = app_with(desk_service)
    async with app.run_test(size=(160, 40)) as pilot:
        await _registered(pilot, desk_service)
        await desk_service.step(ALERT_BARS)
        await desk_service.settle()
        entries = _desk(desk_service).snapshot().alerts
        assert len(entries) >= 10
        assert len({e.id for e in entries}) == len(entries)
        # Every alert went through the in-app channel: one toast each.
        assert all(e.delivered == ("in_app",) for e in entries)
        assert app.alerts_toasted == len(entries)
        newest = entries[0].alert
        assert newest is not None
        titles = [n.title for n in app._notifications]
        assert f"{newest.symbol} {newest.side} {newest.type}" in titles

        await pilot.press("a")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, AlertLogScreen)
        assert screen.rows == [log_row(e) for e in entries]
        table: DataTable[str] = screen.query_one(DataTable)
        assert table.row_count == len(entries)
        first = [str(c) for c in table.get_row_at(0)]
        assert first[0] == newest.time_utc.removesuffix(" UTC")
        assert first[2:4] == ["raw", newest.symbol]
        assert first[5] == "in_app"
        channels = str(screen.query_one("#alert-channels", Static).render())
        assert "in_app ok" in channels

        await pilot.press("escape")
        assert not isinstance(app.screen, AlertLogScreen)


async def test_alerts_raised_before_the_ui_registers_are_toasted_when_it_does(
    desk_service: DeskService,
) -> None:
    await desk_service.step(ALERT_BARS)  # no UI yet: the in-app channel only logs
    await desk_service.settle()
    entries = _desk(desk_service).snapshot().alerts
    assert len(entries) > EARLY_ALERTS
    app = app_with(desk_service)
    async with app.run_test(size=(160, 40)) as pilot:
        await _registered(pilot, desk_service)
        await pilot.pause(0.1)
        # The newest few are shown once, oldest first; none is toasted twice.
        assert app.alerts_toasted == EARLY_ALERTS
        titles = [n.title for n in app._notifications]
        want = [e.alert for e in reversed(entries[:EARLY_ALERTS])]
        assert titles == [f"{a.symbol} {a.side} {a.type}" for a in want if a is not None]
        await desk_service.step(1)
        await desk_service.settle()
        new = len(_desk(desk_service).snapshot().alerts) - len(entries)
        assert app.alerts_toasted == EARLY_ALERTS + new


async def test_failing_webhook_shows_in_status_bar_and_log() -> None:
    service = DeskService(alerts_config(), webhook=closed_port_url())
    await service.open()
    try:
        app = app_with(service)
        async with app.run_test(size=(200, 30)) as pilot:
            await _registered(pilot, service)
            bar = app.screen.query_one(StatusBar)
            assert "alerts failing" not in str(bar.render())
            await service.step(ALERT_BARS)
            await service.settle()
            await pilot.pause(0.7)  # one desk poll
            assert [name for name, _ in app.alert_failures] == ["webhook"]
            line = str(bar.render())
            assert "alerts failing: webhook" in line
            assert "Cannot connect" in app.alert_failures[0][1]

            entries = _desk(service).snapshot().alerts
            assert entries and all(e.failed == ("webhook",) for e in entries)
            # The failing channel lost no alert: the in-app one still got every one.
            assert all(e.delivered == ("in_app",) for e in entries)
            await pilot.press("a")
            await pilot.pause(0.1)
            screen = app.screen
            assert isinstance(screen, AlertLogScreen)
            assert screen.rows[0][6].startswith("webhook (")
            assert "webhook failing" in str(screen.query_one("#alert-channels", Static).render())
    finally:
        await service.close()


async def _fill(pilot: Pilot[None], values: dict[str, str]) -> FormScreen:
    form = pilot.app.screen
    assert isinstance(form, FormScreen)
    for name, value in values.items():
        form.query_one(f"#f-{name}", Input).value = value
    await pilot.pause()
    return form


async def test_rules_editor_adds_edits_disables_and_deletes(desk_service: DeskService) -> None:
    desk = _desk(desk_service)
    app = app_with(desk_service)
    async with app.run_test(size=(160, 40)) as pilot:
        await _registered(pilot, desk_service)
        await pilot.press("A")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AlertRulesScreen)
        assert screen.query_one(DataTable).row_count == 1

        # An invalid value keeps the form open, naming the field.
        await pilot.press("n")
        await pilot.pause()
        form = await _fill(pilot, {"name": "momentum", "min_score": "20"})
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is form
        assert "min_score" in str(form.query_one("#form-error", Static).render())
        assert [r.name for r in desk.alerts_config().rules] == ["raw"]

        # Fixed: the rule is validated, applied to the desk and listed.
        await _fill(
            pilot,
            {"min_score": "50", "signal_types": "momentum_long MOMENTUM_SHORT", "daily_max": "0",
             "cooldown_s": "0", "min_confidence": "0"},
        )  # fmt: skip
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AlertRulesScreen)  # the form closed
        rules = desk.alerts_config().rules
        assert [r.name for r in rules] == ["raw", "momentum"]
        assert rules[1].signal_types == ["MOMENTUM_LONG", "MOMENTUM_SHORT"]
        assert rules[1].daily_max == 0 and rules[1].enabled

        # It takes effect: the next recorded bars alert under the new rule.
        await desk_service.step(ALERT_BARS)
        await desk_service.settle()
        fired = [e for e in desk.snapshot().alerts if e.rule == "momentum"]
        assert fired and all(e.alert and e.alert.type.startswith("MOMENTUM") for e in fired)

        # A duplicate name is refused by the section's validation.
        await pilot.press("n")
        await pilot.pause()
        form = await _fill(pilot, {"name": "raw"})
        await pilot.press("enter")
        await pilot.pause()
        assert "unique" in str(form.query_one("#form-error", Static).render())
        await pilot.press("escape")
        await pilot.pause()

        # Price alert, then disable the first rule and delete the new one.
        await pilot.press("N")
        await pilot.pause()
        await _fill(pilot, {"symbol": "btcusdt", "above": "30000"})
        await pilot.press("enter")
        await pilot.pause()
        assert [(p.symbol, p.above) for p in desk.alerts_config().price_alerts] == [
            ("BTCUSDT", 30000.0)
        ]
        await pilot.press("space")  # cursor on the first row: rule "raw"
        await pilot.pause()
        assert [r.enabled for r in desk.alerts_config().rules] == [False, True]
        await pilot.press("j", "x")
        await pilot.pause()
        assert [r.name for r in desk.alerts_config().rules] == ["raw"]
        assert screen.query_one(DataTable).row_count == 2


async def test_stats_screen_equals_track_record(desk_service: DeskService) -> None:
    await desk_service.step(OUTCOME_BARS)
    record = desk_service.track_record()
    assert record is not None and record.overall is not None and record.overall.count >= 3
    app = app_with(desk_service)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("R")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        for table_id, groups in (("#by-type", record.by_type), ("#by-symbol", record.by_symbol)):
            table: DataTable[str] = screen.query_one(table_id, DataTable)
            shown = {tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)}
            assert shown == {stats_row(s) for s in groups.values()}
        text = str(screen.query_one("#stats-summary", Static).render())
        assert text == summary(record)
        assert f"open trades {record.open_trades}" in text
        assert f"n={record.overall.count}" in text

        # The main table's track column shows the row's signal-type record.
        await pilot.press("escape")
        await pilot.pause(0.6)
        table_widget = app.screen.query_one(SignalTable)
        assert "track" in table_widget.columns_shown
        snapshot = desk_service.snapshot()
        checked = 0
        for symbol in table_widget.symbols_shown:
            state = snapshot.symbols[symbol]
            cell = table_widget.get_cell(symbol, "track")
            stats = record.by_type.get(state.signal.signal_type.value) if state.signal else None
            assert cell.plain == format_track(stats)
            checked += stats is not None
        assert checked > 0


async def test_track_column_absent_without_history(replay: FinishedReplay) -> None:
    assert replay.track_record() is None
    app = app_with(replay)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause(0.2)
        assert "track" not in app.screen.query_one(SignalTable).columns_shown
        await pilot.press("R")
        await pilot.pause()
        assert "No database" in str(app.screen.query_one("#stats-summary", Static).render())


async def test_uncalibrated_confidence_is_marked(replay: FinishedReplay) -> None:
    snapshot = replay.snapshot()
    state = next(s for s in snapshot.symbols.values() if s.signal is not None)
    assert state.signal is not None and state.signal.calibrated_confidence is None
    app = app_with(replay)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.2)
        table = app.screen.query_one(SignalTable)
        cell = table.get_cell(state.symbol, "conf")
        assert cell.plain == f"~{state.signal.confidence:.2f}"
        app.screen.open_symbol(state.symbol)  # type: ignore[attr-defined]
        await pilot.pause(0.3)
        assert isinstance(app.screen, SymbolScreen)
        header = str(app.screen.query_one(SymbolHeader).render())
        assert "uncalibrated" in header
    # A fitted model's value is shown as is, unmarked.
    calibrated = msgspec.structs.replace(
        state, signal=msgspec.structs.replace(state.signal, calibrated_confidence=0.41)
    )
    assert cell_confidence(calibrated, table._ctx).plain == "0.41"


async def test_ctrl_s_writes_svg_screenshot(replay: FinishedReplay, tmp_path: Path) -> None:
    app = make_app(replay, UiConfig(), clock=lambda: 1_691_065_823.0, data_dir=tmp_path / "d")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await pilot.pause()
        files = list((tmp_path / "d").glob("*.svg"))
        assert [f.name for f in files] == ["perpscope-20230803-123023.svg"]
        assert files[0].read_text(encoding="utf-8").lstrip().startswith("<svg")
        assert any(n.title == "Screenshot saved" for n in app._notifications)


# -- snapshots -----------------------------------------------------------------------------


def _run_with(service: DeskService, bars: int, key: str) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await service.open()
        await _registered(pilot, service)
        await service.step(bars)
        await service.settle()
        await pilot.press(key)
        await pilot.pause(0.3)
        # Stopped here (same loop); the screens keep showing the desk's last snapshot.
        await service.close()
        app = pilot.app
        for notification in list(app._notifications):
            app._unnotify(notification)
        await pilot.pause(0.2)

    return run_before


def test_alert_log_snapshot(snap_compare: SnapCompare) -> None:
    """Alert log after 80 recorded bars: newest first, UTC and local (UTC here) times,
    rule, symbol, headline, in_app delivered; the channel health line."""
    service = DeskService(alerts_config())
    assert snap_compare(
        app_with(service), terminal_size=(140, 30), run_before=_run_with(service, ALERT_BARS, "a")
    )


def test_stats_screen_snapshot(snap_compare: SnapCompare) -> None:
    """Track record after 150 recorded bars: by signal type and by symbol, with Wilson 95 %
    intervals wide enough to show how little a handful of signals proves."""
    service = DeskService(alerts_config())
    assert snap_compare(
        app_with(service),
        terminal_size=(140, 30),
        run_before=_run_with(service, OUTCOME_BARS, "R"),
    )


async def test_alert_log_of_a_live_replay_runner() -> None:
    """The real MarketRunner (loopback replay server, WebSocket adapter, engine) with an
    in-memory database runs inside the app: its desk's alerts are toasted and listed."""
    runner = MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=list(SYMBOLS[:6])),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=KLINES_DIR, speed=None, start_ms=REPLAY_START_MS),
        wall_clock=lambda: REPLAY_END_MS + 1_500,
        db_path=":memory:",
        alerts=alerts_config(),
    )
    app = app_with(runner)
    async with app.run_test(size=(160, 40)) as pilot:
        async with asyncio.timeout(60):
            while runner.desk() is None or not runner.desk().snapshot().alerts:  # type: ignore[union-attr]
                await pilot.pause(0.2)
        desk = runner.desk()
        assert desk is not None
        await pilot.pause(1.0)
        await pilot.press("a")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, AlertLogScreen)
        screen.refresh_log()  # same tick as the read below: no alert can slip in between
        entries = unique_entries(desk.snapshot().alerts)
        assert entries and screen.rows == [log_row(e) for e in entries]
        assert {e.rule for e in entries} == {"raw"}
        # Every alert reached the in-app channel; those raised before the app's first desk
        # poll (the replay runs in well under a second) went to the log instead of a toast.
        assert all(e.delivered == ("in_app",) for e in entries)
        assert app.alerts_toasted <= len(entries)
