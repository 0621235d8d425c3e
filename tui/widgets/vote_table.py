"""Vote breakdown: timeframe × indicator readings and votes behind the fused score."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.reactive import Reactive, reactive
from textual.widget import Widget

from engine.models import Direction, IndicatorVote, Signal, TimeframeSignal
from tui import formatting as fmt

GROUP_ORDER = ("trend", "momentum", "volume", "strength")
"""Vote groups in display order (unknown groups follow)."""


class VoteTable(Widget):
    """Why the score is what it is: each indicator's reading and vote per timeframe."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vote-table--long",
        "vote-table--short",
        "vote-table--muted",
        "vote-table--selected",
    }
    """Vote colours, secondary text, and the timeframe shown in the chart."""

    DEFAULT_CSS = """
    VoteTable {
        height: auto;
        & > .vote-table--long { color: $text-success; }
        & > .vote-table--short { color: $text-error; }
        & > .vote-table--muted { text-style: dim; }
        & > .vote-table--selected { text-style: bold underline; }
    }
    """

    signal: Reactive[Signal | None] = reactive(None)
    """The fused signal to explain."""
    timeframe: Reactive[str] = reactive("")
    """Timeframe shown in the chart (its column header is highlighted)."""

    def on_mount(self) -> None:
        self.border_title = "votes behind the score"
        self.border_subtitle = "cell: indicator reading, then its vote in [-1, +1]"

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"vote-table--{name}", partial=True)

    def _vote_style(self, vote: float | None) -> Style:
        if vote is None:
            return self._style("muted")
        if vote > fmt.VOTE_THRESHOLD:
            return self._style("long")
        if vote < -fmt.VOTE_THRESHOLD:
            return self._style("short")
        return Style()

    def _indicator_cell(self, vote: IndicatorVote | None) -> Text:
        if vote is None:
            return Text("—", style=self._style("muted"))
        text = Text(fmt.format_reading(vote.value))
        text.append(f" {vote.vote:+.2f}", style=self._vote_style(vote.vote))
        return text

    def _vote_cell(self, tf_signal: TimeframeSignal) -> Text:
        if tf_signal.vote is None:
            return Text(
                f"warming up {tf_signal.bars}/{tf_signal.bars_needed} bars",
                style=self._style("muted"),
            )
        glyph = fmt.vote_glyph(tf_signal)
        return Text(
            f"{glyph} {tf_signal.vote:+.2f}",
            style=self._vote_style(tf_signal.vote) + Style(bold=True),
        )

    def render(self) -> RenderableType:
        signal = self.signal
        muted = self._style("muted")
        if signal is None:
            return Text("no votes yet", style=muted)
        summary = Text()
        summary.append(
            fmt.direction_label(signal.direction),
            style=fmt.direction_style(
                signal.direction, fmt.Palette(long=self._style("long"), short=self._style("short"))
            ),
        )
        summary.append(f"  score {signal.score:.0f}/100  confidence {signal.confidence:.2f}")
        if signal.direction is Direction.NEUTRAL:
            summary.append("  (score between the thresholds or low agreement)", style=muted)
        summary.append(f"  · as of candle close {fmt.format_utc(signal.as_of)}", style=muted)
        summary.append("\n")
        summary.append(signal.signal_type.value.replace("_", " ").lower(), style=Style(bold=True))
        summary.append("  ")
        arrow = {1: "↑", -1: "↓"}.get(signal.reversion_direction, "")
        summary.append(
            f"  balanced {signal.balanced_score:.0f} = momentum {signal.momentum_score:.0f}"
            f" · reversion {signal.reversion_score:.0f}{arrow}  profile {signal.risk_profile}",
            style=muted,
        )
        if signal.patterns:
            summary.append(f"  candles {' '.join(signal.patterns)}")
        filters = [f for f in signal.factors if f.category == "filter" and f.contribution]
        if filters:
            summary.append("\nfilters: ")
            summary.append(
                "; ".join(f"{f.name.removeprefix('filter.')} {f.note}" for f in filters),
                style=self._style("short") if signal.blocked else Style(),
            )
        elif any(f.category == "filter" for f in signal.factors):
            summary.append("\nfilters: none fired", style=muted)

        table = Table(
            box=None, padding=(0, 1), show_edge=False, expand=False, header_style=Style(bold=True)
        )
        table.add_column("indicator", style=Style(), no_wrap=True)
        table.add_column("group", style=muted, no_wrap=True)
        names: dict[str, str] = {}
        for tf_signal in signal.timeframes:
            for vote in tf_signal.indicators:
                names.setdefault(vote.name, vote.group)
        for tf_signal in signal.timeframes:
            header = Text(tf_signal.timeframe)
            if tf_signal.timeframe == self.timeframe:
                header.stylize(self._style("selected"))
            table.add_column(header, justify="right", overflow="fold", min_width=6)

        def group_rank(item: tuple[str, str]) -> int:
            group = item[1]
            return GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)

        for name, group in sorted(names.items(), key=group_rank):
            cells = []
            for tf_signal in signal.timeframes:
                found = next((v for v in tf_signal.indicators if v.name == name), None)
                cells.append(self._indicator_cell(found))
            table.add_row(name, group, *cells)
        table.add_row(
            Text("timeframe vote", style=Style(bold=True)),
            "",
            *[self._vote_cell(tf) for tf in signal.timeframes],
        )
        table.add_row("regime", "state", *[self._detail(tf, "regime") for tf in signal.timeframes])
        table.add_row(
            "reversion / cluster",
            "",
            *[
                self._detail(tf, "reversion") + Text(" / ") + self._detail(tf, "cluster")
                for tf in signal.timeframes
            ],
        )
        return Group(summary, table)

    def _detail(self, tf: TimeframeSignal, kind: str) -> Text:
        """Regime, reversion score (0-100, arrow = direction) or high-volume cluster strength
        (``trend`` when a trend is forming) of one timeframe."""
        muted = self._style("muted")
        if tf.vote is None:
            return Text("—", style=muted)
        if kind == "regime":
            return Text(tf.regime.replace("_", " ") or "—")
        if kind == "reversion" and tf.reversion is not None:
            arrow = {1: "↑", -1: "↓"}.get(tf.reversion.direction, "")
            return Text(f"{tf.reversion.score:.0f}{arrow}", style=Style() if arrow else muted)
        if kind == "cluster" and tf.cluster is not None:
            mark = " trend" if tf.cluster.trend_forming else ""
            return Text(f"{tf.cluster.strength:+.2f}{mark}", style=self._vote_style(
                tf.cluster.strength if tf.cluster.trend_forming else 0.0
            ))
        return Text("—", style=muted)
