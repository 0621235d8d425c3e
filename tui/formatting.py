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
    """

    palette: Palette = field(default_factory=Palette)
    decimals: dict[str, int] = field(default_factory=dict)

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
