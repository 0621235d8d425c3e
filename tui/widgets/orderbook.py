"""Order book pane of the symbol view: ladder, book features, flow, derivatives, micro score.

Fed one frozen :class:`engine.models.MicroView` per UI frame (the symbol screen calls
``service.micro(symbol)`` on its snapshot timer; nothing here touches the network). Three
parts, each re-rendered only when the view changes:

* :class:`BookLadder`: asks above, bids below, best prices meeting at the mid line; size bars
  scaled to the largest level shown; walls (``MicroView.features.walls``, matched by price)
  highlighted and marked ``◆``.
* :class:`BookSummary`: sync state, spread and mid, imbalance bar, CVD by window; the CVD
  sparkline (Textual ``Sparkline`` over ``flow.cvd_series``) sits under it.
* :class:`BookDetails`: depth per band, funding with countdown, premium, open interest and its
  change, microstructure score with factor breakdown and unmet entry conditions, recent
  sweeps and sampled liquidations.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import Reactive, reactive
from textual.widget import Widget
from textual.widgets import Sparkline

from engine.models import BookInfo, MicroView, Wall
from tui import formatting as fmt

GLYPH_WALL = "◆"
"""Marks a ladder level that is a wall (much larger than its neighbours)."""

NO_BOOK = "no order book for this symbol"
"""Shown when the pipeline keeps no book for the symbol (``BookInfo.state == "none"``)."""

SWEEPS_SHOWN = 4
"""Most recent sweeps listed."""

LIQUIDATIONS_SHOWN = 4
"""Most recent sampled liquidations listed."""

_COMPONENTS: set[str] = {
    "orderbook--long",
    "orderbook--short",
    "orderbook--warning",
    "orderbook--muted",
    "orderbook--wall",
    "orderbook--title",
}


class BookPart(Widget):
    """A part of the pane rendering from the shared ``view`` reactive."""

    COMPONENT_CLASSES: ClassVar[set[str]] = _COMPONENTS
    """Meaning styles: long (bids, buys), short (asks, sells), warning, muted, walls, titles."""

    DEFAULT_CSS = """
    BookPart {
        & > .orderbook--long { color: $text-success; }
        & > .orderbook--short { color: $text-error; }
        & > .orderbook--warning { color: $text-warning; }
        & > .orderbook--muted { text-style: dim; }
        & > .orderbook--wall { color: $text-warning; text-style: bold; }
        & > .orderbook--title { text-style: bold; }
    }
    """

    view: Reactive[MicroView | None] = reactive(None)
    """The latest microstructure view of the symbol (``None`` before the first)."""
    oi_note: Reactive[str] = reactive("")
    """Why open interest is missing (poller unavailable or disabled), empty if it is not."""

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"orderbook--{name}", partial=True)

    def _palette(self) -> fmt.Palette:
        return fmt.Palette(
            long=self._style("long"),
            short=self._style("short"),
            warning=self._style("warning"),
            muted=self._style("muted"),
        )


def price_decimals_of(view: MicroView) -> int:
    """Decimals for the view's prices: the contract tick's, else the most seen in its levels."""
    if view.tick_size:
        return fmt.tick_decimals(view.tick_size)
    prices = [p for p, _ in view.bids] + [p for p, _ in view.asks]
    return max((fmt.price_decimals(p) for p in prices), default=2)


def book_state_text(info: BookInfo) -> str:
    """One line on the book's sync state: ``synced``, ``resyncing (gap)`` or the no-book
    notice, plus resync and gap counts when there were any."""
    if info.state == "none":
        head = NO_BOOK
    elif info.state == "resyncing":
        head = f"resyncing ({info.last_reason})" if info.last_reason else "resyncing"
    else:
        head = info.state
    counts = []
    if info.resyncs:
        counts.append(f"{info.resyncs} resync{'s' if info.resyncs != 1 else ''}")
    if info.gaps:
        counts.append(f"{info.gaps} gap{'s' if info.gaps != 1 else ''}")
    return " · ".join([head, *counts])


def wall_prices(view: MicroView) -> dict[float, Wall]:
    """Walls of the view keyed by price (to mark ladder levels)."""
    if view.features is None:
        return {}
    return {wall.price: wall for wall in view.features.walls}


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


class BookLadder(BookPart):
    """Top levels: asks (furthest first) above the mid line, bids (best first) below."""

    DEFAULT_CSS = """
    BookLadder { width: 1fr; height: 1fr; min-width: 30; }
    """

    def levels_per_side(self) -> int:
        """Levels shown on each side for the current height (header and mid line excluded)."""
        return max(1, (self.size.height - 2) // 2)

    def render(self) -> RenderableType:
        view = self.view
        muted = self._style("muted")
        if view is None:
            return Text("waiting for the order book…", style=muted)
        if view.book.state != "synced" or not (view.bids or view.asks):
            style = self._style("warning") if view.book.state == "resyncing" else muted
            return Text(book_state_text(view.book), style=style)
        depth = self.levels_per_side()
        asks = list(view.asks[:depth])
        bids = list(view.bids[:depth])
        decimals = price_decimals_of(view)
        prices = [fmt.format_price(p, decimals) for p, _ in asks + bids]
        sizes = [fmt.format_size(s) for _, s in asks + bids]
        price_w = max(len("price"), *(len(p) for p in prices))
        size_w = max(len("size"), *(len(s) for s in sizes))
        width = self.size.width or 40
        bar_w = max(1, width - price_w - size_w - 4)
        largest = max(s for _, s in asks + bids)
        walls = wall_prices(view)
        lines = [
            Text(f"{'price':>{price_w}} {'size':>{size_w}}  depth", style=muted, no_wrap=True)
        ]

        def level(price: float, size: float, side: str) -> Text:
            wall = walls.get(price)
            side_style = self._style("long" if side == "bid" else "short")
            text_style = self._style("wall") if wall is not None else Style()
            line = Text(no_wrap=True, overflow="crop")
            line.append(f"{fmt.format_price(price, decimals):>{price_w}}", style=side_style)
            line.append(f" {fmt.format_size(size):>{size_w}} ", style=text_style)
            line.append(f"{fmt.size_bar(size, largest, bar_w):<{bar_w}}", style=side_style)
            line.append(GLYPH_WALL if wall is not None else " ", style=self._style("wall"))
            return line

        # Pad short sides so the mid line stays in the middle of the ladder.
        lines.extend(Text("") for _ in range(depth - len(asks)))
        lines.extend(level(p, s, "ask") for p, s in reversed(asks))
        lines.append(self._mid_line(view, decimals, width))
        lines.extend(level(p, s, "bid") for p, s in bids)
        return Group(*lines)

    def _mid_line(self, view: MicroView, decimals: int, width: int) -> Text:
        features = view.features
        if features is None:
            mid = (view.bids[0][0] + view.asks[0][0]) / 2 if view.bids and view.asks else math.nan
            spread = None
        else:
            mid, spread = features.mid, features.spread_bps
        body = f" mid {fmt.format_price(mid, decimals + 1)} · spread {fmt.format_bps(spread)} bp "
        pad = max(0, width - len(body))
        line = Text("─" * (pad // 2), style=self._style("muted"), no_wrap=True)
        line.append(body, style=self._style("title"))
        line.append("─" * (pad - pad // 2), style=self._style("muted"))
        return line


class BookSummary(BookPart):
    """Sync state, mid and spread, imbalance bar, and CVD per window."""

    DEFAULT_CSS = """
    BookSummary { height: auto; }
    """

    def render(self) -> RenderableType:
        view = self.view
        muted = self._style("muted")
        if view is None:
            return Text("waiting for the order book…", style=muted)
        palette = self._palette()
        title = self._style("title")
        lines: list[Text] = []
        state = _line("book ", title)
        state_style = {"synced": self._style("long"), "resyncing": self._style("warning")}
        state.append(book_state_text(view.book), style=state_style.get(view.book.state, muted))
        lines.append(state)
        features = view.features
        if features is not None:
            decimals = price_decimals_of(view)
            quote = _line("bid ", muted)
            quote.append(fmt.format_price(features.best_bid, decimals), style=palette.long)
            quote.append(" ask ", style=muted)
            quote.append(fmt.format_price(features.best_ask, decimals), style=palette.short)
            quote.append(f" {fmt.format_bps(features.spread_bps)} bp")
            lines.append(quote)
            imbalance = _line("imb ", title)
            imbalance.append(
                f"{round(features.imbalance, 2) + 0.0:+.2f} ",
                style=_signed_style(features.imbalance, palette),
            )
            width = max(5, min(21, (self.size.width or 30) - 10))
            imbalance.append_text(fmt.imbalance_bar(features.imbalance, width, palette))
            lines.append(imbalance)
        flow = view.flow
        if flow is not None and flow.cvd:
            cvd = _line("CVD", title)
            for window, value in flow.cvd.items():
                cvd.append(f" {window} ")
                cvd.append(
                    fmt.format_notional(value, signed=True), style=_signed_style(value, palette)
                )
            cvd.append(f" · {flow.trade_rate:.1f} tr/s", style=muted)
            lines.append(cvd)
        return Group(*lines)


class BookDetails(BookPart):
    """Depth per band, derivatives, micro score with its factors, sweeps and liquidations."""

    DEFAULT_CSS = """
    BookDetails { height: auto; }
    """

    def render(self) -> RenderableType:
        view = self.view
        if view is None:
            return Text("")
        parts: list[RenderableType] = []
        if view.features is not None:
            parts.append(self._depth(view))
        parts.extend(self._derivatives(view))
        parts.extend(self._score(view))
        parts.extend(self._sweeps(view))
        parts.extend(self._liquidations(view))
        return Group(*parts)

    def _depth(self, view: MicroView) -> Table:
        assert view.features is not None
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style=self._style("title"))
        table.add_column("depth", no_wrap=True)
        table.add_column("bid", justify="right", style=self._style("long"), no_wrap=True)
        table.add_column("ask", justify="right", style=self._style("short"), no_wrap=True)
        bands = list(view.features.bid_depth) + [
            b for b in view.features.ask_depth if b not in view.features.bid_depth
        ]
        for band in bands:
            table.add_row(
                band,
                fmt.format_notional(view.features.bid_depth.get(band)),
                fmt.format_notional(view.features.ask_depth.get(band)),
            )
        return table

    def _derivatives(self, view: MicroView) -> list[Text]:
        derivs = view.derivatives
        muted = self._style("muted")
        if derivs is None:
            return [Text("no mark price or open interest yet", style=muted)]
        palette = self._palette()
        title = self._style("title")
        lines = []
        funding = _line("funding ", title)
        funding.append(fmt.format_funding(derivs.funding_rate))
        if derivs.funding_in_ms is not None:
            funding.append(f" in {fmt.format_countdown(derivs.funding_in_ms)}")
        lines.append(funding)
        premium = _line("premium ", title)
        premium.append(
            "—"
            if derivs.premium_bps is None
            else f"{fmt.format_bps(derivs.premium_bps, signed=True)} bp"
        )
        if derivs.mark_price is not None:
            premium.append(
                f" · mark {fmt.format_price(derivs.mark_price, price_decimals_of(view))}",
                style=muted,
            )
        lines.append(premium)
        oi = _line("OI ", title)
        if derivs.open_interest is None:
            oi.append(self.oi_note or "not polled yet", style=muted)
        else:
            oi.append(fmt.format_size(derivs.open_interest))
            for window, change in derivs.oi_change.items():
                oi.append(f" · {window} ")
                oi.append(fmt.format_pct(change * 100, 1), style=_signed_style(change, palette))
        lines.append(oi)
        if derivs.oi_divergence:
            lines.append(_line(f" {derivs.oi_divergence.replace('_', ' ')}", palette.warning))
        return lines

    def _score(self, view: MicroView) -> list[RenderableType]:
        score = view.score
        muted = self._style("muted")
        if score is None:
            return [Text("micro score: needs a synced book", style=muted)]
        palette = self._palette()
        head = _line("micro ", self._style("title"))
        side = _signed_style(score.direction, palette)
        arrow = {1: fmt.GLYPH_LONG, -1: fmt.GLYPH_SHORT}.get(score.direction, "")
        head.append(f"{score.score:.0f}{arrow}", style=side)
        if view.signal is not None:
            head.append(f" {view.signal.signal_type.value}", style=side + Style(bold=True))
        if score.entry_ok:
            entry = _line(" entry conditions met", palette.long)
        else:
            unmet = ", ".join(score.unmet) or "—"
            entry = _line(f" unmet: {unmet}", palette.warning)
        # Fixed numeric columns; the factor name gives way on narrow panes.
        name_w = max(6, (self.size.width or 40) - 16)
        lines: list[RenderableType] = [head, entry]
        for factor in score.factors:
            line = _line(f" {factor.name[: name_w - 1]:<{name_w}}", muted)
            line.append(f"{fmt.format_reading(factor.value):>7}")
            line.append(
                f"{factor.contribution:>+8.2f}", style=_signed_style(factor.contribution, palette)
            )
            lines.append(line)
        return lines

    def _sweeps(self, view: MicroView) -> list[Text]:
        sweeps = view.flow.sweeps[-SWEEPS_SHOWN:] if view.flow is not None else ()
        if not sweeps:
            return []
        palette = self._palette()
        lines = [Text("sweeps", style=self._style("title"))]
        for sweep in reversed(sweeps):
            line = _line(f" {_clock(sweep.time)} ", self._style("muted"))
            side = palette.long if sweep.side == "buy" else palette.short
            line.append(f"{sweep.side:<4}", style=side)
            line.append(f" {fmt.format_notional(sweep.notional):>7} · {sweep.levels} lv")
            lines.append(line)
        return lines

    def _liquidations(self, view: MicroView) -> list[Text]:
        prints = view.derivatives.liquidations[-LIQUIDATIONS_SHOWN:] if view.derivatives else ()
        if not prints:
            return []
        palette = self._palette()
        decimals = price_decimals_of(view)
        lines = [Text("liquidations", style=self._style("title"))]
        for liq in reversed(prints):
            line = _line(f" {_clock(liq.time)} ", self._style("muted"))
            # A liquidated long is a forced sell: short colour; a liquidated short buys.
            side = palette.short if liq.side == "long" else palette.long
            line.append(f"{liq.side:<5}", style=side)
            line.append(
                f" {fmt.format_notional(liq.notional):>7} @ {fmt.format_price(liq.price, decimals)}"
            )
            lines.append(line)
        return lines


def _line(text: str, style: Style) -> Text:
    """One pane line: never wraps (the column is narrow at 80x24), cut with an ellipsis."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(text, style=style)
    return line


