"""Candle store: closed candles in numpy ring buffers plus the forming candle per series.

Only closed candles feed signals; the forming candle is kept apart (charts, last price).
Timeframes the stream does not provide are built from the base timeframe at UTC boundaries
(:func:`feeds.intervals.period_open`), so a ``4h`` candle opens at 00:00, 04:00, ... UTC.

Kline identity is ``(symbol, interval, open_time)`` (FEEDS.md §C.16): the forming candle is
upserted, never appended; a repeated ``x=true`` kline is idempotent; older klines are counted and
ignored; a jump in open times is counted as a gap and the candle is still appended.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.config import TimeframeConfig
from engine.models import CandleSeries
from feeds.events import Kline
from feeds.intervals import interval_ms, period_open

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_MS = 86_400_000

_Bar = tuple[int, float, float, float, float, float]
"""(open_time ms UTC, open, high, low, close, volume) of one candle."""

_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME = range(5)


@dataclass(frozen=True, slots=True, eq=False)
class ClosedArrays:
    """Closed candles of one series as column arrays, oldest first (owned copies).

    Attributes:
        open_time: Candle open times, ms UTC, ``int64``, shape ``(n,)``.
        open: Open prices, quote currency, ``float64``, shape ``(n,)``.
        high: High prices, quote currency.
        low: Low prices, quote currency.
        close: Close prices, quote currency.
        volume: Volume, base units.

    Raises:
        ValueError: if the columns differ in length or are not one-dimensional.
    """

    open_time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = self.open_time.shape
        for name in ("open", "high", "low", "close", "volume"):
            column: FloatArray = getattr(self, name)
            if column.ndim != 1 or column.shape != n:
                raise ValueError(
                    f"ClosedArrays.{name} has shape {column.shape}, expected {n} like open_time"
                )

    def __len__(self) -> int:
        return int(self.open_time.shape[0])

    @classmethod
    def empty(cls) -> ClosedArrays:
        """No candles."""
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f.copy(), f.copy(), f.copy(), f.copy())

    @classmethod
    def from_columns(
        cls,
        open_time: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
    ) -> ClosedArrays:
        """Build from any array-likes, converting to contiguous ``int64`` / ``float64`` copies."""

        def f64(values: npt.ArrayLike) -> FloatArray:
            return np.array(values, dtype=np.float64, copy=True, order="C")

        return cls(
            np.array(open_time, dtype=np.int64, copy=True, order="C"),
            f64(open),
            f64(high),
            f64(low),
            f64(close),
            f64(volume),
        )

    def window(self, start: int | None = None, stop: int | None = None) -> ClosedArrays:
        """Candles ``[start:stop]`` (Python slice semantics) as a new, owned copy."""
        s = slice(start, stop)
        return ClosedArrays(
            self.open_time[s].copy(),
            self.open[s].copy(),
            self.high[s].copy(),
            self.low[s].copy(),
            self.close[s].copy(),
            self.volume[s].copy(),
        )


@dataclass(frozen=True, slots=True)
class SeriesCounters:
    """Data-quality counters of one symbol × interval series.

    Attributes:
        gaps: Closed candles appended whose open time did not follow the previous one.
        out_of_order: Klines ignored because they were older than the stored candles.
        duplicates: Repeated ``x=true`` klines of the last closed candle (applied idempotently).
        implicit_closes: Candles finalised without their ``x=true`` kline (a newer candle
            arrived first, or for built timeframes the base candle ending the period never came).
        partial_periods: Built-timeframe periods skipped because base data started mid-period.
    """

    gaps: int
    out_of_order: int
    duplicates: int
    implicit_closes: int
    partial_periods: int


class _Ring:
    """Fixed-capacity ring buffer of closed candles, written twice so any tail is contiguous.

    Row ``i`` is stored at positions ``i`` and ``i + capacity``; the last ``count`` rows are then
    always the slice ``[head + capacity - count, head + capacity)``, copied without a concatenate.
    """

    __slots__ = ("capacity", "count", "head", "prices", "times")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.times: IntArray = np.zeros(2 * capacity, dtype=np.int64)
        self.prices: FloatArray = np.zeros((5, 2 * capacity), dtype=np.float64)
        self.head = 0
        self.count = 0

    def _window(self) -> tuple[int, int]:
        end = self.head + self.capacity
        return end - self.count, end

    def append(self, bar: _Bar) -> None:
        i = self.head
        j = i + self.capacity
        self.times[i] = self.times[j] = bar[0]
        values = bar[1:]
        self.prices[:, i] = values
        self.prices[:, j] = values
        self.head = (i + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def overwrite_last(self, bar: _Bar) -> None:
        i = (self.head - 1) % self.capacity
        values = bar[1:]
        self.prices[:, i] = values
        self.prices[:, i + self.capacity] = values

    def last(self) -> _Bar:
        i = (self.head - 1) % self.capacity
        p = self.prices[:, i]
        return (int(self.times[i]), float(p[0]), float(p[1]), float(p[2]), float(p[3]), float(p[4]))

    def times_view(self) -> IntArray:
        a, b = self._window()
        return self.times[a:b]

    def prices_view(self) -> FloatArray:
        a, b = self._window()
        return self.prices[:, a:b]

    def replace_all(self, times: IntArray, prices: FloatArray) -> None:
        """Replace the contents with ``times`` / ``prices`` (shape ``(5, n)``), keeping the tail."""
        times = times[-self.capacity :]
        prices = prices[:, -self.capacity :]
        n = int(times.shape[0])
        self.times[:n] = times
        self.times[self.capacity : self.capacity + n] = times
        self.prices[:, :n] = prices
        self.prices[:, self.capacity : self.capacity + n] = prices
        self.count = n
        self.head = n % self.capacity


class _Series:
    """Closed candles (ring) and the forming candle of one symbol × interval."""

    __slots__ = (
        "duplicates",
        "forming",
        "forming_time",
        "gaps",
        "implicit_closes",
        "interval_ms",
        "last_open",
        "out_of_order",
        "partial_periods",
        "ring",
    )

    def __init__(self, interval: str, capacity: int) -> None:
        self.interval_ms = interval_ms(interval)
        self.ring = _Ring(capacity)
        self.forming: _Bar | None = None
        self.forming_time = 0
        self.last_open = -1
        self.gaps = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.implicit_closes = 0
        self.partial_periods = 0

    def push_closed(self, bar: _Bar) -> bool:
        """Append a closed candle; returns True when a new candle was appended or the last one
        changed."""
        t = bar[0]
        if t < self.last_open:
            self.out_of_order += 1
            return False
        if t == self.last_open:
            self.duplicates += 1
            if self.ring.last() == bar:
                return False
            # A corrected final value (e.g. the real x=true after an implicit close) wins.
            self.ring.overwrite_last(bar)
            return True
        if self.last_open >= 0 and t != self.last_open + self.interval_ms:
            self.gaps += 1
        self.ring.append(bar)
        self.last_open = t
        if self.forming is not None and self.forming[0] <= t:
            self.forming = None
        return True

    def merge_history(self, bars: list[_Bar]) -> None:
        """Merge closed REST rows with the stored ones; the REST value wins on equal open time."""
        old_times = self.ring.times_view()
        old_prices = self.ring.prices_view()
        new_times = np.fromiter((b[0] for b in bars), dtype=np.int64, count=len(bars))
        new_prices = np.array([b[1:] for b in bars], dtype=np.float64).reshape(-1, 5).T
        gaps_before = _count_gaps(old_times, self.interval_ms)
        keep = ~np.isin(old_times, new_times)
        times = np.concatenate([old_times[keep], new_times])
        prices = np.concatenate([old_prices[:, keep], new_prices], axis=1)
        order = np.argsort(times, kind="stable")
        times = times[order]
        prices = prices[:, order]
        self.ring.replace_all(times, prices)
        kept = self.ring.times_view()
        self.gaps += max(0, _count_gaps(kept, self.interval_ms) - gaps_before)
        self.last_open = int(kept[-1]) if kept.shape[0] else -1
        if self.forming is not None and self.forming[0] <= self.last_open:
            self.forming = None

    def arrays(self) -> ClosedArrays:
        times = self.ring.times_view()
        p = self.ring.prices_view()
        return ClosedArrays(
            times.copy(),
            p[_OPEN].copy(),
            p[_HIGH].copy(),
            p[_LOW].copy(),
            p[_CLOSE].copy(),
            p[_VOLUME].copy(),
        )

    def view(self) -> ClosedArrays:
        times = self.ring.times_view()
        p = self.ring.prices_view()
        return ClosedArrays(times, p[_OPEN], p[_HIGH], p[_LOW], p[_CLOSE], p[_VOLUME])

    def counters(self) -> SeriesCounters:
        return SeriesCounters(
            gaps=self.gaps,
            out_of_order=self.out_of_order,
            duplicates=self.duplicates,
            implicit_closes=self.implicit_closes,
            partial_periods=self.partial_periods,
        )


def _count_gaps(times: IntArray, step: int) -> int:
    if times.shape[0] < 2:
        return 0
    return int(np.count_nonzero(np.diff(times) != step))


class _Aggregator:
    """Builds one higher timeframe from closed and forming base candles of one symbol.

    ``acc`` holds the period's candle accumulated from *closed* base candles (or continued from a
    backfilled forming candle); the forming base candle is merged into a view only, so forming
    updates never accumulate. ``covered`` is the base open time up to which base candles are
    already contained in the higher-timeframe data: such candles may still raise the high, lower
    the low and move the close (idempotent), but never add volume again.
    """

    __slots__ = ("acc", "acc_last", "base_ms", "covered", "htf_ms", "series", "skipped_period")

    def __init__(self, series: _Series, base_ms: int) -> None:
        self.series = series
        self.htf_ms = series.interval_ms
        self.base_ms = base_ms
        self.covered = -1
        self.acc: list[float] | None = None
        self.acc_last = -1
        self.skipped_period = -1

    def _period(self, t: int) -> int:
        return t - t % self.htf_ms

    def _finalise(self, implicit: bool) -> bool:
        acc = self.acc
        assert acc is not None
        self.acc = None
        if implicit:
            self.series.implicit_closes += 1
        bar: _Bar = (int(acc[0]), acc[1], acc[2], acc[3], acc[4], acc[5])
        return self.series.push_closed(bar)

    def _skip(self, period: int) -> None:
        if period != self.skipped_period:
            self.skipped_period = period
            self.series.partial_periods += 1

    def on_base_closed(self, bar: _Bar) -> bool:
        """Fold in one closed base candle; True when the higher-timeframe candle closed."""
        t = bar[0]
        period = self._period(t)
        closed = False
        acc = self.acc
        if acc is not None and acc[0] < period:
            # The base candle ending the old period never came (gap): close what we have.
            closed = self._finalise(implicit=True)
            acc = None
        elif acc is not None and acc[0] > period:
            return False
        if t <= self.covered:
            if acc is not None and acc[0] == period:
                acc[2] = max(acc[2], bar[2])
                acc[3] = min(acc[3], bar[3])
                if t >= self.acc_last:
                    acc[4] = bar[4]
                    self.acc_last = t
        elif acc is None:
            if t != period:
                self._skip(period)
                return closed
            self.acc = acc = [float(period), bar[1], bar[2], bar[3], bar[4], bar[5]]
            self.acc_last = t
            self.covered = t
        else:
            acc[2] = max(acc[2], bar[2])
            acc[3] = min(acc[3], bar[3])
            acc[4] = bar[4]
            acc[5] += bar[5]
            self.acc_last = t
            self.covered = t
        if acc is not None and t + self.base_ms == acc[0] + self.htf_ms:
            closed = self._finalise(implicit=False) or closed
        return closed

    def on_base_forming(self, bar: _Bar | None) -> bool:
        """Refresh the higher-timeframe forming candle; True if a stale period was closed."""
        closed = False
        acc = self.acc
        if bar is not None and acc is not None and acc[0] < self._period(bar[0]):
            closed = self._finalise(implicit=True)
            acc = None
        self.series.forming = self._forming_view(bar, acc)
        return closed

    def _forming_view(self, bar: _Bar | None, acc: list[float] | None) -> _Bar | None:
        if bar is None:
            if acc is None:
                return None
            return (int(acc[0]), acc[1], acc[2], acc[3], acc[4], acc[5])
        t = bar[0]
        period = self._period(t)
        if acc is not None and acc[0] == period:
            high = max(acc[2], bar[2])
            low = min(acc[3], bar[3])
            close = bar[4] if t >= self.acc_last else acc[4]
            # A base candle already contained in the backfilled candle adds no volume.
            volume = acc[5] if t <= self.covered else acc[5] + bar[5]
            return (period, acc[1], high, low, close, volume)
        if acc is None and t == period and t > self.covered:
            return (period, bar[1], bar[2], bar[3], bar[4], bar[5])
        if acc is None and t > self.covered:
            self._skip(period)
        return None

    def continue_from_history(self, forming: _Bar | None, covered: int) -> None:
        """Align with backfilled history: closed candles up to the series' last one, and
        ``forming`` (if any) containing base candles opened at or before ``covered``."""
        last = self.series.last_open
        if last >= 0:
            self.covered = max(self.covered, last + self.htf_ms - self.base_ms)
            if self.acc is not None and self.acc[0] <= last:
                self.acc = None
        if forming is not None and forming[0] > last:
            self.acc = list(forming)
            self.acc[0] = float(forming[0])
            self.acc_last = covered
            self.covered = max(self.covered, covered)


@dataclass(frozen=True, slots=True)
class _SymbolSeries:
    series: dict[str, _Series]
    aggregators: dict[str, _Aggregator]


class CandleStore:
    """Candles of every symbol × timeframe, fed by REST backfill and kline stream events.

    Args:
        timeframes: Timeframes kept and their capacities (:meth:`TimeframeConfig.bars_for`).
        base_timeframe: The streamed interval higher timeframes are built from (normally the
            smallest streamed one). It is kept even when it is not in ``timeframes``.
        streamed: Intervals the kline stream delivers. Every configured timeframe not in it is
            built from ``base_timeframe``.

    Raises:
        ValueError: if ``base_timeframe`` is not streamed, or a built timeframe is not a whole
            multiple of the base interval larger than it.
    """

    def __init__(
        self, timeframes: TimeframeConfig, base_timeframe: str, streamed: Collection[str]
    ) -> None:
        self._config = timeframes
        self.base_timeframe = base_timeframe
        self.streamed = frozenset(streamed)
        for code in self.streamed:
            interval_ms(code)
        if base_timeframe not in self.streamed:
            raise ValueError(f"base timeframe {base_timeframe!r} must be one of the streamed ones")
        self._base_ms = interval_ms(base_timeframe)
        self.built: tuple[str, ...] = tuple(
            tf for tf in timeframes.timeframes if tf not in self.streamed
        )
        for tf in self.built:
            ms = interval_ms(tf)
            if ms <= self._base_ms or ms % self._base_ms:
                raise ValueError(
                    f"timeframe {tf!r} is not streamed and cannot be built from {base_timeframe!r}"
                )
        self.kept: tuple[str, ...] = tuple(
            sorted(set(timeframes.timeframes) | self.streamed, key=interval_ms)
        )
        self._symbols: dict[str, _SymbolSeries] = {}
        self.ignored_klines = 0
        """Klines of an interval the store does not keep (or of a built timeframe)."""

    # -- access ---------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> _SymbolSeries:
        entry = self._symbols.get(symbol)
        if entry is None:
            series = {tf: _Series(tf, self._config.bars_for(tf)) for tf in self.kept}
            aggregators = {tf: _Aggregator(series[tf], self._base_ms) for tf in self.built}
            entry = self._symbols[symbol] = _SymbolSeries(series, aggregators)
        return entry

    def symbols(self) -> Iterator[str]:
        """Symbols with any stored series."""
        return iter(self._symbols)

    def drop(self, symbol: str) -> None:
        """Forget every series of ``symbol`` (delisting, universe change)."""
        self._symbols.pop(symbol, None)

    def _get(self, symbol: str, timeframe: str) -> _Series | None:
        entry = self._symbols.get(symbol)
        return None if entry is None else entry.series.get(timeframe)

    def closed_count(self, symbol: str, timeframe: str) -> int:
        """Closed candles stored for the series (0 if unknown)."""
        series = self._get(symbol, timeframe)
        return 0 if series is None else series.ring.count

    def counters(self, symbol: str, timeframe: str) -> SeriesCounters | None:
        """Data-quality counters of the series, ``None`` if unknown."""
        series = self._get(symbol, timeframe)
        return None if series is None else series.counters()

    def forming(self, symbol: str, timeframe: str) -> _Bar | None:
        """The forming candle ``(open_time, open, high, low, close, volume)`` or ``None``."""
        series = self._get(symbol, timeframe)
        return None if series is None else series.forming

    def arrays(self, symbol: str, timeframe: str) -> ClosedArrays:
        """Copies of the closed candles (safe to hand to another thread); empty if unknown."""
        series = self._get(symbol, timeframe)
        return ClosedArrays.empty() if series is None else series.arrays()

    def view(self, symbol: str, timeframe: str) -> ClosedArrays:
        """The closed candles as views into the store (no copy); empty if unknown.

        Valid only until the store next changes (any applied kline or backfill): read them at
        once, in the thread that feeds the store, and keep nothing. :meth:`arrays` copies.
        """
        series = self._get(symbol, timeframe)
        return ClosedArrays.empty() if series is None else series.view()

    def series(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """The last ``limit`` candles, the forming one last when present; ``None`` if unknown.

        Raises:
            ValueError: if ``limit`` is smaller than 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        s = self._get(symbol, timeframe)
        if s is None:
            return None
        forming = s.forming
        times_all = s.ring.times_view()
        n_closed = min(limit - 1 if forming is not None else limit, int(times_all.shape[0]))
        start = int(times_all.shape[0]) - n_closed
        prices = s.ring.prices_view()[:, start:]
        cols: list[list[Any]] = [times_all[start:].tolist()]
        cols.extend(prices[k].tolist() for k in range(5))
        if forming is not None:
            for col, value in zip(cols, forming, strict=True):
                col.append(value)
        return CandleSeries(
            symbol=symbol,
            timeframe=timeframe,
            open_time=tuple(cols[0]),
            open=tuple(cols[1]),
            high=tuple(cols[2]),
            low=tuple(cols[3]),
            close=tuple(cols[4]),
            volume=tuple(cols[5]),
            forming_included=forming is not None,
        )

    def last_price(self, symbol: str) -> float | None:
        """Latest close (forming candle first) of the smallest kept timeframe with data."""
        entry = self._symbols.get(symbol)
        if entry is None:
            return None
        for tf in self.kept:
            s = entry.series[tf]
            if s.forming is not None:
                return s.forming[4]
            if s.ring.count:
                return s.ring.last()[4]
        return None

    def change_24h_pct(self, symbol: str) -> float | None:
        """24 h change in percent from candles: the latest close (forming candle included) vs the
        close of the candle opened 24 h earlier, on the smallest kept timeframe that has it."""
        entry = self._symbols.get(symbol)
        if entry is None:
            return None
        for tf in self.kept:
            s = entry.series[tf]
            if DAY_MS % s.interval_ms:
                continue
            if s.forming is not None:
                latest = s.forming
            elif s.ring.count:
                latest = s.ring.last()
            else:
                continue
            times = s.ring.times_view()
            target = latest[0] - DAY_MS
            i = int(np.searchsorted(times, target))
            if i < times.shape[0] and times[i] == target:
                ref = float(s.ring.prices_view()[_CLOSE, i])
                if ref > 0:
                    return (latest[4] / ref - 1.0) * 100.0
        return None

    # -- input ----------------------------------------------------------------------------

    def apply(self, kline: Kline) -> list[tuple[str, str]]:
        """Apply one stream kline.

        Returns:
            The ``(symbol, timeframe)`` series that closed a candle (or corrected their last
            closed one) because of this kline, built timeframes included.
        """
        tf = kline.interval
        if tf not in self.streamed:
            self.ignored_klines += 1
            return []
        entry = self._symbol(kline.symbol)
        s = entry.series[tf]
        t = kline.open_time
        bar: _Bar = (t, kline.open, kline.high, kline.low, kline.close, kline.volume)
        result: list[tuple[str, str]] = []
        if t <= s.last_open:
            if t == s.last_open and kline.closed:
                # Repeated x=true: idempotent; a corrected value replaces the candle (built
                # timeframes keep what they folded in — a REST backfill reconciles them).
                if s.push_closed(bar):
                    result.append((kline.symbol, tf))
            else:
                s.out_of_order += 1
            return result
        forming = s.forming
        closed_bars: list[_Bar] = []
        if forming is not None:
            if t < forming[0] or (
                t == forming[0]
                and not kline.closed
                and 0 < kline.exchange_time < s.forming_time
            ):
                s.out_of_order += 1
                return result
            if t > forming[0]:
                # x=true never came for the forming candle; a late one corrects it (duplicate).
                s.implicit_closes += 1
                s.push_closed(forming)
                closed_bars.append(forming)
        if kline.closed:
            s.push_closed(bar)
            closed_bars.append(bar)
            s.forming = None
        else:
            s.forming = bar
            s.forming_time = kline.exchange_time
        if closed_bars:
            result.append((kline.symbol, tf))
        if tf == self.base_timeframe:
            for htf, agg in entry.aggregators.items():
                closed = False
                for b in closed_bars:
                    closed = agg.on_base_closed(b) or closed
                closed = agg.on_base_forming(s.forming) or closed
                if closed:
                    result.append((kline.symbol, htf))
        return result

    def load_history(
        self,
        symbol: str,
        timeframe: str,
        klines: Sequence[Kline],
        *,
        as_of: int | None = None,
    ) -> None:
        """Merge REST backfill rows (oldest first; only the last may be forming).

        Closed rows are merged by open time (the REST value wins over a stored candle with the
        same open time); a forming last row becomes the forming candle unless a newer candle is
        stored. Base-timeframe rows newer than the stored ones also build the higher timeframes.
        For a built timeframe, a forming last row is *continued*: base candles it already
        contains add no volume when they stream in.

        Args:
            symbol: Venue symbol.
            timeframe: Interval of every row.
            klines: Rows, oldest first.
            as_of: When the REST response was taken (ms UTC). It tells which base candles a
                forming built-timeframe row already contains (those opened before ``as_of``; the
                one containing ``as_of`` partly). If ``None``: the row's ``recv_time`` if set,
                else the base series' latest candle in the period, else the whole period
                (volume then undercounts rather than double counts).

        Raises:
            ValueError: if the timeframe is not kept, a row has another symbol or interval, or a
                row other than the last is not closed.
        """
        if timeframe not in self.kept:
            raise ValueError(f"{symbol}: timeframe {timeframe!r} is not kept by the candle store")
        for i, k in enumerate(klines):
            if k.symbol != symbol or k.interval != timeframe:
                raise ValueError(
                    f"{symbol} {timeframe} history row {i} is {k.symbol} {k.interval}"
                )
            if not k.closed and i != len(klines) - 1:
                raise ValueError(
                    f"{symbol} {timeframe} history row {i} (open {k.open_time}) is not closed "
                    "but is not the last row"
                )
        if not klines:
            return
        entry = self._symbol(symbol)
        s = entry.series[timeframe]
        rows: dict[int, _Bar] = {}
        for k in klines:
            if k.closed:
                rows[k.open_time] = (k.open_time, k.open, k.high, k.low, k.close, k.volume)
        last_k = klines[-1]
        forming: _Bar | None = None
        if not last_k.closed:
            forming = (
                last_k.open_time, last_k.open, last_k.high, last_k.low, last_k.close, last_k.volume
            )
        previous_last = s.last_open
        bars = [rows[t] for t in sorted(rows)]
        if bars:
            s.merge_history(bars)
        if (
            forming is not None
            and forming[0] > s.last_open
            and (s.forming is None or s.forming[0] <= forming[0])
        ):
            s.forming = forming
            s.forming_time = last_k.exchange_time
        if timeframe in entry.aggregators:
            agg = entry.aggregators[timeframe]
            own = forming if forming is not None and forming[0] > s.last_open else None
            covered = -1
            if own is not None:
                covered = self._covered_by_forming(entry, own[0], interval_ms(timeframe), as_of,
                                                   last_k.recv_time)
            agg.continue_from_history(own, covered)
            base = entry.series[self.base_timeframe]
            agg.on_base_forming(base.forming)
        elif timeframe == self.base_timeframe:
            fresh = [b for b in bars if b[0] > previous_last]
            for agg in entry.aggregators.values():
                for b in fresh:
                    agg.on_base_closed(b)
                agg.on_base_forming(s.forming)

    def _covered_by_forming(
        self, entry: _SymbolSeries, period: int, htf_ms: int, as_of: int | None, recv_time: int
    ) -> int:
        """Open time of the last base candle (partly) contained in a backfilled forming
        higher-timeframe candle opened at ``period``."""
        last_in_period = period + htf_ms - self._base_ms
        stamp = as_of if as_of is not None else (recv_time or None)
        if stamp is not None:
            covered = period_open(stamp - 1, self.base_timeframe)
        else:
            base = entry.series[self.base_timeframe]
            latest = base.forming[0] if base.forming is not None else base.last_open
            covered = latest if period <= latest <= last_in_period else last_in_period
            log.debug(
                "%s: no as_of for the forming %d ms candle at %d; assuming base candles up to %d "
                "are included", self.base_timeframe, htf_ms, period, covered,
            )
        return min(max(covered, period - self._base_ms), last_in_period)
