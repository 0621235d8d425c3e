"""The top status bar: exchange, feed mode, throughput, freshness, backfill, clock.

One line that drops its least important parts on narrow terminals; a second line appears
while the feed is OFFLINE (reason, retry countdown, ``try --replay PATH``) or the feed worker
died. Everything comes from :class:`engine.models.FeedHealth` in the snapshot plus the
injected clock, so a snapshot test renders the same bar every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import Reactive, reactive
from textual.widget import Widget

from engine.models import Breadth, Direction, EngineSnapshot, FeedHealth
from tui import formatting as fmt

MODE_STYLES = {
    "LIVE": "live",
    "REPLAY": "replay",
    "CONNECTING": "reconnecting",
    "RECONNECTING": "reconnecting",
    "OFFLINE": "offline",
}
"""Feed modes reported in ``FeedHealth.mode`` → badge component style."""

REPLAY_HINT = "try --replay PATH"
"""Shown while OFFLINE: the UI works on recorded data without a network."""


@dataclass(frozen=True)
class _Segment:
    text: Text
    priority: int
    """0 = always shown; higher numbers are dropped first when the line is too narrow."""
    full: Text | None = None
    """A longer form of ``text``, shown instead when there is room left after every kept
    part got its place."""


OI_REASON_CHARS = 32
"""Open-interest ``unavailable`` reasons are cut to this many characters in the bar."""


def book_health(health: FeedHealth) -> tuple[str, str] | None:
    """Book health for the status bar, short and full: ``books 18/20`` and
    ``books 18/20 synced · 2 resyncs · 1 gap``; ``None`` when no book is kept."""
    if not health.books:
        return None
    short = f"books {health.books_synced}/{health.books}"
    parts = [f"{short} synced"]
    if health.book_resyncs:
        parts.append(f"{health.book_resyncs} resync{'s' if health.book_resyncs != 1 else ''}")
    if health.book_gaps:
        parts.append(f"{health.book_gaps} gap{'s' if health.book_gaps != 1 else ''}")
    return short, " · ".join(parts)


def rest_health(health: FeedHealth) -> tuple[str, str] | None:
    """REST cooldown for the status bar while one is in force: ``REST paused 1m12s`` and
    ``REST paused 1m12s: <the exchange's reason>``; ``None`` otherwise."""
    if health.rest_cooldown_s <= 0:
        return None
    seconds = math.ceil(health.rest_cooldown_s)
    left = f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    short = f"REST paused {left}"
    reason = health.rest_cooldown_reason.strip()
    return short, f"{short}: {reason}" if reason else short


def open_interest_health(health: FeedHealth) -> tuple[str, str] | None:
    """Open-interest state for the status bar while ``unavailable``: ``OI unavailable`` and
    ``OI unavailable: <reason, cut short>``; ``None`` in any other state."""
    if health.open_interest != "unavailable":
        return None
    short = "OI unavailable"
    # The last clause says why; the leading ones name the wrapper ("... not supported: ").
    reason = health.open_interest_reason.strip().rsplit(": ", 1)[-1]
    if not reason:
        return short, short
    if len(reason) > OI_REASON_CHARS:
        reason = reason[: OI_REASON_CHARS - 1] + "…"
    return short, f"{short}: {reason}"


ALERT_REASON_CHARS = 40
"""Failing alert channel reasons are cut to this many characters in the bar."""