def _signed_style(value: float, palette: fmt.Palette) -> Style:
    if value > 0:
        return palette.long
    if value < 0:
        return palette.short
    return Style()


class OrderBookPane(Widget):
    """Ladder beside a scrollable column of book, flow and derivatives numbers."""

    DEFAULT_CSS = """
    OrderBookPane {
        height: 1fr;
        & > Horizontal { height: 1fr; }
        & #book-ladder { width: 1fr; max-width: 56; padding: 0 1; }
        & #book-side { width: 1fr; padding: 0 1; }
        & #book-cvd { height: 2; margin: 0 0 1 0; }
    }
    """

    view: Reactive[MicroView | None] = reactive(None, init=False)
    """The latest view; each part is data-bound to it."""
    oi_note: Reactive[str] = reactive("", init=False)
    """Why open interest is missing (from feed health), shown in place of it."""

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield BookLadder(id="book-ladder").data_bind(OrderBookPane.view)
            with VerticalScroll(id="book-side"):
                yield BookSummary(id="book-summary").data_bind(OrderBookPane.view)
                yield Sparkline([], id="book-cvd")
                yield BookDetails(id="book-details").data_bind(
                    OrderBookPane.view, OrderBookPane.oi_note
                )

    def on_mount(self) -> None:
        self.border_title = "order book"

    def watch_view(self, view: MicroView | None) -> None:
        series = list(view.flow.cvd_series) if view is not None and view.flow is not None else []
        sparkline = self.query_one("#book-cvd", Sparkline)
        sparkline.display = len(series) > 1
        if list(sparkline.data or []) != series:
            sparkline.data = series
        if view is not None:
            subtitle = book_state_text(view.book)
            if view.book.state == "synced":
                subtitle += f" · {view.book.bid_levels}/{view.book.ask_levels} levels"
            self.border_subtitle = subtitle
