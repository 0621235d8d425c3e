"""The picks pane: open picks with live numbers, or the history of ended picks with totals.

Fed with :class:`engine.desk.DeskSnapshot` objects (``desk``); the same object again costs
nothing. Rows are keyed by pick id and rebuilt only when the snapshot's version changed.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.reactive import Reactive, reactive
from textual.widgets import DataTable, Static

from engine.desk import DeskSnapshot
from engine.models import Direction
from engine.picks import PickTotals, PickView
from storage.picks import Pick, PickStatus
from tui import formatting as fmt

OPEN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "#"), ("symbol", "symbol"), ("side", "side"), ("status", "status"),
    ("entry", "entry"), ("price", "price"), ("pnl", "PnL %"), ("r", "R"),
    ("sl", "to SL"), ("tp1", "to TP1"), ("tp2", "to TP2"), ("open", "open"),
    ("data", "data"),
)  # fmt: skip
"""Open-picks columns: key → header (distances in percent of the live price)."""

HISTORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "#"), ("symbol", "symbol"), ("side", "side"), ("status", "status"),
    ("entry", "entry"), ("close", "close"), ("r", "R"), ("pnl", "PnL %"),
    ("opened", "opened"), ("held", "held"), ("note", "note"),
)  # fmt: skip
"""History columns."""

STALE_MARK = "STALE"
"""Shown in the ``data`` column when the symbol's market data is stale."""


def format_r(value: float | None) -> str:
    """An R multiple with sign (``+1.52R``); ``"—"`` when unknown."""
    if value is None:
        return "—"
    return f"{round(value, 2) + 0.0:+.2f}R"


def format_totals(totals: PickTotals | None) -> str:
    """History totals: count, win rate, total and average R."""
    if totals is None or totals.count == 0:
        return "no ended picks yet"
    rate = f"{totals.win_rate * 100:.1f} %" if totals.win_rate is not None else "—"
    return (
        f"{totals.count} ended · win rate {rate} ({totals.wins} won / {totals.losses} lost)"
        f" · total {format_r(totals.total_r)} · average {format_r(totals.avg_r)}"
    )


def _signed(value: float | None, text: str) -> Text:
    if value is None or value == 0:
        return _num(text)
    return Text(text, style="green" if value > 0 else "red", justify="right")


def _num(text: str) -> Text:
    return Text(text, justify="right")


def _status(pick: Pick) -> Text:
    style = {
        PickStatus.TP1: "green", PickStatus.TP2: "bold green", PickStatus.SL: "red",
        PickStatus.EXPIRED: "dim", PickStatus.CLOSED: "",
    }.get(pick.status, "")
    return Text(pick.status.value, style=style)


def _side(pick: Pick) -> Text:
    return Text(pick.side.value, style="green" if pick.side is Direction.LONG else "red")


def open_cells(view: PickView) -> dict[str, Text]:
    """Cells of one open pick, by :data:`OPEN_COLUMNS` key."""
    pick = view.pick
    cells = {
        "id": _num(str(pick.id)),
        "symbol": Text(pick.symbol),
        "side": _side(pick),
        "status": _status(pick),
        "entry": _num(fmt.format_price(pick.entry)),
        "price": _num(fmt.format_price(view.price)),
        "pnl": _signed(view.pnl_pct, fmt.format_pct(view.pnl_pct)),
        "r": _signed(view.pnl_r, format_r(view.pnl_r)),
        "sl": _num(fmt.format_pct(view.to_sl_pct)),
        "tp1": _num(fmt.format_pct(view.to_tp1_pct)),
        "tp2": _num(fmt.format_pct(view.to_tp2_pct)),
        "open": _num(fmt.format_age(view.open_ms)),
        "data": Text(STALE_MARK, style="bold yellow") if view.stale else Text("live", style="dim"),
    }
    if view.stale:
        for key in ("price", "pnl", "r"):
            cells[key].stylize("dim")
    return cells


def history_cells(pick: Pick) -> dict[str, Text]:
    """Cells of one ended pick, by :data:`HISTORY_COLUMNS` key."""
    r = pick.realized_r
    pnl = r * pick.risk / pick.entry * 100.0 if r is not None else None
    held = (pick.closed_ms - pick.opened_ms) if pick.closed_ms is not None else None
    return {
        "id": _num(str(pick.id)),
        "symbol": Text(pick.symbol),
        "side": _side(pick),
        "status": _status(pick),
        "entry": _num(fmt.format_price(pick.entry)),
        "close": _num(fmt.format_price(pick.close_price)),
        "r": _signed(r, format_r(r)),
        "pnl": _signed(pnl, fmt.format_pct(pnl)),
        "opened": Text(fmt.format_utc(pick.opened_ms)),
        "held": _num(fmt.format_age(held)),
        "note": Text(pick.note[:24]),
    }


