"""The signal table: one row per symbol, updated by diff from engine snapshots.

Rows are keyed by symbol (row keys, not widget ids: ``1000PEPEUSDT`` is not a valid id).
Each snapshot is applied as a diff inside ``app.batch_update()``: ``remove_row`` for symbols
gone (or filtered out), ``add_row`` for new ones, ``update_cell`` only for cells whose text
changed; the rows are re-sorted only when the order actually changed, and the cursor stays on
its symbol (at the top row it stays at the top, so the best-ranked row stays selected).
Pattern: dolphie ``dolphie/Panels/Processlist.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import Reactive, reactive
from textual.widgets import DataTable

from engine.history import TrackRecord
from engine.models import Direction, EngineSnapshot, SymbolState
from engine.track_record import TrackStats
from tui import formatting as fmt
from tui.formatting import CellContext, Palette
from tui.ui_config import TABLE_COLUMNS

CellFn = Callable[[SymbolState, CellContext], Text]
SortFn = Callable[[SymbolState], "float | str | None"]


@dataclass(frozen=True)
class ColumnSpec:
    """One table column.

    Attributes:
        key: Column key (also the sort id).
        label: Header text.
        width: Content width in cells (fixed, so live values never shift the layout).
        drop_rank: Columns with a higher rank are dropped first on narrow terminals; 0 = never.
        cell: Builds the cell from a symbol state.
        sort: Sort value (``None`` sorts last), or ``None`` if the column is not sortable.
        descending: Default sort direction for this column.
        meaning: One-line explanation for the help screen.
    """

    key: str
    label: str
    width: int
    drop_rank: int
    cell: CellFn
    sort: SortFn | None
    descending: bool
    meaning: str


def _score(state: SymbolState) -> float | None:
    return state.signal.score if state.signal is not None else None


def _confidence(state: SymbolState) -> float | None:
    return state.signal.confidence if state.signal is not None else None


def _shown_confidence(state: SymbolState) -> float | None:
    if state.signal is None:
        return None
    calibrated = state.signal.calibrated_confidence
    return calibrated if calibrated is not None else state.signal.confidence


UNCALIBRATED_MARK = "~"
"""Prefix of a confidence that no fitted calibration model has turned into a probability."""


def cell_confidence(state: SymbolState, ctx: CellContext) -> Text:
    """Confidence cell: the calibrated probability (0-1) when a model is fitted, else the raw
    indicator agreement marked ``~0.62`` and dimmed, so it is never read as a probability."""
    signal = state.signal
    if signal is None:
        text = Text("—", justify="right")
    elif signal.calibrated_confidence is not None:
        text = Text(f"{signal.calibrated_confidence:.2f}", justify="right")
    else:
        text = Text(
            f"{UNCALIBRATED_MARK}{signal.confidence:.2f}", style=ctx.palette.muted, justify="right"
        )
    if state.stale:
        text.stylize(ctx.palette.stale)
    return text


def format_track(stats: TrackStats | None) -> str:
    """A track record in a table cell: ``hit 58% ±9 n=31``.

    The ± is half the width of the Wilson 95 % interval, in percentage points, so a small
    sample looks as uncertain as it is (:func:`engine.track_record.wilson_interval`).

    Args:
        stats: Resolved-signal stats of one group, or ``None`` (shown as ``—``).
    """
    if stats is None or stats.count == 0:
        return "—"
    half = (stats.hit_high - stats.hit_low) / 2 * 100
    return f"hit {stats.hit_rate * 100:.0f}% ±{half:.0f} n={stats.count}"


def _risk_reward(state: SymbolState) -> float | None:
    if state.signal is None or state.signal.plan is None:
        return None
    return state.signal.plan.risk_reward


_DIRECTION_RANK = {Direction.LONG: 2.0, Direction.NEUTRAL: 1.0, Direction.SHORT: 0.0}


def _direction(state: SymbolState) -> float | None:
    # LONG first, then neutral, then SHORT; ties broken by score inside _order.
    return _DIRECTION_RANK[state.signal.direction] if state.signal is not None else None


def _age(state: SymbolState) -> float:
    return float(state.age_ms)


BASE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        key="symbol", label="symbol", width=13, drop_rank=0, cell=fmt.cell_symbol_marked,
        sort=lambda s: s.symbol, descending=False,
        meaning=f"venue symbol (USDT-margined perpetual); {fmt.GLYPH_WATCHED} before it = on the "
        f"watchlist; {fmt.GLYPH_RESYNC} after it = its order book is resyncing",
    ),
    ColumnSpec(
        key="last", label="last", width=10, drop_rank=2, cell=fmt.cell_price,
        sort=lambda s: s.last_price, descending=True, meaning="last price, USDT",
    ),
    ColumnSpec(
        key="change", label="24h %", width=7, drop_rank=3, cell=fmt.cell_change,
        sort=lambda s: s.change_24h_pct, descending=True,
        meaning="24 h price change, percent",
    ),
    ColumnSpec(
        key="signal", label="signal", width=7, drop_rank=0, cell=fmt.cell_signal,
        sort=_direction, descending=True,
        meaning="fused multi-timeframe signal: LONG, SHORT or neutral",
    ),
    ColumnSpec(
        key="score", label="score", width=5, drop_rank=0, cell=fmt.cell_score,
        sort=_score, descending=True,
        meaning="0-100; 50 is neutral, higher leans long, lower leans short",
    ),
    ColumnSpec(
        key="conf", label="conf", width=5, drop_rank=4, cell=cell_confidence,
        sort=_shown_confidence, descending=True,
        meaning="confidence 0-1: calibrated probability of TP1 before the stop when a model "
        f"is fitted; {UNCALIBRATED_MARK}0.62 (dim) = uncalibrated indicator agreement",
    ),
)  # fmt: skip
"""Columns before the per-timeframe vote columns (drop_rank: higher goes first when narrow)."""

TRACK_KEY = "track"
"""Key of the track-record column."""
TRACK_VISIBILITY = TRACK_KEY
"""``[ui] columns`` entry that shows the track column."""
TRACK_MEANING = (
    "track record of the row's signal type in this run's data source: hit rate (TP1 before "
    "the stop), ± half its Wilson 95 % interval, n resolved signals"
)


def track_column(lookup: Callable[[SymbolState], TrackStats | None]) -> ColumnSpec:
    """The track-record column (``hit 58% ±9 n=31``).

    Args:
        lookup: The stats of a row's signal type (``None`` when none resolved yet).
    """

    def cell(state: SymbolState, ctx: CellContext) -> Text:
        stats = lookup(state)
        text = Text(format_track(stats), justify="right")
        if stats is None or state.stale:
            text.stylize(ctx.palette.stale if state.stale else ctx.palette.muted)
        return text

    def sort(state: SymbolState) -> float | None:
        stats = lookup(state)
        # Rank by the interval's lower bound: a small lucky sample does not sort first.
        return stats.hit_low if stats is not None and stats.count else None

    return ColumnSpec(
        key=TRACK_KEY, label="track", width=16, drop_rank=6, cell=cell, sort=sort,
        descending=True, meaning=TRACK_MEANING,
    )  # fmt: skip

TAIL_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        key="rr", label="R:R", width=4, drop_rank=5, cell=fmt.cell_risk_reward,
        sort=_risk_reward, descending=True,
        meaning="reward to TP1 / risk to stop loss of the trade plan",
    ),
    ColumnSpec(
        key="fund", label="fund", width=8, drop_rank=6, cell=fmt.cell_funding,
        sort=lambda s: s.funding_rate, descending=True,
        meaning="funding rate per interval, percent (positive: longs pay shorts)",
    ),
    ColumnSpec(
        key="fund_in", label="fund in", width=7, drop_rank=11, cell=fmt.cell_funding_in,
        sort=lambda s: s.next_funding_time or None, descending=False,
        meaning="time to the next funding, on the engine clock",
    ),
    ColumnSpec(
        key="oi", label="OI Δ", width=7, drop_rank=8, cell=fmt.cell_oi_change,
        sort=None, descending=True,  # replaced by oi_column(window) in build_columns
        meaning="open interest change over [ui] oi_window (else the longest covered), percent",
    ),
    ColumnSpec(
        key="spread", label="spread", width=6, drop_rank=9, cell=fmt.cell_spread,
        sort=lambda s: s.spread_bps, descending=False,
        meaning="bid/ask spread in basis points (order book, else book ticker)",
    ),
    ColumnSpec(
        key="imb", label="imb", width=5, drop_rank=10, cell=fmt.cell_imbalance,
        sort=lambda s: s.imbalance, descending=True,
        meaning="order book imbalance in [-1, 1]; positive = more resting bids",
    ),
    ColumnSpec(
        key="micro", label="micro", width=5, drop_rank=7, cell=fmt.cell_micro,
        sort=lambda s: s.micro_score, descending=True,
        meaning=f"microstructure score 0-100 (50 neutral); {fmt.GLYPH_LONG}/{fmt.GLYPH_SHORT} = "
        "active MICRO_LONG/SHORT scalp signal",
    ),
    ColumnSpec(
        key="age", label="age", width=5, drop_rank=0, cell=fmt.cell_age,
        sort=_age, descending=False,
        meaning="time since the last market data for the symbol; stale rows are dimmed",
    ),
)  # fmt: skip
"""Columns after the vote columns (drop ranks 7+: the microstructure columns go first)."""

SORT_CYCLE: tuple[str, ...] = (
    "score", "change", "conf", "rr", "fund", "micro", "oi", "spread", "age", "symbol",
)  # fmt: skip
"""Columns ``s`` cycles through, in order."""

VOTE_PREFIX = "tf:"

VOTES_KEY = "votes"
"""``[ui] columns`` entry standing for every per-timeframe vote column."""

LIVE_COLUMNS = frozenset({"age", "fund_in"})
"""Columns that move with the clock alone: refreshed on every snapshot, not only when the
row's data changed."""

