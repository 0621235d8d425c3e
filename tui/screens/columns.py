"""Column picker: a small checkbox list of the signal table's columns (``v`` on the main screen).

The choice applies to the running table only; ``[ui] columns`` in ``config.toml`` sets the
columns shown at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from tui.ui_config import TABLE_COLUMNS

COLUMN_TITLES: dict[str, str] = {
    "symbol": "symbol (always shown)",
    "last": "last price",
    "change": "24h % change",
    "signal": "signal",
    "score": "score",
    "conf": "confidence",
    "votes": "timeframe votes",
    "rr": "R:R",
    "track": "track record of the signal type",
    "fund": "funding rate",
    "fund_in": "time to funding",
    "oi": "open interest change",
    "spread": "spread (bps)",
    "imb": "book imbalance",
    "micro": "micro score",
    "age": "data age",
}
"""Picker line of each ``[ui] columns`` key."""


class ColumnPicker(ModalScreen[frozenset[str] | None]):
    """Check the columns to show; enter applies, escape cancels.

    Dismisses with the chosen ``[ui] columns`` keys (``symbol`` always included), or
    ``None`` when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="columns.cancel"),
        Binding("enter", "apply", "Apply", priority=True, id="columns.apply"),
    ]

    DEFAULT_CSS = """
    ColumnPicker {
        align: center middle;
        & > Vertical {
            width: 40;
            height: auto;
            max-height: 90%;
            border: round $primary;
            background: $panel;
        }
        & SelectionList { height: auto; max-height: 17; border: none; }
        & #columns-hint { color: $text-muted; padding: 0 1; }
    }
    """

    def __init__(self, shown: Iterable[str]) -> None:
        """Create the picker.

        Args:
            shown: Keys currently shown (checked at start).
        """
        super().__init__()
        self._shown = frozenset(shown)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "columns"
            yield SelectionList[str](
                *(
                    Selection(COLUMN_TITLES.get(key, key), key, key in self._shown,
                              disabled=key == "symbol")
                    for key in TABLE_COLUMNS
                ),
                id="columns-list",
            )
            yield Static("space toggles · enter applies · esc cancels", id="columns-hint")

    def on_mount(self) -> None:
        listing = self.query_one(SelectionList)
        listing.focus()
        # Start on the first column that can be toggled (symbol is fixed).
        listing.highlighted = 1

    @property
    def selected(self) -> frozenset[str]:
        """Keys checked right now (plus ``symbol``)."""
        listing: SelectionList[str] = self.query_one(SelectionList)
        return frozenset(listing.selected) | {"symbol"}

    def action_apply(self) -> None:
        """Close and show the checked columns."""
        self.dismiss(self.selected)

    def action_cancel(self) -> None:
        """Close without changing the columns."""
        self.dismiss(None)
