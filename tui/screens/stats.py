"""Track record (``R``): how the emitted signals turned out, by signal type and by symbol.

Numbers come from :meth:`engine.service.MarketService.track_record` (resolved outcomes of this
run's data source, :mod:`engine.history`): count, hit rate (TP1 or TP2 before the stop) with
its Wilson 95 % interval so small samples look small, average realised R, the conservative
expectancy (at the interval's lower hit rate, :class:`engine.track_record.TrackStats`),
average bars to the outcome, and the trades still open.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.history import TrackRecord
from engine.service import MarketService
from engine.track_record import TrackStats

REFRESH_S = 1.0
"""How often the screen looks for a new track record."""

NO_HISTORY = "No database: signals are not stored, so there is no track record."
"""Shown when the service keeps no signal history."""

STATS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "group"),
    ("n", "n"),
    ("hit", "hit %"),
    ("wilson", "Wilson 95 %"),
    ("avg_r", "avg R"),
    ("exp", "expect. R"),
    ("bars", "avg bars"),
)
"""(key, header) of both tables' columns."""


def stats_row(stats: TrackStats) -> tuple[str, ...]:
    """One table row of ``stats``, in :data:`STATS_COLUMNS` order.

    Example: ``("STRONG_LONG", "31", "58%", "41–74%", "+0.21", "-0.05", "7.3")``.
    """
    return (
        stats.key,
        str(stats.count),
        f"{stats.hit_rate * 100:.0f}%",
        f"{stats.hit_low * 100:.0f}–{stats.hit_high * 100:.0f}%",
        f"{stats.avg_r:+.2f}",
        f"{stats.expectancy:+.2f}",
        f"{stats.avg_bars:.1f}",
    )


def summary(record: TrackRecord) -> str:
    """The line above the tables: source, overall hit rate and interval, open trades."""
    overall = record.overall
    parts = [f"source {record.source}"]
    if overall is not None and overall.count:
        low, high = overall.hit_low * 100, overall.hit_high * 100
        parts.append(
            f"all: n={overall.count} hit {overall.hit_rate * 100:.0f}% "
            f"(Wilson 95 % {low:.0f}–{high:.0f}%) avg R {overall.avg_r:+.2f} "
            f"expectancy {overall.expectancy:+.2f} R"
        )
    else:
        parts.append("no resolved signals yet")
    parts.append(f"open trades {record.open_trades}")
    return "  ·  ".join(parts)


class StatsScreen(Screen[None]):
    """Track record of the signals by type and by symbol."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace,R", "back", "Back", id="stats.back"),
    ]

    DEFAULT_CSS = """
    StatsScreen {
        & > #stats-summary { height: auto; padding: 0 1; background: $panel; }
        & > #stats-note { height: auto; padding: 0 1; color: $text-muted; }
        & > Horizontal { height: 1fr; }
        & Vertical { width: 1fr; }
        & DataTable { height: 1fr; border: round $panel-lighten-2; }
    }
    """

    def __init__(self, service: MarketService) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (only ``track_record()`` is used).
        """
        super().__init__()
        self._service = service
        self._record: TrackRecord | None = None
        self._shown = False

    def compose(self) -> ComposeResult:
        yield Static(id="stats-summary")
        yield Static(
            "hit = TP1 or TP2 before the stop; a wide Wilson interval means too few signals "
            "to trust the hit rate; expectancy is taken at the interval's lower hit rate",
            id="stats-note",
        )
        with Horizontal():
            for table_id, title in (("by-type", "by signal type"), ("by-symbol", "by symbol")):
                with Vertical():
                    table: DataTable[str] = DataTable(
                        cursor_type="row", zebra_stripes=True, id=table_id
                    )
                    table.border_title = title
                    for key, label in STATS_COLUMNS:
                        table.add_column(label, key=key)
                    yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = "track record"
        self.refresh_stats()
        self.set_interval(REFRESH_S, self.refresh_stats, name="track record")
        self.query_one("#by-type", DataTable).focus()

    def refresh_stats(self) -> None:
        """Show the latest track record (no work when it did not change)."""
        record = self._service.track_record()
        if self._shown and record is self._record:
            return
        self._record, self._shown = record, True
        summary_widget = self.query_one("#stats-summary", Static)
        if record is None:
            summary_widget.update(NO_HISTORY)
            return
        summary_widget.update(summary(record))
        self._fill("#by-type", record.by_type)
        self._fill("#by-symbol", record.by_symbol)

    def _fill(self, selector: str, groups: dict[str, TrackStats]) -> None:
        table: DataTable[str] = self.query_one(selector, DataTable)
        table.clear()
        # Most signals first: the groups with the most evidence lead.
        for stats in sorted(groups.values(), key=lambda s: (-s.count, s.key)):
            table.add_row(*stats_row(stats), key=stats.key)

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()