FLASH_S = 1.0
"""How long a row flashes after a new spike (price, volume, sweep, liquidation)."""


def visibility_key(column: ColumnSpec) -> str:
    """The ``[ui] columns`` entry controlling ``column`` (``votes`` for vote columns)."""
    if column.key == TRACK_KEY:
        return TRACK_VISIBILITY
    return VOTES_KEY if column.key.startswith(VOTE_PREFIX) else column.key


def oi_column(window: str) -> ColumnSpec:
    """The open-interest change column, sorting by the same window it shows.

    Args:
        window: Preferred window (``[ui] oi_window``); rows without it use their longest.
    """

    def sort(state: SymbolState) -> float | None:
        chosen = fmt.longest_oi_window(state.oi_change, window)
        return state.oi_change[chosen] if chosen is not None else None

    base = next(c for c in TAIL_COLUMNS if c.key == "oi")
    label = f"OI {window}" if window and len(window) <= 3 else base.label
    return ColumnSpec(
        key=base.key, label=label, width=base.width, drop_rank=base.drop_rank,
        cell=base.cell, sort=sort, descending=base.descending, meaning=base.meaning,
    )  # fmt: skip


def vote_column(timeframe: str) -> ColumnSpec:
    """The vote-glyph column of one timeframe."""

    def cell(state: SymbolState, ctx: CellContext) -> Text:
        return fmt.cell_vote(state, timeframe, ctx)

    def sort(state: SymbolState) -> float | None:
        tf_signal = fmt.timeframe_of(state.signal, timeframe)
        return tf_signal.vote if tf_signal is not None else None

    return ColumnSpec(
        key=f"{VOTE_PREFIX}{timeframe}",
        label=timeframe,
        width=max(3, len(timeframe)),
        drop_rank=1,
        cell=cell,
        sort=sort,
        descending=True,
        meaning=f"{timeframe} timeframe vote",
    )


