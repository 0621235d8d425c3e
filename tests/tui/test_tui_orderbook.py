"""Order book pane of the symbol view on a raw capture replayed through the real pipeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from micro_service import BOOK_SYMBOL, FinishedCapture, build_capture, capture_clock
from rich.console import Console
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Sparkline
from tui_service import FinishedReplay

from engine.models import MicroView
from tui import formatting as fmt
from tui.app import PerpscopeApp, make_app
from tui.screens.main import MainScreen
from tui.screens.symbol import SymbolScreen
from tui.ui_config import UiConfig
from tui.widgets.orderbook import (
    GLYPH_WALL,
    NO_BOOK,
    BookDetails,
    BookLadder,
    BookSummary,
    OrderBookPane,
    book_state_text,
    price_decimals_of,
)

SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def capture() -> FinishedCapture:
    """The capture replayed to its end, shared by this module's read-only tests."""
    return build_capture()


def capture_app(service: FinishedCapture, **ui: object) -> PerpscopeApp:
    settings: dict[str, object] = {"refresh_hz": 10.0, **ui}
    return make_app(service, UiConfig.model_validate(settings), clock=capture_clock)


def plain(widget: Widget, width: int = 200) -> str:
    """What a pane part shows, as plain text (rendered at ``width`` cells)."""
    console = Console(width=width, record=True, color_system=None)
    console.print(widget.render())
    return console.export_text()


def view_of(capture: FinishedCapture, symbol: str = BOOK_SYMBOL) -> MicroView:
    view = capture.micro(symbol)
    assert view is not None
    return view


async def open_book(pilot: Pilot[None], symbol: str = BOOK_SYMBOL) -> SymbolScreen:
    await pilot.pause()
    main = pilot.app.screen
    assert isinstance(main, MainScreen)
    main.open_symbol(symbol)
    await pilot.pause(0.3)
    screen = pilot.app.screen
    assert isinstance(screen, SymbolScreen)
    await pilot.press("o")
    await pilot.pause(0.3)
    return screen


def test_the_capture_yields_a_synced_book_with_flow(capture: FinishedCapture) -> None:
    """Guard for the tests below: the replay really produced what the pane shows."""
    view = view_of(capture)
    assert view.book.state == "synced" and view.bids and view.asks
    assert view.features is not None and view.score is not None
    assert view.flow is not None and len(view.flow.sweeps) >= 2
    assert len(view.flow.cvd_series) > 1


async def test_o_shows_the_ladder_and_numbers_and_the_book_is_released_on_close(
    capture: FinishedCapture,
) -> None:
    view = view_of(capture)
    assert view.features is not None and view.flow is not None and view.score is not None
    capture.book_requests.clear()
    app = capture_app(capture)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_book(pilot)
        assert capture.book_requests == [(BOOK_SYMBOL, True)], "asked for a book on open"
        pane = screen.query_one(OrderBookPane)
        assert pane.display and not screen.query_one("#symbol-body").display
        assert pane.view == view

        ladder = screen.query_one(BookLadder)
        text = plain(ladder, ladder.size.width)
        decimals = price_decimals_of(view)
        assert view.tick_size, "the replayed exchangeInfo gives the contract's tick"
        assert decimals == fmt.tick_decimals(view.tick_size)
        lines = text.splitlines()
        best_ask = fmt.format_price(view.asks[0][0], decimals)
        best_bid = fmt.format_price(view.bids[0][0], decimals)
        mid_row = next(i for i, line in enumerate(lines) if " mid " in line)
        # Asks above the mid line (best just above it), bids below (best just under it).
        assert lines[mid_row - 1].lstrip().startswith(best_ask)
        assert lines[mid_row + 1].lstrip().startswith(best_bid)
        assert f"spread {fmt.format_bps(view.features.spread_bps)} bp" in lines[mid_row]
        depth = ladder.levels_per_side()
        shown = {w.price for w in view.features.walls} & {
            p for p, _ in view.bids[:depth] + view.asks[:depth]
        }
        assert text.count(GLYPH_WALL) == len(shown), "walls marked where they are shown"

        summary = plain(screen.query_one(BookSummary))
        assert "book synced" in summary
        assert f"imb {view.features.imbalance:+.2f}" in summary
        assert "CVD 1m" in summary
        sparkline = screen.query_one("#book-cvd", Sparkline)
        assert list(sparkline.data or []) == list(view.flow.cvd_series)

        details = plain(screen.query_one(BookDetails))
        for band in view.features.bid_depth:
            assert band in details
        assert f"micro {view.score.score:.0f}" in details
        assert "unmet: " + ", ".join(view.score.unmet) in details
        for factor in view.score.factors:
            assert factor.name in details
        assert details.count(" lv") == min(4, len(view.flow.sweeps)), "recent sweeps listed"
        # The capture has no markPrice stream, and the replay records no open interest: the
        # pane says why instead of "not polled yet".
        assert "funding —" in details
        assert "OI unavailable: open interest is not recorded in this replay" in details

        await pilot.press("o")
        assert not pane.display and screen.query_one("#symbol-body").display
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert capture.book_requests[-1] == (BOOK_SYMBOL, False), "released on close"


class PaneApp(App[None]):
    """Just the pane, to show one view."""

    def __init__(self, view: MicroView | None) -> None:
        super().__init__()
        self._view = view

    def compose(self) -> ComposeResult:
        yield OrderBookPane()

    def on_mount(self) -> None:
        self.query_one(OrderBookPane).view = self._view


async def test_a_symbol_without_a_book_says_so(replay: FinishedReplay) -> None:
    # The kline replay records no depth: the pipeline keeps no book for its symbols.
    view = replay.runner.micro("BTCUSDT")
    assert view is not None and view.book.state == "none"
    app = PaneApp(view)
    async with app.run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        pane = app.query_one(OrderBookPane)
        assert NO_BOOK in plain(app.query_one(BookLadder))
        assert NO_BOOK in plain(app.query_one(BookSummary))
        assert pane.border_subtitle == NO_BOOK
        assert not app.query_one("#book-cvd", Sparkline).display


def test_book_state_text_names_the_reason_and_counts(capture: FinishedCapture) -> None:
    import msgspec

    info = view_of(capture).book
    assert book_state_text(info) == "synced"
    resyncing = msgspec.structs.replace(
        info, state="resyncing", last_reason="gap", resyncs=2, gaps=1
    )
    assert book_state_text(resyncing) == "resyncing (gap) · 2 resyncs · 1 gap"


def test_order_book_pane_80x24(snap_compare: SnapCompare, capture: FinishedCapture) -> None:
    """SUSHIUSDT at the end of the capture in a small terminal: 8 asks above the mid line
    (spread in bp), 8 bids below with size bars, book synced, imbalance bar, CVD per window
    and its sparkline, depth bands; the rest scrolls."""

    async def run_before(pilot: Pilot[None]) -> None:
        await open_book(pilot)
        await pilot.pause(0.3)

    assert snap_compare(capture_app(capture), terminal_size=(80, 24), run_before=run_before)


