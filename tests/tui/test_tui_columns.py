"""Signal table microstructure columns, column choice (config and picker), row flashes and the
status bar's book / open-interest health, on the raw capture replayed through the pipeline."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from micro_service import BOOK_SYMBOL, FinishedCapture, build_capture, capture_clock, capture_runner
from pydantic import ValidationError
from rich.console import Console
from rich.style import Style
from textual.widgets import SelectionList

from engine.models import EngineSnapshot, FeedHealth, SymbolState
from tui import formatting as fmt
from tui.app import make_app
from tui.screens.columns import ColumnPicker
from tui.screens.main import MainScreen
from tui.ui_config import TABLE_COLUMNS, UiConfig
from tui.widgets.signal_table import (
    FLASH_S,
    SignalTable,
    build_columns,
    fit_columns,
    visibility_key,
)
from tui.widgets.status_bar import StatusBar, book_health, open_interest_health, rest_health


@pytest.fixture(scope="module")
def capture() -> FinishedCapture:
    """The capture replayed to its end, shared by this module's read-only tests."""
    return build_capture()


def state_of(capture: FinishedCapture, symbol: str = BOOK_SYMBOL) -> SymbolState:
    return capture.snapshot().symbols[symbol]


# ---------------------------------------------------------------- config


def test_ui_columns_default_to_every_column_and_reject_unknown_ones() -> None:
    assert UiConfig().columns == list(TABLE_COLUMNS)
    assert UiConfig(columns=["score", "micro", "score"]).columns == ["score", "micro"]
    with pytest.raises(ValidationError) as caught:
        UiConfig(columns=["score", "sprd", "fundin"])
    message = str(caught.value)
    assert "unknown column(s) 'sprd', 'fundin'" in message
    assert "allowed: " + ", ".join(TABLE_COLUMNS) in message
    with pytest.raises(ValidationError, match="unknown interval '2h30'"):
        UiConfig(oi_window="2h30")


def test_every_table_column_is_configurable_by_its_key() -> None:
    # With signal history (a track-record lookup) every configurable column exists.
    columns = build_columns(("5m", "15m", "1h", "4h"), track=lambda state: None)
    assert {visibility_key(c) for c in columns} == set(TABLE_COLUMNS)


def test_all_columns_still_fit_80_cells_keeping_the_core_ones() -> None:
    columns = build_columns(("5m", "15m", "1h", "4h"))
    kept = fit_columns(columns, 80 - 4)
    assert sum(c.width + 2 for c in kept) <= 76
    assert {"symbol", "last", "signal", "score", "tf:5m", "tf:4h", "age"} <= {
        c.key for c in kept
    }
    # The microstructure columns go before the older ones as the width shrinks.
    wide = {c.key for c in fit_columns(columns, 120 - 4)}
    assert {"rr", "fund", "conf", "change"} <= wide
    assert "fund_in" not in wide


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "—"), (-5, "0s"), (42_400, "42s"), (725_000, "12m05s"), (28_740_000, "7h59m")],
)
def test_format_countdown(ms: int | None, text: str) -> None:
    assert fmt.format_countdown(ms) == text


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [(950.4, False, "950"), (12_400.0, False, "12.4k"), (-3_214_000.0, True, "-3.21M"),
     (7810.0, True, "+7.81k"), (None, False, "—")],
)  # fmt: skip
def test_format_notional(value: float | None, signed: bool, text: str) -> None:
    assert fmt.format_notional(value, signed=signed) == text


def test_format_bps_and_size() -> None:
    assert fmt.format_bps(5.2534) == "5.3"
    assert fmt.format_bps(-0.04, signed=True) == "+0.0", "no negative zero"
    assert fmt.format_bps(None) == "—"
    assert fmt.format_size(1_421.0) == "1,421"
    assert fmt.format_size(0.5126) == "0.5126"
    assert fmt.format_size(267.0) == "267", "whole-unit contracts show no decimals"


def test_oi_window_prefers_the_configured_one_else_the_longest() -> None:
    changes = {"5m": 0.001, "15m": 0.004}
    assert fmt.longest_oi_window(changes, "1h") == "15m"
    assert fmt.longest_oi_window(changes, "5m") == "5m"
    assert fmt.longest_oi_window({}, "1h") is None


def test_micro_cells_show_the_replayed_book(capture: FinishedCapture) -> None:
    state = state_of(capture)
    assert state.spread_bps is not None and state.imbalance is not None
    assert state.micro_score is not None and state.book is not None
    ctx = fmt.CellContext()
    assert fmt.cell_spread(state, ctx).plain == fmt.format_bps(state.spread_bps)
    imbalance = fmt.cell_imbalance(state, ctx)
    assert imbalance.plain == f"{state.imbalance:+.2f}"
    assert imbalance.style == (ctx.palette.short if state.imbalance < -0.2 else Style())
    assert fmt.cell_micro(state, ctx).plain == f"{state.micro_score:.0f}"
    # The capture has no markPrice stream and the replay serves no open interest.
    assert fmt.cell_funding_in(state, ctx).plain == "—"
    assert fmt.cell_oi_change(state, ctx).plain == "—"
    assert fmt.cell_symbol_marked(state, ctx).plain == BOOK_SYMBOL