def build_columns(
    timeframes: Iterable[str],
    oi_window: str = "",
    track: Callable[[SymbolState], TrackStats | None] | None = None,
) -> tuple[ColumnSpec, ...]:
    """All columns for the configured timeframes, in display order.

    Args:
        timeframes: Configured timeframes (one vote column each).
        oi_window: Open-interest change window of the ``oi`` column (see :func:`oi_column`).
        track: Track-record lookup of the ``track`` column (after ``R:R``); no column
            when ``None``.
    """
    tail: list[ColumnSpec] = []
    for column in TAIL_COLUMNS:
        tail.append(oi_column(oi_window) if column.key == "oi" else column)
        if column.key == "rr" and track is not None:
            tail.append(track_column(track))
    return BASE_COLUMNS + tuple(vote_column(tf) for tf in timeframes) + tuple(tail)


def fit_columns(
    columns: tuple[ColumnSpec, ...], width: int, padding: int = 1
) -> tuple[ColumnSpec, ...]:
    """Drop the least important columns until the rest fit in ``width`` cells.

    Args:
        columns: Candidate columns in display order.
        width: Available width in cells (0 or less keeps every column).
        padding: Cell padding on each side of a column.

    Returns:
        The kept columns, in display order.
    """
    if width <= 0:
        return columns
    kept = list(columns)

    def total() -> int:
        return sum(column.width + 2 * padding for column in kept)

    for rank in sorted({c.drop_rank for c in columns if c.drop_rank > 0}, reverse=True):
        if total() <= width:
            break
        # Columns sharing a rank (the votes) go one at a time, the rightmost first.
        for column in reversed([c for c in kept if c.drop_rank == rank]):
            if total() <= width:
                break
            kept.remove(column)
    return tuple(kept)


