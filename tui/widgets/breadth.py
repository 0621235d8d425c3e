"""Breadth pane: the market state (``engine.breadth``) with small plotext histories, the latest
spikes and new listings; plus the one-line breadth summary for the header.

Not mounted by itself: a screen composes :class:`BreadthPane` and calls
:meth:`BreadthPane.update_snapshot` with each new :class:`~engine.models.EngineSnapshot`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color, ColorParseError
from textual.containers import Horizontal
from textual.reactive import Reactive, reactive
from textual.widget import Widget
from textual_plotext import PlotextPlot

from engine.models import Breadth, EngineSnapshot, SpikeEvent
from feeds.intervals import interval_ms
from tui import formatting as fmt

HISTORY = 240
"""Breadth readings kept for the sparklines (one per distinct snapshot time)."""
SPIKES_SHOWN = 6
"""Latest spikes listed in the pane."""


def _pct(value: float | None, spec: str = "{:.0f}%") -> str:
    return "–" if value is None else spec.format(value)


def breadth_summary(breadth: Breadth | None) -> str:
    """One line for the header: ``▲12 ▼30 · med -1.2% · >EMA50 40% · BTC SHORT 38``."""
    if breadth is None:
        return "breadth –"
    parts = [f"▲{breadth.advancers} ▼{breadth.decliners}"]
    parts.append(f"med {_pct(breadth.median_change_pct, '{:+.1f}%')}")
    first = next(iter(breadth.above_ema50_pct.values()), None)
    parts.append(f">EMA50 {_pct(first)}")
    if breadth.volatility_regime:
        parts.append(f"vol {breadth.volatility_regime}")
    if breadth.btc_trend:
        parts.append(f"BTC {breadth.btc_trend} {breadth.btc_score or 50:.0f}")
    return " · ".join(parts)


class BreadthNumbers(Widget):
    """The breadth numbers, recent spikes and new listings as a compact table."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "breadth--up",
        "breadth--down",
        "breadth--muted",
    }
    DEFAULT_CSS = """
    BreadthNumbers {
        height: auto;
        & > .breadth--up { color: $text-success; }
        & > .breadth--down { color: $text-error; }
        & > .breadth--muted { text-style: dim; }
    }
    """

    snapshot: Reactive[EngineSnapshot | None] = reactive(None)
    """Latest snapshot (its ``breadth``, ``spikes`` and ``new_listings`` are shown)."""

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"breadth--{name}", partial=True)

    def _signed(self, value: float | None, spec: str) -> Text:
        if value is None:
            return Text("–", style=self._style("muted"))
        style = self._style("up") if value > 0 else self._style("down") if value < 0 else Style()
        return Text(spec.format(value), style=style)

    def render(self) -> RenderableType:
        snap = self.snapshot
        b = snap.breadth if snap is not None else None
        if snap is None or b is None:
            return Text("no market data yet", style=self._style("muted"))
        table = Table(box=None, show_header=False, padding=(0, 1), expand=False)
        table.add_column(style=self._style("muted"), no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_row("advancers / decliners", f"{b.advancers} / {b.decliners}")
        table.add_row("median 24h change", self._signed(b.median_change_pct, "{:+.2f}%"))
        table.add_row("new 24h highs / lows", f"{b.new_highs} / {b.new_lows}")
        for tf in snap.timeframes:
            table.add_row(
                f"> EMA50 / EMA200 {tf}",
                f"{_pct(b.above_ema50_pct.get(tf))} / {_pct(b.above_ema200_pct.get(tf))}",
            )
        funding = None if b.median_funding is None else b.median_funding * 100
        table.add_row("median funding", self._signed(funding, "{:+.4f}%"))
        if b.max_funding is not None and b.min_funding is not None:
            table.add_row("funding max", f"{b.max_funding_symbol} {b.max_funding * 100:+.4f}%")
            table.add_row("funding min", f"{b.min_funding_symbol} {b.min_funding * 100:+.4f}%")
        table.add_row(
            "volatility",
            f"{b.volatility_regime or '–'} · ATR {_pct(b.median_atr_pct, '{:.2f}%')}",
        )
        table.add_row("signals long / short", f"{b.longs} / {b.shorts}")
        btc = Text(b.btc_trend or "–")
        if b.btc_score is not None:
            btc.append(f" {b.btc_score:.0f}")
        if b.btc_microtrend is not None:
            btc.append(f" · micro {b.btc_microtrend:+.2f}")
        table.add_row("BTC trend", btc)
        if b.oi_symbols:
            # The longest window the polled history covers says most about positioning.
            window = max(b.oi_symbols, key=interval_ms)
            median = b.median_oi_change.get(window)
            table.add_row(
                f"open interest {window}",
                f"{b.oi_rising.get(window, 0)}↑ {b.oi_falling.get(window, 0)}↓ · median "
                + ("–" if median is None else f"{median * 100:+.2f}%"),
            )
        parts: list[RenderableType] = [table]
        spikes = list(snap.spikes)[-SPIKES_SHOWN:]
        if spikes:
            parts.append(Text("spikes", style=Style(bold=True)))
            parts.extend(self._spike_line(s) for s in reversed(spikes))
        if snap.new_listings:
            parts.append(Text("new listings: " + " ".join(snap.new_listings)))
        return Group(*parts)

    def _spike_line(self, spike: SpikeEvent) -> Text:
        value = {
            "price": f"z {spike.value:+.1f}",
            "volume": f"{spike.value:.1f}x vol",
            "liquidation": f"{spike.value:,.0f} liq",
        }.get(spike.kind, f"{spike.value:.2f}")
        text = Text(f"{fmt.format_utc(spike.time, with_date=False)} ", style=self._style("muted"))
        text.append(f"{spike.symbol} {spike.kind} {value}")
        return text


class BreadthHistory(PlotextPlot):
    """Session history of % advancers, % above EMA50 (smallest timeframe) and the median
    24 h change, as small line plots."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.times: deque[int] = deque(maxlen=HISTORY)
        self.advancing: deque[float] = deque(maxlen=HISTORY)
        self.above50: deque[float] = deque(maxlen=HISTORY)
        self.median: deque[float] = deque(maxlen=HISTORY)

    def add(self, breadth: Breadth) -> bool:
        """Append one reading (ignored when its time is not newer); True if appended."""
        if self.times and breadth.time <= self.times[-1]:
            return False
        self.times.append(breadth.time)
        total = breadth.advancers + breadth.decliners + breadth.unchanged
        self.advancing.append(100.0 * breadth.advancers / total if total else 50.0)
        first = next(iter(breadth.above_ema50_pct.values()), None)
        self.above50.append(first if first is not None else 50.0)
        self.median.append(breadth.median_change_pct or 0.0)
        return True

    def _rgb(self, variable: str) -> tuple[int, int, int]:
        try:
            red, green, blue = Color.parse(self.app.theme_variables.get(variable, "")).rgb
        except ColorParseError:
            return (128, 128, 128)
        return (red, green, blue)

    def replot(self) -> None:
        """Redraw from the history."""
        plt = self.plt
        plt.clear_data()
        xs: Any = list(range(len(self.times)))
        if not xs:
            plt.title("breadth history: waiting for data")
            self.refresh()
            return
        plt.plot(xs, list(self.advancing), marker="braille", color=self._rgb("success"),
                 label="% advancing")
        plt.plot(xs, list(self.above50), marker="braille", color=self._rgb("primary"),
                 label="% > EMA50")
        plt.ylim(0, 100)
        plt.xticks([], [])
        plt.title(f"session breadth · median 24h {self.median[-1]:+.2f}%")
        self.refresh()


class BreadthPane(Horizontal):
    """Breadth numbers beside their session history, at a bounded height so the signal
    table above keeps most of the screen."""

    DEFAULT_CSS = """
    BreadthPane {
        height: 18;
        border: round $primary;
        BreadthNumbers { width: 54; height: 100%; overflow-y: auto; }
        BreadthHistory { width: 1fr; height: 100%; }
    }
    """

    def compose(self) -> ComposeResult:
        yield BreadthNumbers()
        yield BreadthHistory()

    def on_mount(self) -> None:
        self.border_title = "market breadth"

    def update_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Show ``snapshot``'s breadth and add it to the history (once per snapshot time)."""
        self.query_one(BreadthNumbers).snapshot = snapshot
        history = self.query_one(BreadthHistory)
        if snapshot.breadth is not None and history.add(snapshot.breadth):
            history.replot()
        self.border_subtitle = breadth_summary(snapshot.breadth)
