"""Main screen: status bar, signal table, filter input, footer, and the snapshot timer.

The screen pulls one frozen :class:`EngineSnapshot` per frame (``set_interval`` at
``ui.refresh_hz``) and assigns it to its ``snapshot`` reactive; the table and the status bar
are data-bound to it. The timer pauses while another screen (symbol view, help) is on top.

Picks and watchlist keys: ``p`` marks a pick on the selected row (:mod:`tui.screens.
pick_form`), ``P`` opens the picks pane, ``w`` toggles the selected symbol on the watchlist
(watched rows show ``★`` before the symbol: the table follows the app's ``watchlist``, which
polls the desk, and takes each toggle at once), ``W`` shows only the watchlist (it sets the
filter to the watched symbols), ``e`` writes the table as shown (filtered, sorted) to a CSV
file under the data dir's ``exports/``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input

from engine.config import RISK_PROFILE_NAMES
from engine.models import EngineSnapshot
from engine.service import MarketService
from tui import export
from tui.commands import PaletteCommand
from tui.screens.columns import ColumnPicker
from tui.screens.pick_form import open_pick_form
from tui.screens.picks import PicksScreen
from tui.screens.symbol import SymbolScreen
from tui.ui_config import UiConfig
from tui.widgets.breadth import BreadthPane
from tui.widgets.signal_table import SORT_CYCLE, SignalTable
from tui.widgets.status_bar import StatusBar

log = logging.getLogger(__name__)


class MainScreen(Screen[None]):
    """The signal scanner: every symbol, its fused signal, votes and freshness."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash",
            "filter",
            "Filter",
            tooltip="Filter by symbol text or long/short/neutral",
            id="table.filter",
        ),
        Binding("escape", "clear_filter", "Clear filter", id="table.clear_filter"),
        Binding(
            "b",
            "toggle_breadth",
            "Breadth",
            tooltip="Show or hide market breadth",
            id="main.breadth",
        ),
        Binding(
            "v",
            "pick_columns",
            "Columns",
            tooltip="Choose the signal table's columns",
            id="main.columns",
        ),
        Binding(
            "r",
            "cycle_risk_profile",
            "Risk",
            tooltip="Cycle the risk profile: conservative, balanced, aggressive",
            id="main.risk_profile",
        ),
        Binding(
            "p", "pick", "Pick", tooltip="Mark the selected row as a pick", id="main.pick",
            show=False,
        ),
        Binding(
            "P", "picks", "Picks", tooltip="Open picks, history and totals", id="main.picks",
            show=False,
        ),
        Binding(
            "w", "toggle_watch", "Watch",
            tooltip="Add or remove the selected symbol on the watchlist", id="main.watch",
            show=False,
        ),
        Binding(
            "W", "watch_filter", "Watchlist", tooltip="Show only the watchlist (again: all)",
            id="main.watch_filter", show=False,
        ),
        Binding(
            "e", "export_table", "Export", tooltip="Write the table as shown to a CSV file",
            id="main.export", show=False,
        ),
    ]

    snapshot: Reactive[EngineSnapshot | None] = reactive(None, init=False)
    """Latest engine snapshot; the table and status bar are bound to it."""
    now: Reactive[float] = reactive(0.0, init=False)
    """Wall clock (epoch seconds) at the latest tick, for the status bar."""

    def __init__(
        self,
        service: MarketService,
        ui: UiConfig,
        *,
        exchange: str,
        clock: Callable[[], float],
        export_dir: Path | None = None,
    ) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (snapshots, candles, and its desk for picks).
            ui: UI settings (refresh rate, chart defaults).
            exchange: Exchange id for the status bar before the first snapshot.
            clock: Wall clock in epoch seconds (injected for deterministic screenshots).
            export_dir: Where CSV exports go (default: ``exports/`` under the default user
                data dir, :func:`tui.export.default_export_dir`).
        """
        super().__init__()
        self._service = service
        self._ui = ui
        self._exchange = exchange
        self._clock = clock
        self._timer: Timer | None = None
        self._profile: str | None = None
        self.export_dir = export_dir or export.default_export_dir()
        """Where CSV exports go."""
        self.watch_only = False
        """True while ``W`` limits the table to the watchlist."""
        self.last_export: Path | None = None
        """The latest CSV written (for tests and the toast)."""

    def compose(self) -> ComposeResult:
        yield StatusBar(self._exchange, id="status").data_bind(MainScreen.snapshot, MainScreen.now)
        yield SignalTable(
            columns=self._ui.columns, oi_window=self._ui.oi_window, id="signals"
        ).data_bind(MainScreen.snapshot)
        yield Input(
            placeholder="filter: symbol text, long, short, neutral  (enter keeps, esc clears)",
            id="filter",
        )
        breadth = BreadthPane(id="breadth")
        # Hidden until asked for (b): at 80x24 the table needs every row.
        breadth.display = False
        yield breadth
        yield Footer()

    def on_mount(self) -> None:
        self._tick()
        self._timer = self.set_interval(1 / self._ui.refresh_hz, self._tick, name="snapshot")
        self.query_one(SignalTable).focus()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._tick()
            self._timer.resume()

    def _tick(self) -> None:
        """Pull the latest snapshot; an unchanged (same) object costs nothing downstream."""
        snapshot = self._service.snapshot()
        self.now = self._clock()
        if snapshot is not self.snapshot:
            self.snapshot = snapshot
            pane = self.query_one(BreadthPane)
            if pane.display:
                pane.update_snapshot(snapshot)

    def action_toggle_breadth(self) -> None:
        """Show or hide the market breadth pane."""
        pane = self.query_one(BreadthPane)
        pane.display = not pane.display
        if pane.display and self.snapshot is not None:
            pane.update_snapshot(self.snapshot)

    def action_pick_columns(self) -> None:
        """Open the column picker; the checked columns replace the shown ones."""
        table = self.table

        def chosen(keys: frozenset[str] | None) -> None:
            if keys is not None:
                table.show_columns(keys)
            table.focus()

        self.app.push_screen(ColumnPicker(table.column_keys), chosen)

    def action_cycle_risk_profile(self) -> None:
        """Switch to the next risk profile; every symbol is re-evaluated."""
        current = self._profile_in_use()
        name = RISK_PROFILE_NAMES[(RISK_PROFILE_NAMES.index(current) + 1) % len(RISK_PROFILE_NAMES)]
        self._service.set_risk_profile(name)
        self._profile = name
        self.notify(f"risk profile: {name} (signals re-evaluate on the next recompute)",
                    title="risk profile")

    def _profile_in_use(self) -> str:
        if self._profile is not None:
            return self._profile
        if self.snapshot is not None:
            for state in self.snapshot.symbols.values():
                if state.signal is not None and state.signal.risk_profile in RISK_PROFILE_NAMES:
                    return state.signal.risk_profile
        return "balanced"

    @property
    def table(self) -> SignalTable:
        """The signal table."""
        return self.query_one(SignalTable)

    # ---------------------------------------------------------------- filter

    def action_filter(self) -> None:
        """Show the filter input and focus it."""
        field = self.query_one("#filter", Input)
        self.add_class("-filtering")
        field.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        """Clear the filter and return to the table."""
        field = self.query_one("#filter", Input)
        field.value = ""
        self.watch_only = False
        self.table.filter_text = ""
        self.remove_class("-filtering")
        self.table.focus()
        self.refresh_bindings()

    def set_filter(self, text: str) -> None:
        """Apply ``text`` as the filter (shown in the input and the table title)."""
        field = self.query_one("#filter", Input)
        field.value = text
        self.table.filter_text = text
        self.set_class(bool(text), "-filtering")
        self.table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            # Only offered (and shown in the footer) while a filter is active.
            return self.has_class("-filtering") or bool(self.table.filter_text)
        return True

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value
        self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.remove_class("-filtering")
        self.table.focus()

    # ---------------------------------------------------------------- symbol view

    @on(SignalTable.SymbolChosen)
    def _symbol_chosen(self, event: SignalTable.SymbolChosen) -> None:
        self.open_symbol(event.symbol)

    def open_symbol(self, symbol: str) -> None:
        """Push the symbol view for ``symbol``."""
        self.app.push_screen(
            SymbolScreen(
                self._service,
                self._ui,
                symbol=symbol,
                exchange=self._exchange,
                clock=self._clock,
                export_dir=self.export_dir,
            )
        )

    # ---------------------------------------------------------------- picks and watchlist

    def action_pick(self) -> None:
        """Open the pick form for the selected row, prefilled from its trade plan."""
        open_pick_form(self, self._service, self.table.cursor_symbol)

    def action_picks(self) -> None:
        """Open the picks pane (open picks, history with totals)."""
        desk = self._service.desk()
        if desk is None:
            self.notify("picks need the database (signal history is off)", severity="warning",
                        title="picks unavailable")
            return
        self.app.push_screen(
            PicksScreen(self._service, desk, self._ui, export_dir=self.export_dir,
                        clock=self._clock)
        )

    async def action_toggle_watch(self) -> None:
        """Add or remove the selected symbol on the watchlist (stored before the toast)."""
        symbol = self.table.cursor_symbol
        desk = self._service.desk()
        if symbol is None or desk is None:
            self.notify("the watchlist needs the database and a selected row",
                        severity="warning")
            return
        watched = await desk.toggle_watch(symbol)
        # Mark the row now; the app's desk poll brings the same list within DESK_POLL_S.
        self.table.watchlist = frozenset(desk.watchlist())
        self.notify(f"{symbol} {'added to' if watched else 'removed from'} the watchlist",
                    title="watchlist")
        if self.watch_only:
            self._apply_watch_filter()

    def action_watch_filter(self) -> None:
        """Show only the watched symbols, or everything again."""
        if self.watch_only:
            self.watch_only = False
            self.action_clear_filter()
            return
        desk = self._service.desk()
        if desk is None or not desk.watchlist():
            self.notify("the watchlist is empty: press w on a row to watch it",
                        severity="warning")
            return
        self.watch_only = True
        self._apply_watch_filter()

    def _apply_watch_filter(self) -> None:
        desk = self._service.desk()
        watched = desk.watchlist() if desk is not None else ()
        if not watched:
            self.watch_only = False
            self.action_clear_filter()
            return
        # Whole symbols as filter fragments: the table shows exactly the watched rows.
        self.set_filter(" ".join(watched))

    async def action_export_table(self) -> None:
        """Write the table as shown (filtered, sorted rows) to a timestamped CSV."""
        snapshot = self.table.snapshot
        if snapshot is None:
            self.notify("nothing to export yet", severity="warning")
            return
        desk = self._service.desk()
        watched = desk.watchlist() if desk is not None else ()
        symbols = self.table.symbols_shown
        try:
            path = export.export_path(self.export_dir, "table", self._clock())
            rows = await asyncio.to_thread(
                export.write_table_csv, path, snapshot, symbols, watched
            )
        except OSError as exc:
            log.error("table export failed: %s", exc)
            self.notify(f"table export failed: {exc}", severity="error")
            return
        self.last_export = path
        self.notify(f"{rows} rows → {path}", title="exported")

    # ---------------------------------------------------------------- palette

    def palette_commands(self) -> Iterable[PaletteCommand]:
        """Sort, filter and open-symbol commands (see :mod:`tui.commands`)."""
        table = self.table
        for key in SORT_CYCLE:
            spec = next((c for c in table.all_columns if c.key == key), None)
            label = spec.label if spec is not None else key
            yield PaletteCommand(
                f"Sort by {label}", f"Sort the signal table by {label}", partial(table.sort_by, key)
            )
        yield PaletteCommand(
            "Filter longs", "Show only LONG signals", partial(self.set_filter, "long")
        )
        yield PaletteCommand(
            "Filter shorts", "Show only SHORT signals", partial(self.set_filter, "short")
        )
        yield PaletteCommand("Filter…", "Type a symbol or long/short/neutral", self.action_filter)
        yield PaletteCommand(
            "Columns…", "Choose the signal table's columns", self.action_pick_columns
        )
        if table.filter_text:
            yield PaletteCommand("Clear filter", "Show every symbol", self.action_clear_filter)
        symbols = sorted(self.snapshot.symbols) if self.snapshot is not None else []
        for symbol in symbols:
            yield PaletteCommand(
                f"Open {symbol}",
                f"Chart, trade plan and votes of {symbol}",
                partial(self.open_symbol, symbol),
                discover=False,
            )