class PicksPane(Vertical):
    """Open picks (default) or the history view with totals (``history`` true)."""

    DEFAULT_CSS = """
    PicksPane { height: 1fr; }
    PicksPane > DataTable { height: 1fr; border: round $primary; }
    PicksPane > #picks-totals { height: auto; padding: 0 1; }
    PicksPane > #picks-history, PicksPane > #picks-totals { display: none; }
    PicksPane.-history > #picks-open { display: none; }
    PicksPane.-history > #picks-history, PicksPane.-history > #picks-totals { display: block; }
    """

    desk: Reactive[DeskSnapshot | None] = reactive(None, init=False, repaint=False)
    """The desk snapshot shown."""
    history: Reactive[bool] = reactive(False, init=False)
    """True: the history view (ended picks and totals) instead of the open picks."""

    EMPTY_OPEN: ClassVar[str] = "no open picks: press p on a row of the signal table"

    def compose(self) -> ComposeResult:
        open_table: DataTable[Text] = DataTable(id="picks-open", cursor_type="row")
        open_table.border_title = "OPEN PICKS"
        for key, label in OPEN_COLUMNS:
            open_table.add_column(label, key=key)
        yield open_table
        history: DataTable[Text] = DataTable(id="picks-history", cursor_type="row")
        history.border_title = "PICK HISTORY"
        for key, label in HISTORY_COLUMNS:
            history.add_column(label, key=key)
        yield history
        yield Static("", id="picks-totals")

    @property
    def table(self) -> DataTable[Text]:
        """The table of the current view."""
        name = "#picks-history" if self.history else "#picks-open"
        table: DataTable[Text] = self.query_one(name, DataTable)
        return table

    @property
    def selected_id(self) -> int | None:
        """Pick id under the cursor of the current view, ``None`` when empty."""
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        return int(str(row_key.value))

    def selected(self) -> Pick | None:
        """The pick under the cursor of the current view."""
        pick_id = self.selected_id
        snapshot = self.desk
        if pick_id is None or snapshot is None:
            return None
        for view in snapshot.open_picks:
            if view.pick.id == pick_id:
                return view.pick
        return next((p for p in snapshot.history if p.id == pick_id), None)

    def watch_desk(self) -> None:
        self._sync()

    def watch_history(self, history: bool) -> None:
        self.set_class(history, "-history")
        self.table.focus()

    def _sync(self) -> None:
        snapshot = self.desk
        if snapshot is None or not self.is_mounted:
            return
        with self.app.batch_update():
            self._fill(
                self.query_one("#picks-open", DataTable),
                [(v.pick.id, open_cells(v)) for v in snapshot.open_picks],
                [k for k, _ in OPEN_COLUMNS],
            )
            self._fill(
                self.query_one("#picks-history", DataTable),
                [(p.id, history_cells(p)) for p in snapshot.history],
                [k for k, _ in HISTORY_COLUMNS],
            )
            count = len(snapshot.open_picks)
            self.query_one("#picks-open", DataTable).border_title = (
                f"OPEN PICKS  ·  {count}" if count else f"OPEN PICKS  ·  {self.EMPTY_OPEN}"
            )
            self.query_one("#picks-history", DataTable).border_title = (
                f"PICK HISTORY  ·  {len(snapshot.history)}"
            )
            self.query_one("#picks-totals", Static).update(format_totals(snapshot.totals))

    @staticmethod
    def _fill(
        table: DataTable[Text], rows: list[tuple[int, dict[str, Text]]], keys: list[str]
    ) -> None:
        """Replace the rows in place, keeping the cursor on its pick when it is still there."""
        selected: str | None = None
        if table.row_count:
            row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
            selected = str(row_key.value)
        wanted = {str(pick_id): cells for pick_id, cells in rows}
        for row_key in list(table.rows):
            if str(row_key.value) not in wanted:
                table.remove_row(row_key)
        present = {str(k.value) for k in table.rows}
        for key, cells in wanted.items():
            if key in present:
                for column in keys:
                    table.update_cell(key, column, cells[column])
            else:
                table.add_row(*(cells[c] for c in keys), key=key)
        order = {key: index for index, key in enumerate(wanted)}
        table.sort("id", key=lambda cell: order[cell.plain])
        if selected is not None and selected in wanted:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