def alert_health(failures: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """Failing alert channels for the status bar, short and full: ``alerts failing: webhook``
    and ``alerts failing: webhook (connection refused)``; ``None`` when none fails.

    Args:
        failures: ``(channel name, reason)`` per failing channel.
    """
    if not failures:
        return None
    short = "alerts failing: " + ", ".join(name for name, _ in failures)
    parts = []
    for name, reason in failures:
        if len(reason) > ALERT_REASON_CHARS:
            reason = reason[: ALERT_REASON_CHARS - 1] + "…"
        parts.append(f"{name} ({reason})" if reason else name)
    return short, "alerts failing: " + ", ".join(parts)


def _backfill_bar(done: int, total: int, width: int = 8) -> str:
    filled = round(width * done / total) if total else width
    return "▰" * filled + "▱" * (width - filled)


def header_breadth(breadth: Breadth) -> str:
    """Compact breadth for the header: ``adv 12 dec 30 · med -1.2%`` (median 24 h change)."""
    text = f"adv {breadth.advancers} dec {breadth.decliners}"
    if breadth.median_change_pct is not None:
        text += f" · med {breadth.median_change_pct:+.1f}%"
    return text


def _retry_text(health: FeedHealth) -> str:
    if health.retry_in is None:
        return ""
    if health.retry_in < 0.5:
        # The next attempt is already running (or about to): no "retry in 0s".
        return "retrying now"
    return f"retry in {health.retry_in:.0f}s"


class StatusBar(Widget):
    """Feed health and clock line, docked at the top of each screen."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-bar--title",
        "status-bar--live",
        "status-bar--replay",
        "status-bar--reconnecting",
        "status-bar--offline",
        "status-bar--warning",
        "status-bar--muted",
        "status-bar--long",
        "status-bar--short",
    }
    """Styles of the app name, the mode badges, warnings, secondary text and signal counts."""

    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
        &.-offline, &.-failed { height: 2; }
        & > .status-bar--title { text-style: bold; color: $primary; }
        & > .status-bar--live { color: $text-success; text-style: bold; }
        & > .status-bar--replay { color: $text-primary; text-style: bold; }
        & > .status-bar--reconnecting { color: $text-warning; text-style: bold; }
        & > .status-bar--offline { color: $text-error; text-style: bold reverse; }
        & > .status-bar--warning { color: $text-warning; }
        & > .status-bar--muted { text-style: dim; }
        & > .status-bar--long { color: $text-success; }
        & > .status-bar--short { color: $text-error; }
    }
    """

    snapshot: Reactive[EngineSnapshot | None] = reactive(None)
    """Latest engine snapshot (health, symbol count, signal counts)."""
    now: Reactive[float] = reactive(0.0)
    """Wall clock, seconds since the epoch, from the app's injected clock."""
    feed_error: Reactive[str] = reactive("")
    """Why the market feed worker stopped (empty while it runs)."""
    alert_failures: Reactive[tuple[tuple[str, str], ...]] = reactive(())
    """Failing alert channels as ``(name, reason)``, from the app."""

    def __init__(self, exchange: str, *, id: str | None = None) -> None:
        """Create the bar.

        Args:
            exchange: Exchange id shown at the left (``binanceusdm``).
            id: Widget id.
        """
        super().__init__(id=id)
        self.exchange = exchange
        """Exchange id shown when no snapshot has arrived yet."""

    def on_mount(self) -> None:
        # The App owns the feed worker and publishes its failure as `feed_error`; every
        # screen's bar follows it (init=True also shows a failure that happened earlier).
        if hasattr(self.app, "feed_error"):
            self.watch(self.app, "feed_error", self._app_feed_error_changed)
        if hasattr(self.app, "alert_failures"):
            self.watch(self.app, "alert_failures", self._app_alert_failures_changed)

    def _app_feed_error_changed(self, error: str) -> None:
        self.feed_error = error

    def _app_alert_failures_changed(self, failures: tuple[tuple[str, str], ...]) -> None:
        self.alert_failures = failures

    def watch_snapshot(self, snapshot: EngineSnapshot | None) -> None:
        mode = snapshot.health.mode if snapshot is not None else ""
        self.set_class(mode == "OFFLINE", "-offline")
        self.set_class(mode == "RECONNECTING", "-reconnecting")

    def watch_feed_error(self, error: str) -> None:
        self.set_class(bool(error), "-failed")

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"status-bar--{name}", partial=True)

    def _segments(self) -> list[_Segment]:
        snapshot = self.snapshot
        segments = [_Segment(Text("perpscope", style=self._style("title")), 0)]
        if snapshot is None:
            segments.append(_Segment(Text(self.exchange), 1))
            segments.append(_Segment(Text("starting…", style=self._style("muted")), 0))
            return segments
        health = snapshot.health
        segments.append(_Segment(Text(health.exchange or self.exchange), 1))
        mode = health.mode.upper()
        badge_style = self._style(MODE_STYLES[mode]) if mode in MODE_STYLES else Style()
        badge = Text(f"● {mode}", style=badge_style)
        if mode in ("CONNECTING", "RECONNECTING", "OFFLINE") and health.retry_in is not None:
            badge.append(f" {_retry_text(health)}", style=self._style("warning"))
        segments.append(_Segment(badge, 0))
        segments.append(_Segment(Text(f"{len(snapshot.symbols)} sym"), 1))
        if mode != "OFFLINE":
            segments.append(_Segment(Text(f"{fmt.format_count(health.msgs_per_s)} msg/s"), 2))
            last = fmt.format_age(health.last_msg_age_ms)
            segments.append(_Segment(Text(f"last msg {last}"), 2))
        if health.backfill_total and health.backfill_done < health.backfill_total:
            bar = _backfill_bar(health.backfill_done, health.backfill_total)
            text = Text(f"backfill {bar} {health.backfill_done}/{health.backfill_total}")
            segments.append(_Segment(text, 1))
        if health.reconnects:
            segments.append(_Segment(Text(f"reconnects {health.reconnects}"), 2))
        if health.decode_errors:
            errors = Text(f"decode errors {health.decode_errors}", style=self._style("warning"))
            segments.append(_Segment(errors, 1))
        if health.stale_streams:
            stale = Text(f"stale streams {health.stale_streams}", style=self._style("warning"))
            segments.append(_Segment(stale, 1))
        books = book_health(health)
        if books is not None:
            # Unsynced books are the news; all synced is reassurance and goes earlier.
            behind = health.books_synced < health.books
            style = self._style("warning") if behind else Style()
            short, full = books
            segments.append(_Segment(Text(short, style=style), 1 if behind else 3,
                                     Text(full, style=style)))
        rest = rest_health(health)
        if rest is not None:
            short, full = rest
            warn = self._style("warning")
            # Backfill, books and OI wait on REST: the reason they stall is named early.
            segments.append(_Segment(Text(short, style=warn), 1, Text(full, style=warn)))
        oi = open_interest_health(health)
        if oi is not None:
            short, full = oi
            warn = self._style("warning")
            # Named early: OI columns and the micro score's OI factor stay empty without it.
            segments.append(_Segment(Text(short, style=warn), 1, Text(full, style=warn)))
        alerts = alert_health(self.alert_failures)
        if alerts is not None:
            short, full = alerts
            warn = self._style("warning")
            # Alerts that do not go out are news the trader must see: kept early.
            segments.append(_Segment(Text(short, style=warn), 1, Text(full, style=warn)))
        segments.append(_Segment(self._signal_counts(snapshot), 4))
        if snapshot.breadth is not None:
            # Market state at a glance (the breadth pane, b, has the rest).
            segments.append(_Segment(Text(header_breadth(snapshot.breadth)), 3))
        if mode == "REPLAY" and snapshot.time:
            data_time = Text(f"data {fmt.format_utc(snapshot.time)}", style=self._style("muted"))
            segments.append(_Segment(data_time, 3))
        return segments

    def _signal_counts(self, snapshot: EngineSnapshot) -> Text:
        longs = shorts = 0
        for state in snapshot.symbols.values():
            if state.signal is None or state.stale:
                continue
            if state.signal.direction is Direction.LONG:
                longs += 1
            elif state.signal.direction is Direction.SHORT:
                shorts += 1
        text = Text()
        text.append(f"▲{longs} long", style=self._style("long"))
        text.append(" ")
        text.append(f"▼{shorts} short", style=self._style("short"))
        return text

    def _second_line(self) -> Text | None:
        if self.feed_error:
            text = Text("FEED STOPPED ", style=self._style("offline"))
            text.append(f" {self.feed_error}", style=self._style("warning"))
            return text
        snapshot = self.snapshot
        if snapshot is None or snapshot.health.mode != "OFFLINE":
            return None
        health = snapshot.health
        # Actionable parts first: a long reason is what gets truncated on narrow terminals.
        text = Text("OFFLINE ", style=self._style("offline"))
        retry = _retry_text(health)
        if retry:
            text.append(f" {retry} ·", style=self._style("warning"))
        text.append(f" {REPLAY_HINT} · ")
        text.append(health.reason or "no connection")
        return text

    def _first_line(self, width: int) -> Text:
        """The first line, fitted to ``width`` cells by dropping low-priority parts."""
        clock = Text(fmt.format_clock(self.now))
        separator = Text(" │ ")
        # A span, not the base style: Text.join copies the separator's base style to the line.
        separator.stylize(self._style("muted"))
        segments = self._segments()
        budget = width - clock.cell_len - 1
        # Greedy by importance: take parts in priority order while they fit, show them in
        # their natural order.
        kept: set[int] = set()
        used = 1
        by_priority = sorted(range(len(segments)), key=lambda i: segments[i].priority)
        for index in by_priority:
            cost = segments[index].text.cell_len + (separator.cell_len if kept else 0)
            if segments[index].priority == 0 or used + cost <= budget:
                kept.add(index)
                used += cost
        # Then give kept parts their long form, most important first, while room remains.
        texts = [s.text for s in segments]
        for index in by_priority:
            full = segments[index].full
            if index in kept and full is not None:
                extra = full.cell_len - texts[index].cell_len
                if used + extra <= budget:
                    texts[index] = full
                    used += extra
        line = separator.join(t for i, t in enumerate(texts) if i in kept)
        line.pad_left(1)
        line.truncate(max(0, budget), overflow="ellipsis")
        gap = max(1, width - line.cell_len - clock.cell_len - 1)
        line.append(" " * gap)
        line.append_text(clock)
        return line

    def render(self) -> Text:
        width = self.size.width or 120
        text = self._first_line(width)
        second = self._second_line()
        if second is not None:
            second.pad_left(1)
            second.truncate(width, overflow="ellipsis")
            text.append("\n")
            text.append_text(second)
        return text
