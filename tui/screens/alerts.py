"""Alert log (``a``): every alert the desk raised, newest first, and where it went.

One row per :class:`storage.alerts.AlertLogEntry` of :attr:`engine.desk.DeskSnapshot.alerts`:
time (UTC and local), rule, symbol, the alert's headline, and the channels that delivered,
failed or are still sending it. Above the table, each channel's health (``ok``, ``failing:
reason``, ``disabled: reason``). The screen polls the desk's frozen snapshot and rebuilds the
table only when its version changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from engine.alerts.dispatcher import ChannelHealth
from engine.alerts.message import title
from engine.desk import DeskSnapshot
from engine.service import MarketService
from storage.alerts import AlertLogEntry

REFRESH_S = 0.5
"""How often the screen looks for new alerts and channel changes."""

NO_DESK = "No database: alerts are not stored or sent (the desk starts with signal history)."
"""Shown when the service has no desk."""

LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "time UTC"),
    ("local", "local"),
    ("rule", "rule"),
    ("symbol", "symbol"),
    ("alert", "alert"),
    ("delivered", "delivered"),
    ("failed", "failed / pending"),
)
"""(key, header) of the log table's columns."""


def local_time(time_ms: int) -> str:
    """``time_ms`` (ms UTC) as ``HH:MM:SS TZ`` in the system's local zone."""
    local = datetime.fromtimestamp(time_ms / 1000, tz=UTC).astimezone()
    return local.strftime("%H:%M:%S %Z").rstrip()


def log_row(entry: AlertLogEntry) -> tuple[str, ...]:
    """The cells of one log row, plain text, in :data:`LOG_COLUMNS` order.

    The alert's own ``time_local`` is used when its payload decodes (the zone it fired in);
    failed channels carry their reason: ``webhook (connection refused)``.
    """
    when = datetime.fromtimestamp(entry.time_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    alert = entry.alert
    local = alert.time_local.split(" ", 1)[-1] if alert is not None else local_time(entry.time_ms)
    headline = title(alert) if alert is not None else entry.message.split("\n", 1)[0]
    failed = [
        f"{name} ({entry.errors[name]})" if entry.errors.get(name) else name
        for name in entry.failed
    ]
    failed += [f"{name} pending" for name in entry.pending]
    return (
        when,
        local,
        entry.rule,
        entry.symbol,
        headline,
        ", ".join(entry.delivered) or "—",
        ", ".join(failed) or "—",
    )


def unique_entries(entries: Iterable[AlertLogEntry]) -> list[AlertLogEntry]:
    """``entries`` without repeated row ids (first kept, order kept).

    The desk's snapshot can briefly list a row twice when two log refreshes interleave; the
    table keys rows by id, so a repeat would be an error rather than a display glitch.
    """
    seen: set[int] = set()
    out: list[AlertLogEntry] = []
    for entry in entries:
        if entry.id not in seen:
            seen.add(entry.id)
            out.append(entry)
    return out


def channels_line(channels: dict[str, ChannelHealth]) -> Text:
    """One line of channel health: ``in_app ok (3 sent) · webhook failing: refused``."""
    line = Text("channels: ")
    if not channels:
        line.append("none")
        return line
    for index, (name, health) in enumerate(channels.items()):
        if index:
            line.append(" · ", style="dim")
        style = {"ok": "green", "failing": "bold red", "disabled": "dim"}.get(health.state, "")
        line.append(f"{name} {health.label}", style=style)
        if health.state != "disabled":
            line.append(f" ({health.delivered} sent, {health.failed} failed)", style="dim")
    return line


class AlertLogScreen(Screen[None]):
    """The alert log and the alert channels' health."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace,a", "back", "Back", id="alerts.back"),
    ]

    DEFAULT_CSS = """
    AlertLogScreen {
        & > #alert-channels { height: auto; padding: 0 1; background: $panel; }
        & > #alert-note { height: auto; padding: 0 1; color: $text-muted; }
        & > DataTable { height: 1fr; }
    }
    """

    def __init__(self, service: MarketService) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (only ``desk()`` is used).
        """
        super().__init__()
        self._service = service
        self._version = -1
        self._timer: Timer | None = None
        self.rows: list[tuple[str, ...]] = []
        """The rows shown, in display order (newest first)."""

    def compose(self) -> ComposeResult:
        yield Static(id="alert-channels")
        yield Static(id="alert-note")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="alert-log")
        for key, label in LOG_COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = "alert log"
        self.refresh_log()
        self._timer = self.set_interval(REFRESH_S, self.refresh_log, name="alert log")
        self.query_one(DataTable).focus()

    def refresh_log(self) -> None:
        """Show the desk's latest alert log (no work when its snapshot did not change)."""
        desk = self._service.desk()
        note = self.query_one("#alert-note", Static)
        if desk is None:
            note.update(NO_DESK)
            self.query_one("#alert-channels", Static).update(channels_line({}))
            return
        snapshot = desk.snapshot()
        if snapshot.version == self._version:
            return
        self._version = snapshot.version
        self._show(snapshot)

    def _show(self, snapshot: DeskSnapshot) -> None:
        self.query_one("#alert-channels", Static).update(channels_line(snapshot.channels))
        entries = unique_entries(snapshot.alerts)
        count = len(entries)
        self.query_one("#alert-note", Static).update(
            f"{count} alert{'s' if count != 1 else ''} (newest first)" if count else "no alerts yet"
        )
        rows = [log_row(entry) for entry in entries]
        if rows == self.rows:
            return
        self.rows = rows
        table: DataTable[str] = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for entry, row in zip(entries, rows, strict=True):
            table.add_row(*row, key=str(entry.id))
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()