def test_a_resyncing_book_marks_its_row(capture: FinishedCapture) -> None:
    state = state_of(capture)
    assert state.book is not None
    resyncing = msgspec.structs.replace(
        state, book=msgspec.structs.replace(state.book, state="resyncing", last_reason="gap")
    )
    ctx = fmt.CellContext()
    assert fmt.cell_symbol_marked(resyncing, ctx).plain == f"{BOOK_SYMBOL} {fmt.GLYPH_RESYNC}"
    assert fmt.cell_imbalance(resyncing, ctx).style == ctx.palette.muted, "not current"


def test_a_watched_symbol_is_starred_and_reads_back(capture: FinishedCapture) -> None:
    state = state_of(capture)
    assert state.book is not None
    resyncing = msgspec.structs.replace(
        state, book=msgspec.structs.replace(state.book, state="resyncing")
    )
    ctx = fmt.CellContext(watched=frozenset({BOOK_SYMBOL}))
    cell = fmt.cell_symbol_marked(resyncing, ctx)
    assert cell.plain == f"{fmt.GLYPH_WATCHED}{BOOK_SYMBOL} {fmt.GLYPH_RESYNC}"
    assert fmt.symbol_of_cell(cell) == BOOK_SYMBOL
    # The star alone takes the warning colour; the symbol keeps its own (bold) style.
    assert not cell.style
    styles = [(span.start, span.end, span.style) for span in cell.spans]
    assert styles[:2] == [(0, 1, ctx.palette.warning), (1, 1 + len(BOOK_SYMBOL), Style(bold=True))]
    plain = fmt.CellContext(watched=frozenset({"BTCUSDT"}))
    assert fmt.cell_symbol_marked(state, plain).plain == BOOK_SYMBOL
    assert fmt.symbol_of_cell(fmt.cell_symbol_marked(state, plain)) == BOOK_SYMBOL


def test_funding_countdown_runs_on_the_snapshot_clock(capture: FinishedCapture) -> None:
    state = msgspec.structs.replace(state_of(capture), next_funding_time=0)
    ctx = fmt.CellContext(now_ms=1_626_992_771_202)
    assert fmt.cell_funding_in(state, ctx).plain == "—"
    due = msgspec.structs.replace(state, next_funding_time=1_626_998_400_000)
    assert fmt.cell_funding_in(due, ctx).plain == "1h33m"


# ---------------------------------------------------------------- status bar


def test_book_and_open_interest_health_texts(capture: FinishedCapture) -> None:
    health = capture.snapshot().health
    assert (health.books, health.books_synced) == (4, 4)
    assert book_health(health) == ("books 4/4", "books 4/4 synced")
    worse = msgspec.structs.replace(health, books_synced=3, book_resyncs=2, book_gaps=1)
    assert book_health(worse) == ("books 3/4", "books 3/4 synced · 2 resyncs · 1 gap")
    assert book_health(msgspec.structs.replace(health, books=0, books_synced=0)) is None
    assert health.open_interest == "unavailable"
    short, full = open_interest_health(health) or ("", "")
    assert short == "OI unavailable"
    assert full.startswith("OI unavailable: ") and len(full) <= len(short) + 2 + 32
    assert open_interest_health(msgspec.structs.replace(health, open_interest="polling")) is None


@pytest.mark.parametrize("width", [80, 240])
async def test_status_bar_shows_book_and_oi_health_within_the_width(
    capture: FinishedCapture, width: int
) -> None:
    app = make_app(capture, UiConfig(refresh_hz=10.0), clock=capture_clock)
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(StatusBar)
        line = bar.render().plain.splitlines()[0]
        assert len(line) <= width
        assert "OI unavailable" in line, "named even at 80 columns"
        if width >= 240:
            assert "books 4/4 synced" in line
            assert "OI unavailable: open interest is not" in line


# ---------------------------------------------------------------- table


