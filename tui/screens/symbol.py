"""Symbol view: candles + EMAs, RSI, trade plan and the votes behind the score; ``o`` swaps
them for the order book pane (ladder, flow, derivatives, micro score).

Pushed by the main screen for one symbol. It pulls its own snapshots at ``ui.refresh_hz``
(header, plan, votes, and ``service.micro(symbol)`` while the order book pane is shown) and
candles at most twice a second, redrawing the charts only when the candles changed. It asks
the pipeline for a local order book of the symbol on open (``want_book``) and releases it on
close.

``p`` marks a pick from the symbol's plan (:mod:`tui.screens.pick_form`), ``w`` toggles it on
the watchlist, ``e`` writes the shown timeframe's candles with every engine indicator to a CSV
under the data dir's ``exports/`` (:func:`tui.export.write_candles_csv`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from engine.config import IndicatorConfig
from engine.models import CandleSeries, EngineSnapshot, Signal, SymbolState
from engine.service import MarketService
from tui import export
from tui import formatting as fmt
from tui.commands import PaletteCommand
from tui.screens.pick_form import open_pick_form
from tui.ui_config import UiConfig
from tui.widgets.charts import PriceChart, RsiChart, ema_periods_from
from tui.widgets.orderbook import OrderBookPane
from tui.widgets.status_bar import StatusBar
from tui.widgets.symbol_header import SymbolHeader
from tui.widgets.trade_plan import TradePlanPanel
from tui.widgets.vote_table import VoteTable

CANDLE_INTERVAL_S = 0.5
"""Candles are fetched (and charts redrawn) at most this often: ≤ 2 Hz."""

NARROW_WIDTH = 100
"""Below this width the trade plan goes under the chart instead of beside it."""

SHORT_HEIGHT = 30
"""Below this height the RSI chart is hidden to leave the candles room."""

EXPORT_BARS = 5000
"""Candles asked for by the CSV export: the whole store, so the indicators are computed over
the same history as the engine's (EMAs depend on where the series starts)."""

log = logging.getLogger(__name__)


