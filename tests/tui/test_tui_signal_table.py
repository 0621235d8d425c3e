"""Signal table on real pipeline snapshots: diff updates, sorting, filtering, keys, widths."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import DataTable
from tui_service import STALE_SYMBOL, SYMBOLS, FinishedReplay, HistoryService, app_with

from engine.models import Direction, EngineSnapshot
from tui.screens.main import MainScreen
from tui.widgets.signal_table import SignalTable


def by_score(snapshot: EngineSnapshot) -> list[str]:
    """Expected default order: score high → low, ties by symbol."""
    states = sorted(snapshot.symbols.values(), key=lambda s: s.symbol)
    states.sort(key=lambda s: s.signal.score if s.signal else -1, reverse=True)
    return [s.symbol for s in states]


class Spy:
    """Counts calls of a DataTable method on one instance while calling through."""

    def __init__(self, table: DataTable[Any], name: str) -> None:
        self.calls: list[tuple[Any, ...]] = []
        original: Callable[..., Any] = getattr(table, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            return original(*args, **kwargs)

        setattr(table, name, spy)


async def test_rows_follow_the_snapshot_sorted_by_score(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        snapshot = replay.snapshot()
        assert table.symbols_shown == by_score(snapshot)
        assert table.sort_column == "score" and table.sort_descending
        assert table.columns_shown == (
            "symbol",
            "last",
            "change",
            "signal",
            "score",
            "conf",
            "tf:5m",
            "tf:15m",
            "tf:1h",
            "tf:4h",
            "rr",
            "fund",
            "oi",
            "spread",
            "imb",
            "micro",
            "age",
        ), "fund in (time to funding) is the first column dropped for width"
        row = table.get_row("BTCUSDT")
        btc = snapshot.symbols["BTCUSDT"]
        assert btc.signal is not None
        assert row[0].plain == "BTCUSDT"
        # Close of the last recorded 5m candle, with the 0.01 tick of the recorded exchangeInfo.
        assert row[1].plain == "29116.20"
        assert row[3].plain == "neutral" and btc.signal.direction is Direction.NEUTRAL
        assert row[4].plain == f"{btc.signal.score:.0f}"
        col = table.columns_shown.index
        assert row[col("fund")].plain == f"{btc.funding_rate * 100:+.4f}%"  # type: ignore[operator]
        assert row[col("age")].plain == "0.0s"
        # A kline replay records no depth or open interest: those cells say "unknown".
        assert {row[col(k)].plain for k in ("oi", "spread", "imb", "micro")} == {"—"}
        assert "15 symbols" in str(table.border_title)


async def test_stale_rows_show_their_age_dimmed(history: HistoryService) -> None:
    app = app_with(history)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        stale = table.get_row(STALE_SYMBOL)
        col = table.columns_shown.index
        assert stale[col("age")].plain == "45s"
        assert stale[col("fund")].plain == "—", "no mark price seen, so no funding rate"
        # Every cell of the stale row ends with the dim stale style (mono terminals too).
        assert all("dim" in str(cell.spans[-1].style) for cell in stale)
        fresh = table.get_row("BTCUSDT")
        assert not any("dim" in str(span.style) for i in (0, 1, 4, 12) for span in fresh[i].spans)


async def test_new_data_updates_changed_cells_only(fresh_history: HistoryService) -> None:
    app = app_with(fresh_history)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        table = screen.query_one(SignalTable)
        await pilot.press("j", "j", "j")
        chosen = table.cursor_symbol
        spies = {
            name: Spy(table, name)
            for name in ("clear", "add_row", "remove_row", "update_cell", "sort")
        }
        keys_before = {row.key.value: row.key for row in table.ordered_rows}

        # Three more recorded 5m candles arrive for every fresh symbol.
        await fresh_history.advance(3)
        await pilot.pause(0.3)

        assert table.snapshot is fresh_history.snapshot()
        assert not spies["clear"].calls and not spies["add_row"].calls
        assert not spies["remove_row"].calls
        updated = Counter(call[1] for call in spies["update_cell"].calls)
        assert updated["last"] > 0, "prices moved with the new candles"
        # The stale symbol got no data: only its age moved (45 s → 15 min).
        stale_cells = {call[1] for call in spies["update_cell"].calls if call[0] == STALE_SYMBOL}
        assert stale_cells == {"age"}
        assert table.get_row(STALE_SYMBOL)[table.columns_shown.index("age")].plain == "15m"
        # Same RowKey objects: rows were updated in place, never re-created.
        assert {row.key.value: row.key for row in table.ordered_rows} == keys_before
        assert all(
            keys_before[k] is row.key for k, row in ((r.key.value, r) for r in table.ordered_rows)
        )
        assert table.symbols_shown == by_score(fresh_history.snapshot())
        assert table.cursor_symbol == chosen, "the cursor stays on its symbol"

        # The same snapshot again: nothing to do, no re-sort.
        calls = len(spies["update_cell"].calls)
        sorts = len(spies["sort"].calls)
        screen._tick()
        await pilot.pause(0.3)
        assert len(spies["update_cell"].calls) == calls
        assert len(spies["sort"].calls) == sorts


async def test_symbol_leaving_the_universe_removes_its_row(
    fresh_history: HistoryService,
) -> None:
    app = app_with(fresh_history)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        await pilot.press("down", "down")
        chosen = table.cursor_symbol
        assert chosen is not None and chosen != "ETHUSDT"
        removed = Spy(table, "remove_row")
        fresh_history.engine.set_universe([s for s in SYMBOLS if s != "ETHUSDT"])
        await pilot.pause(0.3)
        assert [call[0] for call in removed.calls] == ["ETHUSDT"]
        assert "ETHUSDT" not in table.symbols_shown
        assert len(table.symbols_shown) == len(SYMBOLS) - 1
        assert table.cursor_symbol == chosen


async def test_keys_move_the_cursor(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        order = table.symbols_shown
        assert table.cursor_symbol == order[0]
        await pilot.press("j", "j", "down")
        assert table.cursor_symbol == order[3]
        await pilot.press("k", "up")
        assert table.cursor_symbol == order[1]


async def test_s_cycles_sort_and_header_click_sorts(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        symbols = replay.snapshot().symbols
        await pilot.press("s")
        assert table.sort_column == "change"
        changes = [symbols[s].change_24h_pct for s in table.symbols_shown]
        assert changes == sorted(changes, reverse=True)  # type: ignore[type-var]
        assert "24h % ↓" in str(table.border_title)
        await pilot.press("S")
        changes = [symbols[s].change_24h_pct for s in table.symbols_shown]
        assert changes == sorted(changes)  # type: ignore[type-var]

        # Click the "fund" header: sorted by funding rate, highest first; again: lowest first.
        x = 1 + sum(col.get_render_width(table) for col in table.ordered_columns[:11])
        await pilot.click(SignalTable, offset=(x + 2, 1))
        await pilot.pause()
        assert table.sort_column == "fund"

        def rates() -> tuple[list[float], list[float | None]]:
            shown = [symbols[s].funding_rate for s in table.symbols_shown]
            known = [r for r in shown if r is not None]
            return known, shown[len(known) :]

        known, unknown = rates()
        assert known == sorted(known, reverse=True)
        assert len(set(known)) > 3, "the recorded rates differ, so the order means something"
        assert all(r is None for r in unknown), "symbols without a mark price go last"
        await pilot.click(SignalTable, offset=(x + 2, 1))
        await pilot.pause()
        known, unknown = rates()
        assert known == sorted(known)
        assert all(r is None for r in unknown), "…in both directions"


async def test_filter_by_text_and_by_direction(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one(SignalTable)
        await pilot.press("slash", *"et")
        assert set(table.symbols_shown) == {"ETHUSDT", "ETCUSDT", "THETAUSDT"}
        await pilot.press("escape")
        assert len(table.symbols_shown) == len(SYMBOLS)
        assert table.has_focus and not screen.has_class("-filtering")

        longs = {
            s.symbol
            for s in replay.snapshot().symbols.values()
            if s.signal is not None and s.signal.direction is Direction.LONG
        }
        assert 0 < len(longs) < len(SYMBOLS)
        await pilot.press("slash", *"long", "enter")
        assert set(table.symbols_shown) == longs
        assert table.has_focus, "enter keeps the filter and returns to the table"
        assert "filter “long”" in str(table.border_title)
        await pilot.press("escape")
        assert len(table.symbols_shown) == len(SYMBOLS)


@pytest.mark.parametrize(
    ("size", "dropped"), [((80, 24), {"fund", "rr", "conf", "change"}), ((120, 40), set())]
)
async def test_columns_fit_the_terminal(
    replay: FinishedReplay, size: tuple[int, int], dropped: set[str]
) -> None:
    app = app_with(replay)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        shown = set(table.columns_shown)
        assert not dropped & shown
        assert {"symbol", "last", "signal", "score", "tf:5m", "tf:4h", "age"} <= shown
        width = sum(col.get_render_width(table) for col in table.ordered_columns)
        assert width <= table.scrollable_content_region.width
        await pilot.press("j")
        assert table.cursor_row == 1


async def test_theme_change_recolours_cells_in_place(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        long_symbol = table.symbols_shown[0]
        before = table.get_row(long_symbol)[3]
        assert before.plain == "LONG"
        added = Spy(table, "add_row")
        app.theme = "textual-light"
        await pilot.pause(0.3)
        after = table.get_row(long_symbol)[3]
        assert after.plain == "LONG" and after.style != before.style
        assert not added.calls, "recoloured by update_cell, rows kept"
