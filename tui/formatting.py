"""Numbers → styled Rich ``Text`` cells for the signal table, symbol view and status bar.

The engine emits numbers and enums only; every colour decision lives here, taken from a
:class:`Palette` the widget builds from its CSS component classes (theme variables), so a
theme change recolours everything and mono terminals still read LONG / SHORT / glyphs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text

from engine.models import Direction, Signal, SymbolState, TimeframeSignal, TradePlan
from feeds.intervals import interval_ms

VOTE_THRESHOLD = 0.2
"""A timeframe or indicator vote above +0.2 counts as long, below -0.2 as short."""

GLYPH_LONG = "▲"
GLYPH_SHORT = "▼"
GLYPH_FLAT = "·"
GLYPH_WARMING = "○"
GLYPH_MISSING = "…"

GLYPH_LEGEND: tuple[tuple[str, str], ...] = (
    (GLYPH_LONG, f"timeframe votes long (vote > +{VOTE_THRESHOLD})"),
    (GLYPH_SHORT, f"timeframe votes short (vote < -{VOTE_THRESHOLD})"),
    (GLYPH_FLAT, f"timeframe is undecided (-{VOTE_THRESHOLD} ≤ vote ≤ +{VOTE_THRESHOLD})"),
    (GLYPH_WARMING, "timeframe is warming up (too few closed candles to vote)"),
    (GLYPH_MISSING, "no data yet for this symbol"),
)
"""Glyph → meaning, shown in the help screen."""


@dataclass(frozen=True)
class Palette:
    """Rich styles for meanings; widgets build one from their component classes.

    Attributes:
        long: Long side (buy, up moves).
        short: Short side (sell, down moves).
        stale: Data too old to trust (dimmed).
        warning: Needs attention (decode errors, reconnecting).
        muted: Secondary text (neutral, units).
    """

    long: Style = field(default_factory=lambda: Style(color="green"))
    short: Style = field(default_factory=lambda: Style(color="red"))
    stale: Style = field(default_factory=lambda: Style(dim=True))
    warning: Style = field(default_factory=lambda: Style(color="yellow"))
    muted: Style = field(default_factory=lambda: Style(dim=True))


DEFAULT_PALETTE = Palette()
"""Plain ANSI palette for code that has no widget (tests, headless rendering)."""


@dataclass
class CellContext:
    """What cell builders need besides the symbol state.

    Attributes:
        palette: Meaning styles.
        decimals: Price decimals seen per symbol. Sticky (never shrinks), so a price column
            keeps its decimals when the last digit happens to be 0 (``0.00800`` stays
            five decimals instead of flickering to ``0.008``).
        oi_window: Open-interest change window of the ``OI Δ`` column (``[ui] oi_window``;
            empty: the longest window covered).
        watched: Symbols on the watchlist (their symbol cell starts with
            :data:`GLYPH_WATCHED`).
    """

    palette: Palette = field(default_factory=Palette)
    decimals: dict[str, int] = field(default_factory=dict)
    oi_window: str = ""
    watched: frozenset[str] = frozenset()
    now_ms: int = 0
    """Engine clock of the snapshot being shown, ms UTC (0 before the first)."""

    def price_decimals(
        self, symbol: str, price: float | None, tick_size: float | None = None
    ) -> int | None:
        """Decimals to show for ``symbol``: the contract tick's when known, else the most
        seen in its prices (``None`` if unknown)."""
        if tick_size:
            return tick_decimals(tick_size)
        if price is None or math.isnan(price):
            return self.decimals.get(symbol)
        decimals = max(self.decimals.get(symbol, 0), price_decimals(price))
        self.decimals[symbol] = decimals
        return decimals


def tick_decimals(tick_size: float) -> int:
    """Decimals of a price tick (``0.001`` → 3, ``0.5`` → 1, ``10`` → 0), capped at 8."""
    return price_decimals(tick_size)


def significant_decimals(value: float, digits: int = 5) -> int:
    """Decimals that show ``value`` with ``digits`` significant digits (0..8)."""
    if value == 0 or math.isnan(value):
        return 0
    return min(8, max(0, digits - (math.floor(math.log10(abs(value))) + 1)))


def series_decimals(closes: Sequence[float], last: int = 50) -> int:
    """Tick precision of a symbol from its recorded closes: the most decimals among the last
    ``last`` closes (one close may end in 0; fifty rarely all do)."""
    return max((price_decimals(close) for close in closes[-last:]), default=0)


def price_decimals(price: float) -> int:
    """Decimals in the shortest text of ``price`` (exchange prices arrive as decimal strings,
    so this recovers the price's precision), capped at 8."""
    text = repr(float(price))
    if "e" in text or "E" in text:
        text = f"{price:.10f}".rstrip("0")
    _, _, fraction = text.partition(".")
    if fraction == "0":
        return 0
    return min(8, len(fraction))


def _side_style(value: float | None, palette: Palette, threshold: float = 0.0) -> Style:
    if value is None or math.isnan(value):
        return Style()
    if value > threshold:
        return palette.long
    if value < -threshold:
        return palette.short
    return Style()


def format_price(price: float | None, decimals: int | None = None) -> str:
    """A price with ``decimals`` decimals, or about six significant digits when not given
    (``29116.2``, ``1835.27``, ``0.0623500``).

    Args:
        price: Price in quote currency, or ``None``.
        decimals: Fixed number of decimals (e.g. from :meth:`CellContext.price_decimals`).

    Returns:
        The formatted price, ``"—"`` when unknown.
    """
    if price is None or math.isnan(price):
        return "—"
    if decimals is not None:
        return f"{price:.{decimals}f}"
    magnitude = abs(price)
    if magnitude >= 100_000:
        return f"{price:.0f}"
    if magnitude == 0:
        return "0"
    digits = math.floor(math.log10(magnitude)) + 1
    decimals = min(8, max(0, 6 - digits))
    return f"{price:.{decimals}f}"


def format_pct(value: float | None, decimals: int = 2) -> str:
    """A percentage with explicit sign (``+6.21%``); ``"—"`` when unknown."""
    if value is None or math.isnan(value):
        return "—"
    # round() first so a tiny negative prints as +0.00%, not -0.00%.
    return f"{round(value, decimals) + 0.0:+.{decimals}f}%"


def format_funding(rate: float | None) -> str:
    """A funding rate (fraction) as a percentage with 4 decimals (``+0.0100%``)."""
    if rate is None or math.isnan(rate):
        return "—"
    return f"{rate * 100:+.4f}%"


def format_age(age_ms: int | None) -> str:
    """A data age: ``0.4s``, ``12s``, ``3m``, ``2h``, ``5d``; ``"—"`` when unknown.

    Args:
        age_ms: Age in ms (negative ages, from clock skew, count as 0).
    """
    if age_ms is None:
        return "—"
    seconds = max(0, age_ms) / 1000
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h"
    return f"{seconds // 86400:.0f}d"


def format_count(value: float) -> str:
    """A rate or count in compact form: ``950``, ``18.2k``, ``1.3M``."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def format_reading(value: float) -> str:
    """An indicator reading in at most ~8 characters (``63.2``, ``28922``, ``0.1012``,
    ``6.27e+05``)."""
    if math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:.3g}"
    if magnitude >= 1000:
        return f"{value:.0f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.1f}"
    return f"{value:.4g}"


def format_clock(epoch_s: float) -> str:
    """Wall-clock time as UTC ``HH:MM:SSZ``."""
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch_s))


def format_utc(ms: int, with_date: bool = True) -> str:
    """A time in ms UTC as ``2023-08-03 12:25Z`` (or ``12:25Z``)."""
    fmt = "%Y-%m-%d %H:%MZ" if with_date else "%H:%MZ"
    return time.strftime(fmt, time.gmtime(ms / 1000))


def vote_glyph(timeframe: TimeframeSignal | None) -> str:
    """The table glyph of one timeframe vote (see :data:`GLYPH_LEGEND`)."""
    if timeframe is None:
        return GLYPH_MISSING
    if timeframe.vote is None:
        return GLYPH_WARMING
    if timeframe.vote > VOTE_THRESHOLD:
        return GLYPH_LONG
    if timeframe.vote < -VOTE_THRESHOLD:
        return GLYPH_SHORT
    return GLYPH_FLAT


def direction_label(direction: Direction) -> str:
    """Signal text: ``LONG`` / ``SHORT`` in capitals, ``neutral`` in lower case (no action)."""
    if direction is Direction.NEUTRAL:
        return "neutral"
    return "LONG" if direction is Direction.LONG else "SHORT"


def direction_style(direction: Direction, palette: Palette) -> Style:
    """Colour of a direction: long, short, or none for neutral."""
    if direction is Direction.LONG:
        return palette.long + Style(bold=True)
    if direction is Direction.SHORT:
        return palette.short + Style(bold=True)
    return Style()


def _finish(text: Text, stale: bool, ctx: CellContext) -> Text:
    if stale:
        text.stylize(ctx.palette.stale)
    return text


def cell_symbol(state: SymbolState, ctx: CellContext) -> Text:
    """Symbol cell; the table also uses its plain text as the row identity."""
    return _finish(Text(state.symbol, style=Style(bold=not state.stale)), state.stale, ctx)


def cell_price(state: SymbolState, ctx: CellContext) -> Text:
    """Last price cell, right-aligned, with the symbol's sticky decimals."""
    decimals = ctx.price_decimals(state.symbol, state.last_price, state.tick_size)
    text = Text(format_price(state.last_price, decimals), justify="right")
    return _finish(text, state.stale, ctx)


def cell_change(state: SymbolState, ctx: CellContext) -> Text:
    """24 h change cell, green up / red down."""
    style = _side_style(state.change_24h_pct, ctx.palette)
    text = Text(format_pct(state.change_24h_pct), style=style, justify="right")
    return _finish(text, state.stale, ctx)


def cell_signal(state: SymbolState, ctx: CellContext) -> Text:
    """Signal cell: LONG / SHORT / neutral, or ``…`` before the first signal."""
    if state.signal is None:
        return _finish(Text(GLYPH_MISSING, style=ctx.palette.muted), state.stale, ctx)
    signal = state.signal
    style = direction_style(signal.direction, ctx.palette)
    if signal.direction is Direction.NEUTRAL:
        style = ctx.palette.muted
    return _finish(Text(direction_label(signal.direction), style=style), state.stale, ctx)


def cell_score(state: SymbolState, ctx: CellContext) -> Text:
    """Score cell (0-100, 50 neutral), coloured by the side it leans to once decided."""
    if state.signal is None:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    signal = state.signal
    style = Style()
    if signal.direction is not Direction.NEUTRAL:
        style = direction_style(signal.direction, ctx.palette)
    return _finish(Text(f"{signal.score:.0f}", style=style, justify="right"), state.stale, ctx)


def cell_confidence(state: SymbolState, ctx: CellContext) -> Text:
    """Confidence cell (0-1, two decimals)."""
    if state.signal is None:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    return _finish(Text(f"{state.signal.confidence:.2f}", justify="right"), state.stale, ctx)


def cell_vote(state: SymbolState, timeframe: str, ctx: CellContext) -> Text:
    """One timeframe's vote glyph."""
    tf_signal = timeframe_of(state.signal, timeframe)
    glyph = vote_glyph(tf_signal)
    style = ctx.palette.muted
    if glyph == GLYPH_LONG:
        style = ctx.palette.long
    elif glyph == GLYPH_SHORT:
        style = ctx.palette.short
    elif glyph == GLYPH_FLAT:
        style = Style()
    return _finish(Text(glyph, style=style, justify="center"), state.stale, ctx)


def cell_risk_reward(state: SymbolState, ctx: CellContext) -> Text:
    """R:R cell of the trade plan, ``—`` without a plan."""
    plan = state.signal.plan if state.signal is not None else None
    value = "—" if plan is None else f"{plan.risk_reward:.2f}"
    return _finish(Text(value, justify="right"), state.stale, ctx)


def cell_funding(state: SymbolState, ctx: CellContext) -> Text:
    """Funding rate cell (percent); unusually large rates get the warning style."""
    text = Text(format_funding(state.funding_rate), justify="right")
    if state.funding_rate is not None and abs(state.funding_rate) >= 0.0005:
        # 0.05% per 8 h is five times the 0.01% baseline: worth a glance.
        text.stylize(ctx.palette.warning)
    return _finish(text, state.stale, ctx)


def cell_age(state: SymbolState, ctx: CellContext) -> Text:
    """Data age cell; stale ages are flagged with the warning style as well as dimmed."""
    text = Text(format_age(state.age_ms), justify="right")
    if state.stale:
        text.stylize(ctx.palette.warning)
    return _finish(text, state.stale, ctx)


def timeframe_of(signal: Signal | None, timeframe: str) -> TimeframeSignal | None:
    """The vote of ``timeframe`` inside ``signal``, or ``None``."""
    if signal is None:
        return None
    for tf_signal in signal.timeframes:
        if tf_signal.timeframe == timeframe:
            return tf_signal
    return None


def pct_distance(price: float, reference: float) -> float:
    """Signed distance of ``price`` from ``reference`` in percent."""
    if reference == 0:
        return math.nan
    return (price / reference - 1.0) * 100.0


def plan_rows(plan: TradePlan) -> list[tuple[str, float, float, str]]:
    """Trade-plan lines: (label, price, % from entry, R multiple text).

    The R multiple is the distance from entry in units of the risk (entry to stop loss), so
    the stop is ``-1.00R`` and TP1 is the plan's R:R.
    """
    risk = abs(plan.entry - plan.stop_loss)
    side = 1.0 if plan.take_profit_1 > plan.entry else -1.0

    def multiple(price: float) -> str:
        if risk == 0:
            return "—"
        return f"{side * (price - plan.entry) / risk:+.2f}R"

    return [
        ("entry", plan.entry, 0.0, ""),
        ("SL", plan.stop_loss, pct_distance(plan.stop_loss, plan.entry), multiple(plan.stop_loss)),
        (
            "TP1",
            plan.take_profit_1,
            pct_distance(plan.take_profit_1, plan.entry),
            multiple(plan.take_profit_1),
        ),
        (
            "TP2",
            plan.take_profit_2,
            pct_distance(plan.take_profit_2, plan.entry),
            multiple(plan.take_profit_2),
        ),
    ]


# ------------------------------------------------------------------ microstructure

GLYPH_RESYNC = "↻"
"""Marks a row whose local order book is resyncing (its book numbers are not current)."""

GLYPH_BOOK_LEGEND = (GLYPH_RESYNC, "order book resyncing: spread, imbalance and micro wait")
"""The book-state marker and its meaning, for the help screen."""

GLYPH_WATCHED = "★"
"""Put before the symbol of a row on the watchlist (no space: ``★1000PEPEUSDT`` still fits
the symbol column)."""

GLYPH_WATCH_LEGEND = (GLYPH_WATCHED, "on the watchlist (w toggles it, W shows only the watchlist)")
"""The watchlist marker and its meaning, for the help screen."""


def engine_now(state: SymbolState, ctx: CellContext | None = None) -> int:
    """Engine clock (ms UTC) at the snapshot a state came from: the context's snapshot time
    when set, else ``last_update + age_ms``."""
    if ctx is not None and ctx.now_ms:
        return ctx.now_ms
    return state.last_update + state.age_ms


def format_bps(value: float | None, decimals: int = 1, signed: bool = False) -> str:
    """Basis points (``0.8``, ``+12.3``); ``"—"`` when unknown.

    Args:
        value: Value in basis points (1 bp = 0.01 %).
        decimals: Decimals shown.
        signed: Show an explicit sign (premiums); spreads are never negative.
    """
    if value is None or math.isnan(value):
        return "—"
    value = round(value, decimals) + 0.0  # no "-0.0"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def format_countdown(ms: int | None) -> str:
    """Time left as ``7h59m``, ``12m05s``, ``42s``; ``"—"`` when unknown (negative → ``0s``).

    Args:
        ms: Milliseconds left (e.g. next funding time minus the engine clock).
    """
    if ms is None:
        return "—"
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_notional(value: float | None, signed: bool = False) -> str:
    """Quote-currency amounts in compact form: ``950``, ``12.4k``, ``3.21M``, ``1.05B``.

    Args:
        value: Amount in quote currency (USDT).
        signed: Show an explicit sign (CVD, deltas).
    """
    if value is None or math.isnan(value):
        return "—"
    magnitude = abs(value)
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{sign}{magnitude / scale:.{2 if magnitude < 10 * scale else 1}f}{suffix}"
    return f"{sign}{magnitude:.0f}"


def format_size(value: float) -> str:
    """A level size in base units with about four significant digits (``0.512``, ``12.35``,
    ``1,234``, ``1.23M``)."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude == 0 or value.is_integer():
        # Contracts traded in whole units (SUSHI, DOGE) show no decimals.
        return f"{value:.0f}"
    return f"{value:.{significant_decimals(value, 4)}f}"


def longest_oi_window(oi_change: dict[str, float], wanted: str = "") -> str | None:
    """The open-interest change window to show: ``wanted`` if present, else the longest one.

    Args:
        oi_change: Window code (``5m``, ``15m``, ``1h``) → change, fraction.
        wanted: Preferred window (``[ui] oi_window``); empty picks the longest.

    Returns:
        The window code, ``None`` when no window is covered yet.
    """
    if wanted and wanted in oi_change:
        return wanted
    if not oi_change:
        return None

    def span(window: str) -> int:
        try:
            return interval_ms(window)
        except ValueError:
            return 0

    return max(oi_change, key=span)


def cell_funding_in(state: SymbolState, ctx: CellContext) -> Text:
    """Time to the next funding (``3h12m``), counted on the engine clock; ``—`` if unknown."""
    if not state.next_funding_time:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    left = state.next_funding_time - engine_now(state, ctx)
    return _finish(Text(format_countdown(left), justify="right"), state.stale, ctx)


def cell_oi_change(state: SymbolState, ctx: CellContext) -> Text:
    """Open-interest change over :attr:`CellContext.oi_window` (or the longest window
    covered), percent, coloured by sign."""
    window = longest_oi_window(state.oi_change, ctx.oi_window)
    if window is None:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    change = state.oi_change[window] * 100
    text = Text(format_pct(change, 1), style=_side_style(change, ctx.palette), justify="right")
    return _finish(text, state.stale, ctx)


def cell_spread(state: SymbolState, ctx: CellContext) -> Text:
    """Spread in basis points; wide spreads (≥ :data:`WIDE_SPREAD_BPS`) get the warning style."""
    text = Text(format_bps(state.spread_bps), justify="right")
    if state.spread_bps is not None and state.spread_bps >= WIDE_SPREAD_BPS:
        text.stylize(ctx.palette.warning)
    return _finish(text, state.stale, ctx)


WIDE_SPREAD_BPS = 10.0
"""A spread of 10 bp or more is worth a glance (liquid perps quote well under 1 bp)."""


def _book_waiting(state: SymbolState) -> bool:
    return state.book is not None and state.book.state == "resyncing"


def cell_imbalance(state: SymbolState, ctx: CellContext) -> Text:
    """Book imbalance in [-1, 1] (``+0.31``: more bids), coloured by side; muted while the
    book resyncs."""
    if state.imbalance is None:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    style = ctx.palette.muted if _book_waiting(state) else _side_style(
        state.imbalance, ctx.palette, VOTE_THRESHOLD
    )
    text = Text(f"{round(state.imbalance, 2) + 0.0:+.2f}", style=style, justify="right")
    return _finish(text, state.stale, ctx)


def cell_micro(state: SymbolState, ctx: CellContext) -> Text:
    """Microstructure score 0-100; an active ``MICRO_LONG``/``MICRO_SHORT`` signal adds its
    arrow and colour (``71▲``)."""
    if state.micro_score is None:
        return _finish(Text("—", justify="right"), state.stale, ctx)
    text = Text(f"{state.micro_score:.0f}", justify="right")
    signal = state.micro_signal
    if signal is not None and signal.direction is not Direction.NEUTRAL:
        long = signal.direction is Direction.LONG
        text.append(GLYPH_LONG if long else GLYPH_SHORT)
        text.stylize(direction_style(signal.direction, ctx.palette))
    elif _book_waiting(state):
        text.stylize(ctx.palette.muted)
    return _finish(text, state.stale, ctx)


def cell_symbol_marked(state: SymbolState, ctx: CellContext) -> Text:
    """Symbol cell with the watchlist marker before it (:data:`GLYPH_WATCHED`, when the
    symbol is in ``ctx.watched``) and the book-state marker after it (:data:`GLYPH_RESYNC`)
    while its book resyncs; :func:`symbol_of_cell` reads the symbol back."""
    text = cell_symbol(state, ctx)
    if state.symbol in ctx.watched:
        # A plain Text carrying spans only: a base style would colour the symbol too.
        marked = Text()
        marked.append(GLYPH_WATCHED, style=ctx.palette.warning)
        if state.stale:
            marked.stylize(ctx.palette.stale)
        marked.append_text(text)
        text = marked
    if _book_waiting(state):
        text.append(f" {GLYPH_RESYNC}", style=ctx.palette.warning)
    return text


def symbol_of_cell(cell: Text) -> str:
    """The symbol of a :func:`cell_symbol_marked` cell, without its markers."""
    return cell.plain.removeprefix(GLYPH_WATCHED).split(" ", 1)[0]


def imbalance_bar(value: float, width: int, palette: Palette) -> Text:
    """A centred bar for a value in [-1, 1]: bids (positive) fill right of the centre in the
    long style, asks (negative) fill left in the short style.

    Args:
        value: Imbalance in [-1, 1] (clipped).
        width: Cells, including the centre mark (odd widths centre exactly).
        palette: Meaning styles.
    """
    half = max(1, (width - 1) // 2)
    value = max(-1.0, min(1.0, value))
    filled = round(abs(value) * half)
    left = " " * half
    right = " " * half
    text = Text()
    if value < 0:
        left = " " * (half - filled)
        text.append(left)
        text.append("█" * filled, style=palette.short)
    else:
        text.append(left)
    text.append("│", style=palette.muted)
    if value > 0:
        text.append("█" * filled, style=palette.long)
        text.append(" " * (half - filled))
    else:
        text.append(right)
    return text


_EIGHTHS = " ▏▎▍▌▋▊▉"
"""Left eighth blocks, index = eighths filled (0 = none)."""


def size_bar(size: float, largest: float, width: int) -> str:
    """A left-aligned bar of ``size`` scaled to ``largest`` in ``width`` cells, with eighth
    blocks for the remainder (``███▍``); empty when ``largest`` is 0."""
    if largest <= 0 or width <= 0:
        return ""
    eighths = round(max(0.0, min(1.0, size / largest)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else _EIGHTHS[rest])
