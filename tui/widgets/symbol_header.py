"""One-line header of the symbol view: price, signal, funding, freshness, timeframe tabs."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import Reactive, reactive
from textual.widget import Widget

from engine.models import SymbolState
from tui import formatting as fmt


class SymbolHeader(Widget):
    """``BTCUSDT 29116.2 -0.81% LONG 72 conf 0.64 fund +0.0100% age 0.4s  tf 5m [1h] 4h``."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "symbol-header--long",
        "symbol-header--short",
        "symbol-header--muted",
        "symbol-header--warning",
        "symbol-header--tab",
        "symbol-header--tab-active",
    }
    """Meaning styles plus the timeframe tabs (inactive, active)."""

    DEFAULT_CSS = """
    SymbolHeader {
        height: 1;
        & > .symbol-header--long { color: $text-success; }
        & > .symbol-header--short { color: $text-error; }
        & > .symbol-header--muted { text-style: dim; }
        & > .symbol-header--warning { color: $text-warning; text-style: bold; }
        & > .symbol-header--tab { text-style: dim; }
        & > .symbol-header--tab-active { color: $text; background: $primary 40%; text-style: bold; }
    }
    """

    state: Reactive[SymbolState | None] = reactive(None)
    """The symbol's latest state."""
    timeframe: Reactive[str] = reactive("")
    """Timeframe shown in the chart."""
    timeframes: Reactive[tuple[str, ...]] = reactive(())
    """Configured timeframes, smallest first."""
    decimals: Reactive[int | None] = reactive(None)
    """Price decimals of the symbol (from its recent candles); ``None`` = from the price."""

    def __init__(self, symbol: str, *, id: str | None = None) -> None:
        """Create the header for ``symbol``."""
        super().__init__(id=id)
        self.symbol = symbol
        """Venue symbol."""

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"symbol-header--{name}", partial=True)

    def _palette(self) -> fmt.Palette:
        return fmt.Palette(
            long=self._style("long"),
            short=self._style("short"),
            muted=self._style("muted"),
            warning=self._style("warning"),
            stale=Style(dim=True),
        )

    def _summary(self, palette: fmt.Palette, drop: int) -> Text:
        """Symbol, price, change, signal; ``drop`` removes fund, then conf, then age."""
        text = Text(f" {self.symbol} ", style=Style(bold=True))
        state = self.state
        if state is None:
            text.append(" unknown symbol (not in the current universe)", style=palette.warning)
            return text
        decimals = (
            self.decimals
            if self.decimals is not None
            else fmt.price_decimals(state.last_price)
            if state.last_price is not None
            else None
        )
        text.append(fmt.format_price(state.last_price, decimals), style=Style(bold=True))
        text.append(" ")
        text.append_text(fmt.cell_change(state, fmt.CellContext(palette=palette)))
        text.append("  ")
        text.append_text(fmt.cell_signal(state, fmt.CellContext(palette=palette)))
        if state.signal is not None:
            text.append(" ")
            text.append_text(fmt.cell_score(state, fmt.CellContext(palette=palette)))
            if drop < 2:
                calibrated = state.signal.calibrated_confidence
                if calibrated is not None:
                    text.append(f" conf {calibrated:.2f}")
                else:
                    # Raw indicator agreement, not a measured probability: say so.
                    text.append(f" conf {state.signal.confidence:.2f} uncalibrated")
        if drop < 1:
            text.append(f"  fund {fmt.format_funding(state.funding_rate)}", style=palette.muted)
        if drop < 3 or state.stale:
            text.append(
                f"  age {fmt.format_age(state.age_ms)}",
                style=palette.warning if state.stale else palette.muted,
            )
        if state.stale:
            text.append("  STALE", style=palette.warning)
        return text

    def _tabs(self, palette: fmt.Palette, compact: bool) -> Text:
        tabs = Text("  tf ", style=palette.muted)
        if compact:
            tabs.append(f" {self.timeframe} ", style=self._style("tab-active"))
            tabs.append(" t/T ", style=palette.muted)
            return tabs
        for index, timeframe in enumerate(self.timeframes, start=1):
            active = timeframe == self.timeframe
            style = self._style("tab-active" if active else "tab")
            tabs.append(f" {index}:{timeframe} ", style=style)
        return tabs

    def render(self) -> Text:
        palette = self._palette()
        width = self.size.width or 120
        # Narrow terminals lose the least useful parts first; the timeframe always shows.
        for drop, compact in ((0, False), (1, False), (2, False), (3, False), (3, True)):
            text = self._summary(palette, drop)
            tabs = self._tabs(palette, compact)
            if text.cell_len + tabs.cell_len <= width:
                break
        gap = width - text.cell_len - tabs.cell_len
        if gap > 0:
            text.append(" " * gap)
        text.append_text(tabs)
        text.truncate(width, overflow="ellipsis")
        return text
