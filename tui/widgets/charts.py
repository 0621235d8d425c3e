"""Candlestick + EMA chart and RSI chart of one symbol × timeframe (plotext).

Each chart subclasses textual-plotext's ``PlotextPlot`` and owns its ``self.plt`` (never the
module-global plotext). One ``replot()`` = ``plt.clear_data()`` → plot → ``refresh()``
(textual-plotext ``examples/textual_towers_weather.py``). The screen assigns new candles at
most twice a second and only when they changed; the charts compute their own overlays with
TA-Lib (EMA, RSI; TA-Lib's definitions: EMA seeded with the SMA of the first ``period``
closes, Wilder's RSI).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import talib
from textual.color import Color, ColorParseError
from textual.reactive import Reactive, reactive
from textual_plotext import PlotextPlot

from engine.models import CandleSeries
from tui import formatting as fmt

DEFAULT_EMA_PERIODS: tuple[int, ...] = (9, 21, 50, 200)
"""EMA overlays when the engine reports no ``ema_<n>`` readings."""

RSI_PERIOD = 14
"""RSI period of the chart (Wilder's 14, TA-Lib's default)."""

RGB = tuple[int, int, int]


def ema_periods_from(values: dict[str, float]) -> tuple[int, ...]:
    """EMA periods from a timeframe's readings (``ema_9``, ``ema_21``, ...), fastest first.

    Args:
        values: ``TimeframeSignal.values``.

    Returns:
        The periods found, or :data:`DEFAULT_EMA_PERIODS` when none are.
    """
    periods = []
    for name in values:
        prefix, _, number = name.partition("_")
        if prefix == "ema" and number.isdigit():
            periods.append(int(number))
    return tuple(sorted(periods)) or DEFAULT_EMA_PERIODS


def visible_bars(series: CandleSeries | None, bars: int, width: int) -> int:
    """Candles that fit: at most ``bars``, at most one per plot column (plotext overlaps
    candles drawn closer than a cell), at least 1 when there are any."""
    if series is None or not series.close:
        return 0
    # ~10 cells go to the y-axis labels and the frame.
    return max(1, min(len(series.close), bars, max(10, width - 10)))


def price_axis(series: CandleSeries, shown: int, count: int = 5) -> tuple[list[float], list[str]]:
    """Y ticks and labels for the last ``shown`` candles, labels with the price's decimals.

    The RSI chart pads its labels to the same width so both plots share one x axis.
    """
    start = len(series.close) - shown
    low = min(series.low[start:])
    high = max(series.high[start:])
    decimals = fmt.series_decimals(series.close[start:], last=shown)
    if high <= low:
        return [low], [fmt.format_price(low, decimals)]
    step = (high - low) / (count - 1)
    ticks = [low + step * i for i in range(count)]
    return ticks, [fmt.format_price(tick, decimals) for tick in ticks]


def _tick_positions(count: int, width: int, label_width: int) -> list[int]:
    slots = max(2, min(8, width // (label_width + 4)))
    if count <= 1:
        return [0]
    step = max(1, math.ceil((count - 1) / (slots - 1)))
    return list(range(0, count, step))


def _time_label(open_time: int, span_ms: int) -> str:
    # Intraday spans show the time only; multi-day spans show the date.
    if span_ms <= 86_400_000:
        return fmt.format_utc(open_time, with_date=False).rstrip("Z")
    return fmt.format_utc(open_time)[5:10] + " " + fmt.format_utc(open_time)[11:16]


class _ThemedPlot(PlotextPlot):
    """A candle-based plot: redraws when its candles change, when a resize changes how many
    candles fit, and when the theme changes (line colours follow its meaning colours)."""

    candles: Reactive[CandleSeries | None] = reactive(None, init=False, repaint=False)
    """Candles to draw from (may hold more than ``bars`` so indicators are warmed up)."""

    def __init__(self, *, bars: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bars = bars
        """Candles shown (the newest ones)."""
        self._shown = 0

    def watch_candles(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        # The number of candles that fit depends on the width: redraw only if it changed.
        if visible_bars(self.candles, self.bars, self.size.width) != self._shown:
            self.replot()

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())

    def _rgb(self, variable: str) -> RGB:
        value = self.app.theme_variables.get(variable, "")
        try:
            red, green, blue = Color.parse(value).rgb
        except ColorParseError:
            # A theme without this variable: a neutral grey still reads on dark and light.
            return (128, 128, 128)
        return (red, green, blue)

    def replot(self) -> None:
        """Redraw from the current data."""
        raise NotImplementedError


class PriceChart(_ThemedPlot):
    """Candlesticks of the last ``bars`` candles with EMA overlays."""

    def __init__(self, *, bars: int, id: str | None = None) -> None:
        """Create the chart.

        Args:
            bars: Candles shown (the newest ones).
            id: Widget id.
        """
        super().__init__(bars=bars, id=id)
        self.ema_periods: tuple[int, ...] = DEFAULT_EMA_PERIODS
        """EMA overlays, fastest first."""
        self.replots = 0
        """How many times the chart was redrawn (tests assert it stays low)."""

    def replot(self) -> None:
        """Redraw candles and EMAs from ``candles``."""
        plt = self.plt
        plt.clear_data()
        series = self.candles
        self.replots += 1
        if series is None or not series.close:
            plt.title("no candles yet")
            plt.xticks([], [])
            self.refresh()
            return
        closes = np.asarray(series.close, dtype=np.float64)
        shown = visible_bars(series, self.bars, self.size.width or 80)
        self._shown = shown
        start = len(closes) - shown
        # Candle index as x (plotext's stub types dates as str, but numbers are accepted and
        # keep the candles evenly spaced across gaps).
        x: Any = list(range(shown))
        data: dict[str, Any] = {
            "Open": list(series.open[start:]),
            "Close": list(series.close[start:]),
            "High": list(series.high[start:]),
            "Low": list(series.low[start:]),
        }
        plt.candlestick(x, data, colors=[self._rgb("success"), self._rgb("error")])
        # Fast EMAs bright, the slowest subdued (charting convention); never the candle colours.
        palette = ["primary-lighten-2", "warning", "foreground", "secondary-lighten-3"]
        for index, period in enumerate(self.ema_periods):
            ema = talib.EMA(closes, timeperiod=period)[start:]
            points = [(i, float(v)) for i, v in enumerate(ema) if not math.isnan(v)]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            plt.plot(
                list(xs),
                list(ys),
                marker="braille",
                color=self._rgb(palette[index % len(palette)]),
                label=f"EMA{period}",
            )
        times = series.open_time[start:]
        span = times[-1] - times[0] if len(times) > 1 else 0
        labels = [_time_label(t, span) for t in times]
        positions = _tick_positions(shown, self.size.width or 80, len(labels[0]))
        plt.xticks([float(i) for i in positions], [labels[i] for i in positions])
        plt.xlim(0, max(shown - 1, 1))
        ticks, tick_labels = price_axis(series, shown)
        plt.yticks(ticks, tick_labels)
        forming = " (last forming)" if series.forming_included else ""
        plt.title(f"{series.symbol} {series.timeframe} · {shown} candles{forming}")
        self.refresh()


class RsiChart(_ThemedPlot):
    """RSI of the same candles (same object as the price chart's), with the 30 / 70 bands."""

    def __init__(self, *, bars: int, period: int = RSI_PERIOD, id: str | None = None) -> None:
        """Create the chart.

        Args:
            bars: Candles shown (aligned with the price chart).
            period: RSI period.
            id: Widget id.
        """
        super().__init__(bars=bars, id=id)
        self.period = period
        """RSI period."""

    def replot(self) -> None:
        """Redraw the RSI line and its bands."""
        plt = self.plt
        plt.clear_data()
        series = self.candles
        plt.ylim(0, 100)
        plt.xticks([], [])
        if series is None or len(series.close) <= self.period:
            plt.yticks([30, 70], ["30", "70"])
            plt.title(f"RSI({self.period}) — not enough candles")
            self.refresh()
            return
        closes = np.asarray(series.close, dtype=np.float64)
        shown = visible_bars(series, self.bars, self.size.width or 80)
        self._shown = shown
        start = len(closes) - shown
        # Pad the labels to the price chart's label width so both x axes line up.
        width = max(len(label) for label in price_axis(series, shown)[1])
        plt.yticks([30, 70], [label.rjust(width) for label in ("30", "70")])
        rsi = talib.RSI(closes, timeperiod=self.period)[start:]
        points = [(i, float(v)) for i, v in enumerate(rsi) if not math.isnan(v)]
        plt.horizontal_line(70, color=self._rgb("error"))
        plt.horizontal_line(30, color=self._rgb("success"))
        if points:
            xs, ys = zip(*points, strict=True)
            plt.plot(list(xs), list(ys), marker="braille", color=self._rgb("primary"))
            # The title gives the value at the last *closed* candle, as the signal uses it.
            closed = rsi[-2] if series.forming_included and len(rsi) > 1 else rsi[-1]
            if not math.isnan(closed):
                plt.title(f"RSI({self.period}) {closed:.1f} at last close")
        plt.xlim(0, max(shown - 1, 1))
        self.refresh()
