"""Trade plan panel: entry / SL / TP1 / TP2 with % distance, R multiples and R:R."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.reactive import Reactive, reactive
from textual.widget import Widget

from engine.models import Direction, SymbolState
from tui import formatting as fmt


class TradePlanPanel(Widget):
    """The ATR-based plan of the symbol's signal, or why there is none."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trade-plan--long",
        "trade-plan--short",
        "trade-plan--muted",
    }
    """Styles for the long side (and profit targets), the short side (and the stop), and
    secondary text."""

    DEFAULT_CSS = """
    TradePlanPanel {
        height: auto;
        & > .trade-plan--long { color: $text-success; }
        & > .trade-plan--short { color: $text-error; }
        & > .trade-plan--muted { text-style: dim; }
    }
    """

    state: Reactive[SymbolState | None] = reactive(None)
    """The symbol's latest state (signal, plan, last price)."""
    decimals: Reactive[int | None] = reactive(None)
    """Price decimals of the symbol (tick precision, from its recent candles): plan levels
    are computed from ATR and shown rounded to what can actually be ordered."""

    def on_mount(self) -> None:
        self.border_title = "trade plan"

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"trade-plan--{name}", partial=True)

    def render(self) -> RenderableType:
        state = self.state
        muted = self._style("muted")
        if state is None or state.signal is None:
            return Text("no signal yet (waiting for candles)", style=muted)
        signal = state.signal
        if signal.direction is Direction.NEUTRAL:
            return Text("no plan (NEUTRAL)", style=muted)
        plan = signal.plan
        if plan is None:
            return Text(f"no plan ({signal.direction.value}, ATR not ready)", style=muted)
        side = self._style("long" if signal.direction is Direction.LONG else "short")
        # Levels are coloured by outcome whatever the side: stop = loss, targets = profit.
        loss, profit = self._style("short"), self._style("long")
        title = Text()
        title.append(f"{signal.direction.value} plan", style=side + Style(bold=True))
        title.append(f"  R:R {plan.risk_reward:.2f}", style=Style(bold=True))
        decimals = self.decimals
        if decimals is None:
            # No candles yet: at least five significant digits, at least the price's own.
            decimals = max(fmt.price_decimals(plan.entry), fmt.significant_decimals(plan.entry))
        title.append(f"  ATR({plan.timeframe}) {fmt.format_price(plan.atr, decimals)}", style=muted)
        table = Table.grid(padding=(0, 2))
        table.add_column("level")
        table.add_column("price", justify="right")
        table.add_column("from entry", justify="right")
        table.add_column("R", justify="right")
        for label, price, distance, multiple in fmt.plan_rows(plan):
            style = Style()
            if label == "SL":
                style = loss
            elif label.startswith("TP"):
                style = profit
            table.add_row(
                Text(label, style=style),
                fmt.format_price(price, decimals),
                "" if label == "entry" else fmt.format_pct(distance),
                multiple,
            )
        parts: list[RenderableType] = [title, table]
        if state.last_price is not None:
            moved = fmt.pct_distance(state.last_price, plan.entry)
            parts.append(
                Text(
                    f"last {fmt.format_price(state.last_price, decimals)} "
                    f"({fmt.format_pct(moved)} "
                    "from entry)",
                    style=muted,
                )
            )
        return Group(*parts)