async def test_micro_columns_fill_from_the_replay_and_config_hides_columns(
    capture: FinishedCapture,
) -> None:
    snapshot = capture.snapshot()
    app = make_app(capture, UiConfig(refresh_hz=10.0), clock=capture_clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        col = table.columns_shown.index
        assert {"spread", "imb", "micro", "oi", "fund_in"} <= set(table.columns_shown)
        for symbol, state in snapshot.symbols.items():
            row = table.get_row(symbol)
            assert row[col("spread")].plain == fmt.format_bps(state.spread_bps)
            assert row[col("micro")].plain == f"{state.micro_score:.0f}"
        table.sort_by("spread")
        spreads = [snapshot.symbols[s].spread_bps for s in table.symbols_shown]
        assert spreads == sorted(spreads), "tightest spread first"  # type: ignore[type-var]

    ui = UiConfig(refresh_hz=10.0, columns=["signal", "score", "spread", "micro"])
    app = make_app(capture, ui, clock=capture_clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        assert table.columns_shown == ("symbol", "signal", "score", "spread", "micro")


async def test_v_opens_the_column_picker(capture: FinishedCapture) -> None:
    app = make_app(capture, UiConfig(refresh_hz=10.0), clock=capture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        before = table.columns_shown
        assert "conf" in before and "tf:1h" in before
        await pilot.press("v")
        picker = app.screen
        assert isinstance(picker, ColumnPicker)
        listing: SelectionList[str] = picker.query_one(SelectionList)
        assert set(listing.selected) == set(TABLE_COLUMNS)
        # Uncheck "conf" and "votes" (the rows after symbol: last change signal score conf).
        await pilot.press("down", "down", "down", "down", "space", "down", "space")
        assert picker.selected == frozenset(TABLE_COLUMNS) - {"conf", "votes"}
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and table.has_focus
        shown = table.columns_shown
        assert "conf" not in shown and not any(k.startswith("tf:") for k in shown)
        # Freed width brings back columns that were dropped for width.
        assert set(before) - {"conf"} - {k for k in before if k.startswith("tf:")} <= set(shown)

        await pilot.press("v", "space", "escape")
        await pilot.pause()
        assert table.columns_shown == shown, "escape changes nothing"
        with pytest.raises(ValueError, match="unknown column"):
            table.show_columns(["score", "nope"])


async def test_rows_flash_when_a_sweep_arrives() -> None:
    """The capture replayed in real time (x5) inside the app: SUSHIUSDT's takers sweep the
    book several times; each new sweep flashes its row for FLASH_S."""
    runner = capture_runner(speed=5.0)
    app = make_app(runner, UiConfig(refresh_hz=10.0), clock=capture_clock)
    seen: dict[str, Style] = {}
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.screen.query_one(SignalTable)
        flash_style = table.get_component_rich_style("signal-table--flash", partial=True)
        async with asyncio.timeout(20):
            while not table.flashing:
                await pilot.pause(0.05)
        symbol = next(iter(table.flashing))
        snapshot: EngineSnapshot = runner.snapshot()
        assert snapshot.symbols[symbol].spike in ("sweep", "liquidation", "price", "volume")
        cell = table.get_row(symbol)[0]
        seen[symbol] = cell.style if isinstance(cell.style, Style) else Style.parse(cell.style)
        assert seen[symbol].reverse == flash_style.reverse is True
        async with asyncio.timeout(FLASH_S + 5):
            while symbol in table.flashing:
                await pilot.pause(0.05)
        cell = table.get_row(symbol)[0]
        assert not (isinstance(cell.style, Style) and cell.style.reverse), "flash ended"


async def test_help_lists_the_new_keys_columns_and_glyphs(capture: FinishedCapture) -> None:
    from tui.screens.help import HelpScreen

    app = make_app(capture, UiConfig(refresh_hz=10.0), clock=capture_clock)
    async with app.run_test(size=(140, 50)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert {line.binding_id for line in help_screen.keys} >= {"main.columns"}
        console = Console(width=120, record=True, color_system=None)
        console.print(help_screen._render_help())
        text = console.export_text()
        for label in ("fund in", "OI Δ", "spread", "imb", "micro"):
            assert f"\n  {label} " in text or f"\n{label} " in text, label
        assert fmt.GLYPH_RESYNC in text and "flashing row" in text
        await pilot.press("escape")
        app.screen.query_one(SignalTable)  # back on the main screen
        main = app.screen
        assert isinstance(main, MainScreen)
        main.open_symbol(BOOK_SYMBOL)
        await pilot.pause(0.3)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = {line.binding_id: line.keys for line in help_screen.keys}
        assert keys["symbol.book"] == "o"


def test_rest_cooldown_reads_minutes_and_the_reason() -> None:
    health = FeedHealth(mode="LIVE", exchange="binanceusdm")
    assert rest_health(health) is None
    banned = msgspec.structs.replace(
        health, rest_cooldown_s=71.2, rest_cooldown_reason="418 IP banned until 1700000000000"
    )
    assert rest_health(banned) == (
        "REST paused 1m12s", "REST paused 1m12s: 418 IP banned until 1700000000000"
    )
    short = msgspec.structs.replace(health, rest_cooldown_s=0.4)
    assert rest_health(short) == ("REST paused 1s", "REST paused 1s")
