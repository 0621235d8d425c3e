"""Picks and watchlist in the TUI on a real replay: marking (p), the form's field errors, the
picks pane (P: close, remove, history with totals), the watchlist (w, W, the ★ of watched
rows), and a screenshot of the picks pane.

The recorded slice is replayed to its end through the real pipeline (session fixture); each
test opens its own SQLite file with the project's real :class:`engine.desk.Desk`
(:mod:`desk_service`), and checks the database through a second connection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from desk_service import DESK_CLOCK_MS, DeskReplay
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import Input
from tui_service import FinishedReplay, app_with

from engine.models import Direction
from engine.picks import PicksConfig
from storage.db import Database
from storage.picks import Pick, PickStatus, PickStore
from tui.app import PerpscopeApp
from tui.formatting import GLYPH_WATCHED
from tui.screens.main import MainScreen
from tui.screens.pick_form import PickForm
from tui.screens.picks import ConfirmScreen, PicksScreen
from tui.widgets.picks_pane import STALE_MARK, PicksPane
from tui.widgets.signal_table import SignalTable

SnapCompare = Callable[..., bool]

SHORT_SYMBOL = "ETHUSDT"
"""WEAK_SHORT with a plan at the end of the replay (entry 1835.01, SL 1844.94)."""
LONG_SYMBOL = "AAVEUSDT"
"""MOMENTUM_LONG with a plan at the end of the replay."""
NO_PLAN_SYMBOL = "BTCUSDT"
"""NEUTRAL at the end of the replay: no trade plan."""
STALE_SYMBOL = "XLMUSDT"
"""Its recorded klines end early: stale at the end of the replay."""


async def _stored(path: Path) -> tuple[list[Pick], list[Pick]]:
    """Open and ended picks read back through a second connection (what is on disk)."""
    db = Database(path)
    await db.open()
    try:
        store = PickStore(db)
        return list(await store.open()), list(await store.history())
    finally:
        await db.close()


async def _select(app: PerpscopeApp, pilot: Pilot[None], symbol: str) -> MainScreen:
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, MainScreen)
    table = screen.table
    table.move_cursor(row=table.get_row_index(symbol), animate=False)
    await pilot.pause()
    assert table.cursor_symbol == symbol
    return screen


def _toasts(app: PerpscopeApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_p_marks_a_pick_from_the_plan_edited_and_stored(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    path = tmp_path / "picks.db"
    desk = await service.open_desk(path)
    plan = replay.snapshot().symbols[SHORT_SYMBOL].signal
    assert plan is not None and plan.plan is not None
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await _select(app, pilot, SHORT_SYMBOL)
            await pilot.press("p")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, PickForm)
            assert form.side is Direction.SHORT
            assert float(form.value("entry")) == plan.plan.entry
            assert float(form.value("stop_loss")) == plan.plan.stop_loss
            assert float(form.value("take_profit_1")) == plan.plan.take_profit_1
            assert float(form.value("take_profit_2")) == plan.plan.take_profit_2
            form.set_value("take_profit_2", "1815.5")
            form.set_value("note", "fade the bounce")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert not isinstance(app.screen, PickForm)
            assert any("pick saved" in t and SHORT_SYMBOL in t for t in _toasts(app))
        open_picks = desk.snapshot(replay.snapshot()).open_picks
        assert len(open_picks) == 1
        pick = open_picks[0].pick
        assert (pick.symbol, pick.side, pick.status) == (SHORT_SYMBOL, Direction.SHORT,
                                                         PickStatus.OPEN)
        assert pick.take_profit_2 == 1815.5
        assert pick.note == "fade the bounce"
        assert pick.signal_type == plan.signal_type.value
        assert pick.opened_ms == replay.snapshot().time
    finally:
        await service.close_desk()
    on_disk, ended = await _stored(path)
    assert [(p.id, p.symbol, p.take_profit_2, p.note) for p in on_disk] == [
        (pick.id, SHORT_SYMBOL, 1815.5, "fade the bounce")
    ]
    assert ended == []


async def test_bad_levels_show_the_field_error_and_save_nothing(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    path = tmp_path / "picks.db"
    desk = await service.open_desk(path)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await _select(app, pilot, SHORT_SYMBOL)
            await pilot.press("p")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, PickForm)
            # A SHORT's stop below its entry: the store refuses it, naming stop_loss.
            form.set_value("stop_loss", "1800")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert form.is_current
            assert "stop_loss" in form.error("stop_loss")
            assert "must be above entry" in form.error("stop_loss")
            assert form.error("entry") == ""
            # Not a number, and a required field left empty: both named, nothing stored.
            form.set_value("stop_loss", "1850")
            form.set_value("entry", "abc")
            form.set_value("take_profit_1", "")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert form.is_current
            assert "not a number" in form.error("entry")
            assert "TP1 is required" in form.error("take_profit_1")
            assert form.error("stop_loss") == ""
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
        assert desk.snapshot().open_picks == ()
    finally:
        await service.close_desk()
    assert await _stored(path) == ([], [])


async def test_form_shows_paper_sizing_capped_and_no_plan_prefills_last_price(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    cfg = PicksConfig(account_equity=1000.0, risk_pct=1.0, max_leverage=1.0)
    await service.open_desk(tmp_path / "picks.db", cfg)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await _select(app, pilot, SHORT_SYMBOL)
            await pilot.press("p")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, PickForm)
            paper = str(form.query_one("#pick-paper").render())
            # 1 % of 1000 at a 0.54 % stop needs ~1.85x: capped at 1x, so 1000 USDT notional.
            assert "capped at 1×" in paper and "needed 1.8×" in paper
            assert float(form.value("size_quote")) == 1000.0
            # Moving the stop resizes the position while the size was not set by hand.
            form.set_value("stop_loss", "1900")
            await pilot.pause()
            assert "capped" not in str(form.query_one("#pick-paper").render())
            assert float(form.value("size_quote")) < 1000.0
            await pilot.press("escape")
            await pilot.pause()
            state = replay.snapshot().symbols[NO_PLAN_SYMBOL]
            await _select(app, pilot, NO_PLAN_SYMBOL)
            await pilot.press("p")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, PickForm)
            assert not form.draft.from_plan
            assert float(form.value("entry")) == state.last_price
            assert form.value("stop_loss") == form.value("take_profit_1") == ""
    finally:
        await service.close_desk()


async def test_without_a_database_p_and_P_say_why(replay: FinishedReplay) -> None:
    assert replay.desk() is None
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await _select(app, pilot, SHORT_SYMBOL)
        await pilot.press("p")
        await pilot.press("P")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert sum("picks need the database" in t for t in _toasts(app)) == 2


async def test_picks_pane_closes_and_removes_with_confirmation(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    path = tmp_path / "picks.db"
    desk = await service.open_desk(path)
    snapshot = replay.snapshot()
    first = desk.default_pick(SHORT_SYMBOL, snapshot)
    second = desk.default_pick(LONG_SYMBOL, snapshot)
    assert first is not None and second is not None
    short = await desk.add_pick(first)
    long = await desk.add_pick(second)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            await pilot.press("P")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PicksScreen)
            pane = screen.query_one(PicksPane)
            assert pane.selected_id == short.id
            # Declining changes nothing.
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.pause()
            assert len(desk.snapshot().open_picks) == 2
            await pilot.press("c")
            await pilot.press("y")
            await pilot.pause()
            assert any("pick closed" in t for t in _toasts(app))
            assert [v.pick.id for v in desk.snapshot().open_picks] == [long.id]
            assert pane.selected_id == long.id
            await pilot.press("delete")
            await pilot.press("y")
            await pilot.pause()
            assert desk.snapshot().open_picks == ()
            await pilot.press("h")
            await pilot.pause()
            assert pane.history
            assert pane.selected_id == short.id
            totals = str(pane.query_one("#picks-totals").render())
            # Closed at the last price, which is the plan's entry at the end of the replay.
            assert totals.startswith("1 ended")
            assert "total +0.00R" in totals
    finally:
        await service.close_desk()
    on_disk, ended = await _stored(path)
    assert on_disk == []
    assert [(p.id, p.status, p.close_price) for p in ended] == [
        (short.id, PickStatus.CLOSED, snapshot.symbols[SHORT_SYMBOL].last_price)
    ]


async def test_watchlist_toggle_and_filter(replay: FinishedReplay, tmp_path: Path) -> None:
    service = DeskReplay(replay)
    path = tmp_path / "picks.db"
    desk = await service.open_desk(path)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _select(app, pilot, "DOGEUSDT")
            await pilot.press("W")  # empty watchlist: nothing to filter on
            await pilot.pause()
            assert not screen.watch_only
            assert any("watchlist is empty" in t for t in _toasts(app))
            await pilot.press("w")
            await _select(app, pilot, "EOSUSDT")
            await pilot.press("w")
            await pilot.pause()
            assert desk.watchlist() == ("DOGEUSDT", "EOSUSDT")
            await pilot.press("W")
            await pilot.pause()
            assert screen.watch_only
            assert sorted(screen.table.symbols_shown) == ["DOGEUSDT", "EOSUSDT"]
            await _select(app, pilot, "DOGEUSDT")
            await pilot.press("w")  # unwatching keeps the filter in step
            await pilot.pause()
            assert screen.table.symbols_shown == ["EOSUSDT"]
            await pilot.press("W")
            await pilot.pause()
            assert not screen.watch_only
            assert len(screen.table.symbols_shown) == len(replay.snapshot().symbols)
            assert screen.query_one("#filter", Input).value == ""
    finally:
        await service.close_desk()
    # Persisted: a new desk on the same file sees it.
    again = DeskReplay(replay)
    try:
        reopened = await again.open_desk(path)
        assert reopened.watchlist() == ("EOSUSDT",)
    finally:
        await again.close_desk()


def _rendered_symbol(table: SignalTable, symbol: str) -> str:
    """The symbol cell of ``symbol``'s row as the table draws it on screen (cell padding
    stripped): its rendered line, cut to the symbol column."""
    table.scroll_to(y=table.get_row_index(symbol), animate=False, immediate=True)
    y = table.header_height + table.get_row_index(symbol) - round(table.scroll_offset.y)
    line = "".join(segment.text for segment in table.render_line(y))
    width = table.ordered_columns[table.get_column_index("symbol")].get_render_width(table)
    return line[:width].strip()


async def test_watched_row_shows_star_and_follows_w(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    path = tmp_path / "picks.db"
    desk = await service.open_desk(path)
    symbols = sorted(replay.snapshot().symbols)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _select(app, pilot, "DOGEUSDT")
            table = screen.table
            assert _rendered_symbol(table, "DOGEUSDT") == "DOGEUSDT"
            order = table.symbols_shown
            await _select(app, pilot, "DOGEUSDT")
            await pilot.press("w")
            await pilot.pause()
            assert desk.watchlist() == ("DOGEUSDT",)
            assert _rendered_symbol(table, "DOGEUSDT") == f"{GLYPH_WATCHED}DOGEUSDT"
            starred = [s for s in symbols if GLYPH_WATCHED in _rendered_symbol(table, s)]
            assert starred == ["DOGEUSDT"]
            # Same rows in the same order; sorting by symbol and filtering still go by name.
            assert table.symbols_shown == order
            table.sort_by("symbol")
            await pilot.pause()
            assert table.symbols_shown == symbols
            screen.set_filter("doge")
            await pilot.pause()
            assert table.symbols_shown == ["DOGEUSDT"]
            assert _rendered_symbol(table, "DOGEUSDT") == f"{GLYPH_WATCHED}DOGEUSDT"
            screen.action_clear_filter()
            await _select(app, pilot, "DOGEUSDT")
            await pilot.press("w")
            await pilot.pause()
            assert desk.watchlist() == ()
            assert _rendered_symbol(table, "DOGEUSDT") == "DOGEUSDT"
            assert not [s for s in symbols if GLYPH_WATCHED in _rendered_symbol(table, s)]
            await _select(app, pilot, "EOSUSDT")
            await pilot.press("w")  # stays watched for the next run
            await pilot.pause()
    finally:
        await service.close_desk()
    # A new run over the same database marks the stored watchlist from the start.
    again = DeskReplay(replay)
    try:
        await again.open_desk(path)
        app = app_with(again)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await _select(app, pilot, "EOSUSDT")
            for _ in range(40):  # the app polls the desk every 0.5 s
                if GLYPH_WATCHED in _rendered_symbol(screen.table, "EOSUSDT"):
                    break
                await pilot.pause(0.05)
            assert _rendered_symbol(screen.table, "EOSUSDT") == f"{GLYPH_WATCHED}EOSUSDT"
            assert _rendered_symbol(screen.table, "DOGEUSDT") == "DOGEUSDT"
    finally:
        await again.close_desk()


def test_picks_pane_screenshot(
    snap_compare: SnapCompare, replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)

    async def run_before(pilot: Pilot[None]) -> None:
        desk = await service.open_desk(tmp_path / "picks.db")
        snapshot = replay.snapshot()
        short = desk.default_pick(SHORT_SYMBOL, snapshot)
        assert short is not None
        await desk.add_pick(short)
        # The long was taken 18 bars (1.5 h) earlier at that 5m candle's recorded close,
        # with the current plan's distances: the pane shows a real move since.
        plan = desk.default_pick(LONG_SYMBOL, snapshot)
        candles = replay.candles(LONG_SYMBOL, "5m", 19)
        assert plan is not None and candles is not None
        entry = candles.close[0]
        await desk.add_pick(Pick(
            symbol=LONG_SYMBOL, side=Direction.LONG, entry=entry,
            stop_loss=entry - (plan.entry - plan.stop_loss),
            take_profit_1=entry + (plan.take_profit_1 - plan.entry),
            take_profit_2=entry + ((plan.take_profit_2 or plan.take_profit_1) - plan.entry),
            opened_ms=candles.open_time[0] + 300_000, note="earlier entry",
        ))
        stale = snapshot.symbols[STALE_SYMBOL]
        assert stale.stale and stale.last_price is not None
        price = stale.last_price
        await desk.add_pick(Pick(
            symbol=STALE_SYMBOL, side=Direction.LONG, entry=price, stop_loss=price * 0.98,
            take_profit_1=price * 1.02, take_profit_2=None, opened_ms=DESK_CLOCK_MS - 600_000,
            note="stale data",
        ))
        await pilot.pause(0.1)
        screen = pilot.app.screen
        assert isinstance(screen, MainScreen)
        screen.action_picks()
        await pilot.pause(0.3)
        assert isinstance(pilot.app.screen, PicksScreen)
        pane = pilot.app.screen.query_one(PicksPane)
        assert pane.table.row_count == 3
        assert STALE_MARK in {str(pane.table.get_cell_at(Coordinate(r, 12))) for r in range(3)}
        # Everything is stored and shown: stop the desk (and its database) inside this loop;
        # the screen keeps reading its in-memory snapshot.
        await service.close_desk()

    assert snap_compare(app_with(service), terminal_size=(140, 30), run_before=run_before)
