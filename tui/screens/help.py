"""Help: the active keys (from the bindings, with their rebindable ids), glyphs and columns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui import formatting as fmt
from tui.widgets.orderbook import GLYPH_WALL
from tui.widgets.signal_table import BASE_COLUMNS, TAIL_COLUMNS, TRACK_MEANING


@dataclass(frozen=True)
class KeyHelp:
    """One line of the keys table.

    Attributes:
        keys: Keys as displayed (``j, ↓``).
        description: What the keys do.
        binding_id: Id to rebind it under ``[ui] keymap`` in ``config.toml`` (empty if none).
    """

    keys: str
    description: str
    binding_id: str


def keys_from_bindings(pairs: Iterable[tuple[Binding, str]]) -> list[KeyHelp]:
    """Merge active bindings into one line per action.

    Args:
        pairs: (binding, key as displayed) for every active key, e.g. from
            ``screen.active_bindings`` and ``app.get_key_display``.

    Returns:
        One :class:`KeyHelp` per (id or action), in first-seen order; bindings without a
        description are skipped.
    """
    merged: dict[str, tuple[list[str], str, str]] = {}
    for binding, display in pairs:
        if not binding.description:
            continue
        identity = binding.id or binding.action
        keys, _, _ = merged.setdefault(identity, ([], binding.description, binding.id or ""))
        if display not in keys:
            keys.append(display)
    lines = [
        KeyHelp(", ".join(keys), description, binding_id)
        for keys, description, binding_id in merged.values()
    ]
    # perpscope's own (rebindable) keys first, Textual's built-in ones after.
    return [line for line in lines if line.binding_id] + [
        line for line in lines if not line.binding_id
    ]


class HelpScreen(ModalScreen[None]):
    """Keys for the screen underneath, the glyph legend and the table's columns."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > VerticalScroll {
            width: 90%;
            max-width: 110;
            height: 90%;
            border: round $primary;
            background: $panel;
            padding: 0 1;
        }
    }
    """

    def __init__(self, keys: list[KeyHelp], vote_timeframes: tuple[str, ...] = ()) -> None:
        """Create the help screen.

        Args:
            keys: Active keys of the screen the help was opened from.
            vote_timeframes: Configured timeframes (the vote columns).
        """
        super().__init__()
        self.keys = keys
        """The key lines shown (one per action)."""
        self._timeframes = vote_timeframes

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "perpscope help  (esc closes)"
            yield Static(self._render_help(), id="help-text")

    def _render_help(self) -> RenderableType:
        bold = Style(bold=True)
        keys = Table(box=None, padding=(0, 2), show_header=True, header_style=bold)
        keys.add_column(Text("keys"), no_wrap=True)
        keys.add_column(Text("action"))
        # Text, not str: "[ui]" would be read as console markup.
        keys.add_column(Text("id for config.toml [ui] keymap"), style=Style(dim=True), no_wrap=True)
        for line in self.keys:
            keys.add_row(line.keys, line.description, line.binding_id)

        glyphs = Table(box=None, padding=(0, 2), show_header=False)
        glyphs.add_column(no_wrap=True)
        glyphs.add_column()
        for glyph, meaning in fmt.GLYPH_LEGEND:
            glyphs.add_row(glyph, meaning)
        glyphs.add_row(
            "LONG / SHORT",
            "fused signal; neutral = no trade; colours only repeat what the text says",
        )
        glyphs.add_row(
            "dimmed row",
            "stale: no market data for longer than the stale limit; it gets no new signals",
        )
        glyphs.add_row(
            "flashing row",
            "a new spike on the symbol: price, volume, sweep or liquidation",
        )
        glyphs.add_row(*fmt.GLYPH_WATCH_LEGEND)
        glyphs.add_row(*fmt.GLYPH_BOOK_LEGEND)
        glyphs.add_row(GLYPH_WALL, "order book ladder: a wall (a level much larger than its peers)")

        columns = Table(box=None, padding=(0, 2), show_header=False)
        columns.add_column(no_wrap=True)
        columns.add_column()
        for spec in BASE_COLUMNS:
            columns.add_row(spec.label, spec.meaning)
        timeframes = " ".join(self._timeframes) or "5m 15m 1h 4h"
        columns.add_row(timeframes, "one vote glyph per configured timeframe")
        for spec in TAIL_COLUMNS:
            columns.add_row(spec.label, spec.meaning)
            if spec.key == "rr":
                columns.add_row("track", f"{TRACK_MEANING} (shown when signals are stored)")

        filters = Text(
            "Filter (/): words match symbols (btc eth); long, short, neutral keep those "
            "signals; enter keeps the filter, esc clears it. Click a column header to sort "
            "by it (again to reverse). Columns (v) picks the columns shown; set the start-up "
            "ones with columns = [...] in config.toml [ui] (narrow terminals drop the least "
            "important first). In the symbol view, o swaps the charts for the order book."
        )
        desk = Text(
            "Picks and alerts: p marks a pick from the row's trade plan, P opens the picks "
            "pane, w toggles the watchlist and W shows only it, e exports the table to CSV. "
            "a opens the alert log (time UTC and local, rule, delivered and failed channels), "
            "A the alert rules (n new, N new price alert, e edit, space enable/disable, "
            "x delete), R the track record (hit rate with its Wilson 95 % interval, avg R, "
            "expectancy), ctrl+s saves an SVG screenshot to the data directory. A failing "
            "alert channel shows in the status bar. Confidence marked ~ is uncalibrated "
            "(indicator agreement, not a measured probability)."
        )
        return Group(
            Text("Keys", style=bold),
            keys,
            Text(""),
            Text("Glyphs and colours", style=bold),
            glyphs,
            Text(""),
            Text("Signal table columns", style=bold),
            columns,
            Text(""),
            filters,
            Text(""),
            desk,
        )

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss()