def parse_filter(text: str) -> tuple[frozenset[Direction], tuple[str, ...]]:
    """Split filter text into direction tokens and symbol substrings.

    ``long``, ``short`` and ``neutral`` select directions (any of them); every other token
    is a case-insensitive substring of the symbol (any of them).

    Returns:
        (directions, upper-cased symbol fragments); empty means "no constraint".
    """
    directions: set[Direction] = set()
    fragments: list[str] = []
    for token in text.lower().split():
        if token in ("long", "longs"):
            directions.add(Direction.LONG)
        elif token in ("short", "shorts"):
            directions.add(Direction.SHORT)
        elif token in ("neutral", "flat"):
            directions.add(Direction.NEUTRAL)
        else:
            fragments.append(token.upper())
    return frozenset(directions), tuple(fragments)


def matches_filter(
    state: SymbolState, directions: frozenset[Direction], fragments: tuple[str, ...]
) -> bool:
    """True when ``state`` passes a filter from :func:`parse_filter`."""
    if directions and (state.signal is None or state.signal.direction not in directions):
        return False
    return not fragments or any(fragment in state.symbol for fragment in fragments)


def _same(a: Text, b: Text) -> bool:
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


def _missing(value: float | str | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class _Row:
    """What a row showed last time, to diff against."""

    basis: tuple[Any, ...]
    cells: dict[str, Text]


class SignalTable(DataTable[Text]):
    """Sortable, filterable signal table fed with :class:`EngineSnapshot` objects."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="table.open"),
        Binding("down,j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("s", "cycle_sort", "Sort", tooltip="Cycle the sort column", id="table.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="table.reverse_sort"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = DataTable.COMPONENT_CLASSES | {
        "signal-table--long",
        "signal-table--short",
        "signal-table--stale",
        "signal-table--warning",
        "signal-table--muted",
        "signal-table--flash",
    }
    """Meaning styles for cells: long, short, stale rows, warnings, muted text, and the
    style a row flashes in after a spike."""

    DEFAULT_CSS = """
    SignalTable {
        height: 1fr;
        & > .signal-table--long { color: $text-success; }
        & > .signal-table--short { color: $text-error; }
        & > .signal-table--stale { text-style: dim; }
        & > .signal-table--warning { color: $text-warning; }
        & > .signal-table--muted { text-style: dim; }
        & > .signal-table--flash { text-style: reverse bold; }
    }
    """

    snapshot: Reactive[EngineSnapshot | None] = reactive(None, init=False, repaint=False)
    """The snapshot shown; the screen assigns each new one (same object → no work)."""
    sort_column: Reactive[str] = reactive("score", init=False, repaint=False)
    """Key of the column the rows are sorted by."""
    sort_descending: Reactive[bool] = reactive(True, init=False, repaint=False)
    """Sort direction (score, changes and rates default to highest first)."""
    filter_text: Reactive[str] = reactive("", init=False, repaint=False)
    """Filter: symbol fragments and/or ``long`` / ``short`` / ``neutral`` tokens."""
    column_keys: Reactive[frozenset[str]] = reactive(
        frozenset(TABLE_COLUMNS), init=False, repaint=False
    )
    """``[ui] columns`` keys the user wants shown (``symbol`` always is); narrow terminals
    drop more (:func:`fit_columns`)."""

    track_record: Reactive[TrackRecord | None] = reactive(None, init=False, repaint=False)
    """Track record behind the ``track`` column; follows the app's ``track_record``."""
    watchlist: Reactive[frozenset[str]] = reactive(frozenset(), init=False, repaint=False)
    """Watched symbols, marked :data:`tui.formatting.GLYPH_WATCHED` in the symbol cell;
    follows the app's ``watchlist`` (the desk's, see :class:`engine.desk.DeskSnapshot`)."""

    class SymbolChosen(Message):
        """The user pressed enter (or clicked) on a row."""

        def __init__(self, symbol: str) -> None:
            self.symbol = symbol
            """Venue symbol of the row."""
            super().__init__()

    def __init__(
        self,
        *,
        columns: Iterable[str] = TABLE_COLUMNS,
        oi_window: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create an empty table; columns appear with the first snapshot.

        Args:
            columns: ``[ui] columns`` keys to show (:data:`tui.ui_config.TABLE_COLUMNS`).
            oi_window: Open-interest change window of the ``oi`` column.
            id: Widget id.
            classes: CSS classes.
        """
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.set_reactive(SignalTable.column_keys, frozenset(columns) | {"symbol"})
        self._oi_window = oi_window
        self._spikes: dict[str, str] = {}
        self._flashing: set[str] = set()
        self._all_columns: tuple[ColumnSpec, ...] = ()
        self._columns: tuple[ColumnSpec, ...] = ()
        self._timeframes: tuple[str, ...] | None = None
        self._has_track = False
        self._rows: dict[str, _Row] = {}
        self._states: dict[str, SymbolState] = {}
        self._ctx = CellContext(oi_window=oi_window)
        self._fit_width = 0

    # ----------------------------------------------------------------- public API

    @property
    def columns_shown(self) -> tuple[str, ...]:
        """Keys of the columns currently shown, in display order."""
        return tuple(column.key for column in self._columns)

    @property
    def all_columns(self) -> tuple[ColumnSpec, ...]:
        """Every column for the configured timeframes (shown or not)."""
        return self._all_columns

    @property
    def symbols_shown(self) -> list[str]:
        """Symbols of the rows, in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def cursor_symbol(self) -> str | None:
        """Symbol under the cursor, ``None`` when the table is empty."""
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return str(row_key.value)

    @property
    def total_symbols(self) -> int:
        """Symbols in the latest snapshot (before filtering)."""
        return 0 if self.snapshot is None else len(self.snapshot.symbols)

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort by ``column`` (a column key); ``descending`` defaults to the column's own.

        Raises:
            ValueError: if the column is unknown or not sortable.
        """
        spec = self._spec(column)
        if spec is None or spec.sort is None:
            raise ValueError(f"cannot sort by {column!r}")
        # Set both without watchers, then re-sort once.
        self.set_reactive(
            SignalTable.sort_descending, spec.descending if descending is None else descending
        )
        self.set_reactive(SignalTable.sort_column, column)
        self._sync()

    def sort_label(self) -> str:
        """Human label of the current sort, e.g. ``score ↓``."""
        spec = self._spec(self.sort_column)
        label = spec.label if spec is not None else self.sort_column
        return f"{label} {'↓' if self.sort_descending else '↑'}"

    # ---------------------------------------------------------------- actions

    def action_cycle_sort(self) -> None:
        """Sort by the next column of :data:`SORT_CYCLE`."""
        try:
            index = SORT_CYCLE.index(self.sort_column)
        except ValueError:
            index = -1
        self.sort_by(SORT_CYCLE[(index + 1) % len(SORT_CYCLE)])

    def action_reverse_sort(self) -> None:
        """Flip the sort direction."""
        self.sort_descending = not self.sort_descending

    # ---------------------------------------------------------------- watchers

    def watch_snapshot(self, snapshot: EngineSnapshot | None) -> None:
        self._sync()

    def watch_sort_column(self) -> None:
        self._sync()

    def watch_sort_descending(self) -> None:
        self._sync()

    def watch_filter_text(self) -> None:
        self._sync()

    def watch_column_keys(self) -> None:
        self._sync()

    @property
    def flashing(self) -> frozenset[str]:
        """Symbols whose rows are flashing right now (a spike arrived < :data:`FLASH_S` ago)."""
        return frozenset(self._flashing)

    def show_columns(self, keys: Iterable[str]) -> None:
        """Show exactly these ``[ui] columns`` keys (``symbol`` is always shown).

        Raises:
            ValueError: naming unknown keys and listing the allowed ones.
        """
        wanted = frozenset(keys)
        unknown = sorted(wanted - set(TABLE_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(TABLE_COLUMNS)}"
            )
        self.column_keys = wanted | {"symbol"}

    # ---------------------------------------------------------------- events

    def on_mount(self) -> None:
        self._ctx.palette = self._read_palette()
        if hasattr(self.app, "track_record"):
            # The App polls the service for the track record; every table follows it.
            self.watch(self.app, "track_record", self._app_track_record_changed)
        if hasattr(self.app, "watchlist"):
            # The App polls the desk's watchlist; the main screen also sets ours on `w`.
            self.watch(self.app, "watchlist", self._app_watchlist_changed)

    def _app_track_record_changed(self, record: TrackRecord | None) -> None:
        self.track_record = record

    def _app_watchlist_changed(self, symbols: Iterable[str]) -> None:
        self.watchlist = frozenset(symbols)

    def watch_watchlist(self) -> None:
        self._ctx.watched = self.watchlist
        self._sync()

    def watch_track_record(self) -> None:
        self._sync()

    def track_stats(self, state: SymbolState) -> TrackStats | None:
        """Track record of ``state``'s signal type (``None``: no signal or no history)."""
        record = self.track_record
        if record is None or state.signal is None:
            return None
        return record.by_type.get(state.signal.signal_type.value)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            # Component styles settle after this call; compare palettes once they have.
            self.call_after_refresh(self._refresh_palette)

    def _refresh_palette(self) -> None:
        palette = self._read_palette()
        if palette != self._ctx.palette:
            # Theme changed: every cell carries old colours, so rebuild them all (in place).
            self._ctx.palette = palette
            for row in self._rows.values():
                row.basis = ()
            self._sync()

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._fit_width:
            self._fit_width = event.size.width
            self._sync()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.SymbolChosen(str(event.row_key.value)))

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        spec = self._spec(key)
        if spec is None or spec.sort is None:
            return
        if key == self.sort_column:
            self.sort_descending = not self.sort_descending
        else:
            self.sort_by(key)

    # ---------------------------------------------------------------- internals

    def _spec(self, key: str) -> ColumnSpec | None:
        for column in self._all_columns or BASE_COLUMNS + TAIL_COLUMNS:
            if column.key == key:
                return column
        return None

    def _read_palette(self) -> Palette:
        def style(name: str, default: Style) -> Style:
            return self.get_component_rich_style(name, partial=True, default=default)

        base = fmt.DEFAULT_PALETTE
        return Palette(
            long=style("signal-table--long", base.long),
            short=style("signal-table--short", base.short),
            stale=style("signal-table--stale", base.stale),
            warning=style("signal-table--warning", base.warning),
            muted=style("signal-table--muted", base.muted),
        )

    def _flash_style(self) -> Style:
        return self.get_component_rich_style("signal-table--flash", partial=True)

    def _layout_columns(self, timeframes: tuple[str, ...]) -> bool:
        """(Re)build the header when the timeframes or the width tier change.

        Only happens on configuration change or terminal resize, never per snapshot; the
        caller re-adds the rows and puts the cursor back on its symbol.

        Returns:
            True when the columns were rebuilt (all rows are gone).
        """
        # Without signal history (no database) there is no track column at all.
        has_track = self.track_record is not None
        if timeframes != self._timeframes or has_track != self._has_track:
            self._timeframes = timeframes
            self._has_track = has_track
            self._all_columns = build_columns(
                timeframes, self._oi_window, self.track_stats if has_track else None
            )
        available = self.scrollable_content_region.width or self.size.width
        wanted = tuple(c for c in self._all_columns if visibility_key(c) in self.column_keys)
        # Leave room for the vertical scrollbar so the last column is never clipped.
        columns = fit_columns(wanted, available - 2, self.cell_padding)
        if columns == self._columns:
            return False
        self.clear(columns=True)
        self._rows.clear()
        self._columns = columns
        for column in columns:
            label = Text(column.label, justify=_justify(column))
            self.add_column(label, width=column.width, key=column.key)
        return True

    def _sync(self) -> None:
        snapshot = self.snapshot
        if snapshot is None or not self.is_mounted:
            return
        cursor_symbol = self.cursor_symbol
        anchored_top = self.cursor_row == 0
        with self.app.batch_update():
            rebuilt = self._layout_columns(snapshot.timeframes)
            directions, fragments = parse_filter(self.filter_text)
            wanted = {
                symbol: state
                for symbol, state in snapshot.symbols.items()
                if matches_filter(state, directions, fragments)
            }
            self._states = wanted
            self._ctx.now_ms = snapshot.time
            self._start_flashes(snapshot, rebuilt)
            gone = [s for s in self._rows if s not in wanted]
            for symbol in gone:
                self.remove_row(symbol)
                del self._rows[symbol]
            added = [s for s in wanted if s not in self._rows]
            for symbol, state in wanted.items():
                self._apply_row(symbol, state)
            reordered = self._apply_order()
            if rebuilt or gone or added or reordered:
                if anchored_top or cursor_symbol not in self._rows:
                    self.move_cursor(row=0, animate=False)
                elif cursor_symbol is not None:
                    self.move_cursor(row=self.get_row_index(cursor_symbol), animate=False)
            self._update_title()

    def _start_flashes(self, snapshot: EngineSnapshot, rebuilt: bool) -> None:
        """Flash rows whose spike kind just changed to a non-empty one.

        Rows seen for the first time (start, re-layout) do not flash: only a spike that
        arrives while the user watches is news.
        """
        fresh = not self._spikes or rebuilt
        for symbol, state in snapshot.symbols.items():
            before = self._spikes.get(symbol)
            self._spikes[symbol] = state.spike
            if fresh or before is None or not state.spike or state.spike == before:
                continue
            if symbol not in self._flashing:
                self._flashing.add(symbol)
                self.set_timer(FLASH_S, partial(self._end_flash, symbol), name="row flash")
        for symbol in [s for s in self._spikes if s not in snapshot.symbols]:
            del self._spikes[symbol]

    def _end_flash(self, symbol: str) -> None:
        self._flashing.discard(symbol)
        row = self._rows.get(symbol)
        if row is not None:
            row.basis = ()  # rebuild its cells without the flash
        self._sync()

    def _cell(self, column: ColumnSpec, state: SymbolState, flashing: bool) -> Text:
        cell = column.cell(state, self._ctx)
        if flashing:
            # The base style, not a span, so the whole padded cell flashes.
            cell.style = Style.combine([_as_style(cell.style), self._flash_style()])
        return cell

    def _apply_row(self, symbol: str, state: SymbolState) -> None:
        flashing = symbol in self._flashing
        basis = (
            state.last_price,
            state.change_24h_pct,
            state.funding_rate,
            state.signal,
            state.stale,
            state.next_funding_time,
            state.oi_change,
            state.spread_bps,
            state.imbalance,
            state.micro_score,
            state.micro_signal,
            state.book,
            flashing,
            self.track_stats(state),
            symbol in self._ctx.watched,
        )
        previous = self._rows.get(symbol)
        if previous is None:
            cells = {c.key: self._cell(c, state, flashing) for c in self._columns}
            self.add_row(*cells.values(), key=symbol)
            self._rows[symbol] = _Row(basis, cells)
            return
        if previous.basis == basis:
            # Only the clock moves between updates: touch just the age and countdown cells.
            columns: Iterable[ColumnSpec] = [c for c in self._columns if c.key in LIVE_COLUMNS]
        else:
            columns = self._columns
            previous.basis = basis
        for column in columns:
            cell = self._cell(column, state, flashing)
            if not _same(cell, previous.cells[column.key]):
                previous.cells[column.key] = cell
                self.update_cell(symbol, column.key, cell)

    def _order(self) -> list[str]:
        """Symbols in display order: sort value in the chosen direction, ties by symbol,
        rows without a value (no signal, no funding yet) last in either direction."""
        spec = self._spec(self.sort_column) or self._spec("score")
        assert spec is not None and spec.sort is not None
        present: list[tuple[Any, str]] = []
        missing: list[str] = []
        for symbol in sorted(self._states):
            value = spec.sort(self._states[symbol])
            if _missing(value):
                missing.append(symbol)
            else:
                present.append((value, symbol))
        # list.sort is stable in both directions, so ties keep symbol order.
        present.sort(key=lambda item: item[0], reverse=self.sort_descending)
        return [symbol for _, symbol in present] + missing

    def _apply_order(self) -> bool:
        """Re-sort the rows if (and only if) their order changed; True if it did."""
        order = self._order()
        if order == self.symbols_shown:
            return False
        rank = {symbol: index for index, symbol in enumerate(order)}
        # The symbol cell may carry markers around the symbol: rank by the symbol.
        self.sort("symbol", key=lambda cell: rank[fmt.symbol_of_cell(cell)])
        return True

    def _update_title(self) -> None:
        shown = len(self._rows)
        total = self.total_symbols
        parts = [f"SIGNALS  sort {self.sort_label()}"]
        if self.filter_text.strip():
            parts.append(f"filter “{self.filter_text.strip()}”")
        parts.append(f"{shown}/{total}" if shown != total else f"{total} symbols")
        self.border_title = "  ·  ".join(parts)


def _as_style(style: str | Style) -> Style:
    return Style.parse(style) if isinstance(style, str) else style


def _justify(column: ColumnSpec) -> Any:
    if column.key in ("symbol", "signal"):
        return "left"
    if column.key.startswith(VOTE_PREFIX):
        return "center"
    return "right"
