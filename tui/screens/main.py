"""Main screen: status bar, signal table, filter input, footer, and the snapshot timer.

The screen pulls one frozen :class:`EngineSnapshot` per frame (``set_interval`` at
``ui.refresh_hz``) and assigns it to its ``snapshot`` reactive; the table and the status bar
are data-bound to it. The timer pauses while another screen (symbol view, help) is on top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
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
from tui.commands import PaletteCommand
from tui.screens.columns import ColumnPicker
from tui.screens.symbol import SymbolScreen
from tui.ui_config import UiConfig
from tui.widgets.breadth import BreadthPane
from tui.widgets.signal_table import SORT_CYCLE, SignalTable
from tui.widgets.status_bar import StatusBar


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
    ) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (only ``snapshot()`` and ``candles()`` are used).
            ui: UI settings (refresh rate, chart defaults).
            exchange: Exchange id for the status bar before the first snapshot.
            clock: Wall clock in epoch seconds (injected for deterministic screenshots).
        """
        super().__init__()
        self._service = service
        self._ui = ui
        self._exchange = exchange
        self._clock = clock
        self._timer: Timer | None = None
        self._profile: str | None = None

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
            )
        )

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