class SymbolScreen(Screen[None]):
    """Everything about one symbol on one timeframe."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", id="symbol.back"),
        Binding("t", "next_timeframe", "Next tf", id="symbol.next_timeframe"),
        Binding("T", "previous_timeframe", "Prev tf", id="symbol.previous_timeframe"),
        Binding(
            "o",
            "toggle_book",
            "Book",
            tooltip="Show the order book pane instead of the charts (again: back)",
            id="symbol.book",
        ),
        Binding(
            "p", "pick", "Pick", tooltip="Mark a pick from this plan", id="symbol.pick",
            show=False,
        ),
        Binding(
            "w", "toggle_watch", "Watch", tooltip="Add or remove on the watchlist",
            id="symbol.watch", show=False,
        ),
        Binding(
            "e", "export_candles", "Export", tooltip="Candles + indicators to CSV",
            id="symbol.export", show=False,
        ),
        *[
            Binding(
                str(n),
                f"select_timeframe({n - 1})",
                f"Timeframe {n}",
                show=False,
                id=f"symbol.timeframe_{n}",
            )
            for n in range(1, 7)
        ],
    ]

    snapshot: Reactive[EngineSnapshot | None] = reactive(None, init=False)
    """Latest engine snapshot (the status bar is bound to it)."""
    now: Reactive[float] = reactive(0.0, init=False)
    """Wall clock (epoch seconds) at the latest tick."""
    timeframe: Reactive[str] = reactive("", init=False)
    """Timeframe shown in the charts."""
    state: Reactive[SymbolState | None] = reactive(None, init=False)
    """This symbol's state from the latest snapshot."""

    def __init__(
        self,
        service: MarketService,
        ui: UiConfig,
        *,
        symbol: str,
        exchange: str,
        clock: Callable[[], float],
        export_dir: Path | None = None,
    ) -> None:
        """Create the view.

        Args:
            service: The market pipeline (``snapshot()`` and ``candles()``; its desk for
                picks and the watchlist).
            ui: UI settings (refresh rate, chart timeframe and bars).
            symbol: Venue symbol to show.
            exchange: Exchange id for the status bar.
            clock: Wall clock in epoch seconds.
            export_dir: Where CSV exports go (default :func:`tui.export.default_export_dir`).
        """
        super().__init__()
        self.symbol = symbol
        """Venue symbol shown."""
        self._service = service
        self._ui = ui
        self._exchange = exchange
        self._clock = clock
        self._timer: Timer | None = None
        self._candle_timer: Timer | None = None
        self._candles: CandleSeries | None = None
        self._candles_at = 0.0
        self.export_dir = export_dir or export.default_export_dir()
        """Where CSV exports go."""
        self.last_export: Path | None = None
        """The latest CSV written (for tests and the toast)."""

    @property
    def timeframes(self) -> tuple[str, ...]:
        """Configured timeframes from the latest snapshot, smallest first."""
        return self.snapshot.timeframes if self.snapshot is not None else ()

    def compose(self) -> ComposeResult:
        yield StatusBar(self._exchange, id="status").data_bind(
            SymbolScreen.snapshot, SymbolScreen.now
        )
        yield SymbolHeader(self.symbol, id="symbol-header").data_bind(
            SymbolScreen.state, SymbolScreen.timeframe
        )
        with VerticalScroll(id="symbol-body"):
            with Horizontal(id="symbol-top"):
                with Vertical(id="charts"):
                    yield PriceChart(bars=self._ui.chart_bars, id="price-chart")
                    yield RsiChart(bars=self._ui.chart_bars, id="rsi-chart")
                yield TradePlanPanel(id="plan").data_bind(SymbolScreen.state)
            yield VoteTable(id="votes").data_bind(SymbolScreen.timeframe)
        book = OrderBookPane(id="orderbook")
        # The charts come first; at 80x24 the book takes the whole body when asked for (o).
        book.display = False
        yield book
        yield Footer()

    def on_mount(self) -> None:
        self._service.want_book(self.symbol)
        self._tick()
        self._timer = self.set_interval(1 / self._ui.refresh_hz, self._tick, name="snapshot")
        self._candle_timer = self.set_interval(
            CANDLE_INTERVAL_S, self._poll_candles, name="candles"
        )
        self._poll_candles()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")
        self.set_class(event.size.height < SHORT_HEIGHT, "-short")

    def on_unmount(self) -> None:
        self._service.want_book(self.symbol, False)

    def on_screen_suspend(self) -> None:
        for timer in (self._timer, self._candle_timer):
            if timer is not None:
                timer.pause()

    def on_screen_resume(self) -> None:
        for timer in (self._timer, self._candle_timer):
            if timer is not None:
                timer.resume()

    # ---------------------------------------------------------------- data

    @property
    def book_shown(self) -> bool:
        """True while the order book pane replaces the charts."""
        return self.has_class("-book")

    def _poll_micro(self) -> None:
        view = self._service.micro(self.symbol)
        pane = self.query_one(OrderBookPane)
        health = self._service.snapshot().health
        # The last clause of the server's message is the part a trader needs.
        reason = health.open_interest_reason.rsplit(": ", 1)[-1].rstrip(".")
        note = {
            "unavailable": f"unavailable: {reason}" if reason else "unavailable",
            "disabled": "polling disabled (open_interest.enabled)",
        }.get(health.open_interest, "")
        if note != pane.oi_note:
            pane.oi_note = note
        if view != pane.view:
            pane.view = view

    def _tick(self) -> None:
        snapshot = self._service.snapshot()
        self.now = self._clock()
        if self.book_shown:
            self._poll_micro()
        if snapshot is self.snapshot:
            return
        self.snapshot = snapshot
        self.query_one(SymbolHeader).timeframes = snapshot.timeframes
        if self.timeframe not in snapshot.timeframes and snapshot.timeframes:
            # First snapshot (or a config change): the configured chart timeframe, else the
            # smallest one.
            wanted = self._ui.chart_timeframe
            self.timeframe = wanted if wanted in snapshot.timeframes else snapshot.timeframes[0]
        state = snapshot.symbols.get(self.symbol)
        if state != self.state:
            self.state = state
        self.set_class(state is not None and state.stale, "-stale")
        signal = state.signal if state is not None else None
        votes = self.query_one(VoteTable)
        if signal != votes.signal:
            votes.signal = signal

    def _poll_candles(self) -> None:
        """Fetch candles for the chart; redraw only if they changed (≤ 2 Hz)."""
        if not self.timeframe:
            return
        chart = self.query_one(PriceChart)
        periods = self._ema_periods()
        # Fetch extra candles so even the slowest EMA is warmed up where the chart starts.
        limit = self._ui.chart_bars + max(periods)
        series = self._service.candles(self.symbol, self.timeframe, limit)
        self._candles_at = time.monotonic()
        if series == self._candles and periods == chart.ema_periods:
            return
        self._candles = series
        periods_changed = periods != chart.ema_periods
        chart.ema_periods = periods
        if series != chart.candles:
            chart.candles = series  # its watcher redraws
        elif periods_changed:
            chart.replot()
        self.query_one(RsiChart).candles = series
        tick = self.state.tick_size if self.state is not None else None
        decimals: int | None = None
        if tick:
            decimals = fmt.tick_decimals(tick)
        elif series is not None and series.close:
            decimals = fmt.series_decimals(series.close)
        if decimals is not None:
            self.query_one(TradePlanPanel).decimals = decimals
            self.query_one(SymbolHeader).decimals = decimals

    def _ema_periods(self) -> tuple[int, ...]:
        signal: Signal | None = self.state.signal if self.state is not None else None
        tf_signal = fmt.timeframe_of(signal, self.timeframe)
        return ema_periods_from(tf_signal.values if tf_signal is not None else {})

    def watch_timeframe(self) -> None:
        # Switch at once unless the charts were drawn less than 0.5 s ago; the candle timer
        # then picks the new timeframe up, keeping redraws at ≤ 2 Hz while keys repeat.
        if time.monotonic() - self._candles_at >= CANDLE_INTERVAL_S:
            self._poll_candles()

    # ---------------------------------------------------------------- actions

    def action_back(self) -> None:
        """Return to the signal table."""
        self.dismiss()

    def action_toggle_book(self) -> None:
        """Swap the charts for the order book pane, or back."""
        shown = not self.book_shown
        self.set_class(shown, "-book")
        self.query_one(OrderBookPane).display = shown
        self.query_one("#symbol-body").display = not shown
        if shown:
            self._poll_micro()

    def action_next_timeframe(self) -> None:
        """Show the next larger timeframe (wraps)."""
        self._step_timeframe(1)

    def action_previous_timeframe(self) -> None:
        """Show the next smaller timeframe (wraps)."""
        self._step_timeframe(-1)

    def action_select_timeframe(self, index: int) -> None:
        """Show the ``index``-th configured timeframe (0-based); out of range is ignored."""
        if 0 <= index < len(self.timeframes):
            self.timeframe = self.timeframes[index]

    def _step_timeframe(self, step: int) -> None:
        timeframes = self.timeframes
        if not timeframes:
            return
        index = timeframes.index(self.timeframe) if self.timeframe in timeframes else 0
        self.timeframe = timeframes[(index + step) % len(timeframes)]

    def action_pick(self) -> None:
        """Open the pick form prefilled from this symbol's plan."""
        open_pick_form(self, self._service, self.symbol)

    async def action_toggle_watch(self) -> None:
        """Add or remove this symbol on the watchlist (stored before the toast)."""
        desk = self._service.desk()
        if desk is None:
            self.notify("the watchlist needs the database", severity="warning")
            return
        watched = await desk.toggle_watch(self.symbol)
        self.notify(f"{self.symbol} {'added to' if watched else 'removed from'} the watchlist",
                    title="watchlist")

    async def action_export_candles(self) -> None:
        """Write the shown timeframe's candles and indicators to a timestamped CSV."""
        series = self._service.candles(self.symbol, self.timeframe, EXPORT_BARS)
        if series is None or not series.open_time:
            self.notify(f"no {self.timeframe} candles of {self.symbol} yet", severity="warning")
            return
        try:
            path = export.export_path(
                self.export_dir, f"{self.symbol}-{self.timeframe}", self._clock()
            )
            # The configured EMA periods are the ones the engine reported; other periods are
            # the defaults (the UI is not given the engine's [indicators] section).
            cfg = IndicatorConfig(ema_periods=list(self._ema_periods()))
            rows = await asyncio.to_thread(export.write_candles_csv, path, series, cfg)
        except OSError as exc:
            log.error("candle export failed: %s", exc)
            self.notify(f"candle export failed: {exc}", severity="error")
            return
        self.last_export = path
        self.notify(f"{rows} candles → {path}", title="exported")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        """Timeframe and navigation commands (see :mod:`tui.commands`)."""
        for timeframe in self.timeframes:
            yield PaletteCommand(
                f"Timeframe {timeframe}",
                f"Chart {self.symbol} on {timeframe}",
                partial(setattr, self, "timeframe", timeframe),
            )
        yield PaletteCommand(
            "Order book" if not self.book_shown else "Charts",
            "Order book, flow and derivatives" if not self.book_shown else "Candles and votes",
            self.action_toggle_book,
        )
        yield PaletteCommand("Back to signals", "Return to the signal table", self.action_back)
