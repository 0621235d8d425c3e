"""Kline history for replay: OHLCV files (feather, parquet, CSV) → per-symbol kline series.

``PATH`` is a folder or one file. Each file holds one symbol's candles with a time column
(``date``, ``open_time`` or ``timestamp``: ms epoch integers (s/µs/ns are recognised by
magnitude), ISO-8601 text or datetimes; naive times are UTC) and ``open``, ``high``, ``low``,
``close``, ``volume``. The symbol, interval and kind come from the file name:

* freqtrade: ``BTC_USDT_USDT-5m-futures.feather`` → BTCUSDT 5m trade klines;
  ``…-8h-mark.feather`` / ``…-1h-mark.feather`` → mark-price klines;
  ``…-8h-funding_rate.feather`` → funding-rate history (rate in the ``open`` column,
  ``date`` = funding time).
* generic: ``BTCUSDT_klines.csv``, ``BTCUSDT-1h.parquet`` → the first name token is the
  symbol; an interval token (``5m``) is used when present, else the interval is the most
  common step between candles.

Several intervals of one symbol (1m, 5m, 1h) are all kept. :meth:`KlineHistory.candles`
serves an interval from its own file when there is one, else aggregates it from the finest
file whose interval divides it, at UTC boundaries (open = first open, high = max, low = min,
close = last close, volume = sum); only complete periods are served. Periods one finer file
does not cover completely are taken from the next finer file that does.

A corrupt or unusable file raises :class:`ReplayDataError` naming the file; when a folder is
loaded the other files still load, and the skipped ones are logged and listed in
:attr:`KlineHistory.skipped`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from feeds.intervals import INTERVAL_MS, interval_from_ms, interval_ms
from feeds.replay.errors import ReplayDataError
from feeds.replay.wire import decimals_of, fmt

logger = logging.getLogger(__name__)

KLINE_SUFFIXES = (".feather", ".arrow", ".ipc", ".parquet", ".csv")
"""File extensions read as kline/funding tables."""

TIME_COLUMNS = ("date", "open_time", "timestamp", "time", "datetime")
"""Accepted names of the candle open-time column (case-insensitive), in order of preference."""

OHLCV = ("open", "high", "low", "close", "volume")

Kind = Literal["futures", "mark", "funding_rate"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_FREQTRADE = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?"
    r"-(?P<tf>\d+[mhdwM])(?:-(?P<kind>futures|mark|funding_rate|spot|index|premiumIndex))?$"
)
_INTERVAL_TOKEN = re.compile(r"^\d+[mhd]$")


class KlineFileName(NamedTuple):
    """What a file name says about its content.

    Attributes:
        symbol: Exchange symbol, upper case (``BTCUSDT``).
        interval: Interval code from the name, or ``None`` when the name does not say.
        kind: ``futures`` (trade-price klines), ``mark`` (mark-price klines) or
            ``funding_rate`` (funding history).
    """

    symbol: str
    interval: str | None
    kind: Kind


def parse_kline_file_name(path: Path) -> KlineFileName | None:
    """Symbol, interval and kind from a kline file name; ``None`` if it names no symbol.

    ``BTC_USDT_USDT-5m-futures.feather`` → ``("BTCUSDT", "5m", "futures")``;
    ``XRP_USDT_USDT-8h-funding_rate.feather`` → ``("XRPUSDT", "8h", "funding_rate")``;
    ``BTCUSDT_klines.csv`` → ``("BTCUSDT", None, "futures")``.
    """
    stem = path.name
    for suffix in KLINE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    match = _FREQTRADE.match(stem)
    if match:
        kind_text = match["kind"] or "futures"
        kind: Kind
        if kind_text in ("mark", "funding_rate"):
            kind = kind_text  # type: ignore[assignment]
        elif kind_text in ("futures", "spot"):
            kind = "futures"
        else:
            return None  # index / premium-index klines are not replayed
        return KlineFileName(match["base"] + match["quote"], match["tf"], kind)
    tokens = [t for t in re.split(r"[_\-\s.]+", stem) if t]
    if not tokens or not re.fullmatch(r"[A-Za-z0-9]+", tokens[0]) or tokens[0].isdigit():
        return None
    lowered = [t.lower() for t in tokens[1:]]
    interval = next((t for t in tokens[1:] if _INTERVAL_TOKEN.match(t)), None)
    generic_kind: Kind = "futures"
    if "mark" in lowered:
        generic_kind = "mark"
    elif "funding" in lowered or "fundingrate" in lowered:
        generic_kind = "funding_rate"
    return KlineFileName(tokens[0].upper(), interval, generic_kind)


class Candle(NamedTuple):
    """One candle's state (complete, or partial while forming).

    Attributes:
        open_ms: Open time, ms UTC.
        open: First price, quote currency.
        high: Highest price so far, quote currency.
        low: Lowest price so far, quote currency.
        close: Last price so far, quote currency.
        volume: Base-asset volume so far.
        quote_volume: Quote volume so far, **estimated** as Σ volume × (o+h+l+c)/4 over the
            recorded candles, because the files keep OHLCV only.
    """

    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float


@dataclass(eq=False)
class KlineSeries:
    """Sorted, de-duplicated candles of one symbol and interval (numpy columns).

    Attributes:
        symbol: Exchange symbol (``BTCUSDT``).
        interval: Interval code (``5m``).
        open_ms: Candle open times, ms UTC, strictly increasing, aligned to the interval.
        open: Open prices, quote currency.
        high: High prices, quote currency.
        low: Low prices, quote currency.
        close: Close prices, quote currency.
        volume: Base-asset volumes.
        quote_volume: Quote volumes, estimated (see :class:`Candle`).
        source: The file it was read from, or ``"aggregated from 5m"``.
    """

    symbol: str
    interval: str
    open_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64
    source: str

    @property
    def interval_ms(self) -> int:
        """Candle length in ms."""
        return interval_ms(self.interval)

    def __len__(self) -> int:
        return len(self.open_ms)

    def index_of(self, open_ms: int) -> int | None:
        """Row index of the candle opening at ``open_ms``, ``None`` if absent."""
        idx = int(np.searchsorted(self.open_ms, open_ms))
        if idx < len(self.open_ms) and int(self.open_ms[idx]) == open_ms:
            return idx
        return None

    def candle(self, idx: int) -> Candle:
        """Row ``idx`` as a :class:`Candle`."""
        return Candle(
            int(self.open_ms[idx]),
            float(self.open[idx]),
            float(self.high[idx]),
            float(self.low[idx]),
            float(self.close[idx]),
            float(self.volume[idx]),
            float(self.quote_volume[idx]),
        )

    def partial(self, start: int, count: int) -> Candle:
        """Aggregate of rows ``start .. start+count-1`` (a forming candle's state)."""
        stop = start + count
        return Candle(
            int(self.open_ms[start]),
            float(self.open[start]),
            float(self.high[start:stop].max()),
            float(self.low[start:stop].min()),
            float(self.close[stop - 1]),
            float(self.volume[start:stop].sum()),
            float(self.quote_volume[start:stop].sum()),
        )

    def binance_rows(
        self, start: int, stop: int, price_decimals: int, qty_decimals: int
    ) -> list[list[object]]:
        """Rows ``start .. stop-1`` in ``GET /fapi/v1/klines`` array form.

        Row: ``[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume",
        trades, "takerBuyBase", "takerBuyQuote", "0"]``. Trade count and taker-buy volumes are
        not in the files and are sent as 0. Built per request (≤ 1500 rows, a few ms).
        """
        length = self.interval_ms
        sl = slice(start, stop)
        return [
            [
                t,
                fmt(o, price_decimals),
                fmt(h, price_decimals),
                fmt(lo, price_decimals),
                fmt(c, price_decimals),
                fmt(v, qty_decimals),
                t + length - 1,
                fmt(q, 8),
                0,
                "0",
                "0",
                "0",
            ]
            for t, o, h, lo, c, v, q in zip(
                self.open_ms[sl].tolist(),
                self.open[sl].tolist(),
                self.high[sl].tolist(),
                self.low[sl].tolist(),
                self.close[sl].tolist(),
                self.volume[sl].tolist(),
                self.quote_volume[sl].tolist(),
                strict=True,
            )
        ]


def candle_row(
    candle: Candle, interval: str, price_decimals: int, qty_decimals: int
) -> list[object]:
    """One candle in ``GET /fapi/v1/klines`` array form (see :meth:`KlineSeries.binance_rows`)."""
    return [
        candle.open_ms,
        fmt(candle.open, price_decimals),
        fmt(candle.high, price_decimals),
        fmt(candle.low, price_decimals),
        fmt(candle.close, price_decimals),
        fmt(candle.volume, qty_decimals),
        candle.open_ms + interval_ms(interval) - 1,
        fmt(candle.quote_volume, 8),
        0,
        "0",
        "0",
        "0",
    ]


@dataclass(eq=False)
class FundingSeries:
    """Funding-rate history of one symbol.

    Attributes:
        symbol: Exchange symbol.
        time_ms: Funding times, ms UTC, increasing.
        rate: Funding rate at each time, as a fraction per funding interval.
        source: The file it was read from.
    """

    symbol: str
    time_ms: I64
    rate: F64
    source: str


class SkippedFile(NamedTuple):
    """A file left out of the replay, and why."""

    path: Path
    reason: str


def aggregate(series: KlineSeries, interval: str) -> KlineSeries:
    """Candles of ``interval`` built from the finer ``series`` at UTC boundaries.

    open = first open, high = max, low = min, close = last close, volume = sum (Binance
    kline semantics). Only periods with every constituent candle present are kept.

    Raises:
        ValueError: if ``interval`` is not a whole multiple of the series' interval.
    """
    length = interval_ms(interval)
    step = series.interval_ms
    if length % step or length < step:
        raise ValueError(f"{interval} cannot be built from {series.interval} candles")
    n = length // step
    if len(series) == 0:
        return _empty_series(series.symbol, interval, f"aggregated from {series.interval}")
    buckets = series.open_ms - series.open_ms % length
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    counts = np.diff(np.r_[starts, len(buckets)])
    complete = counts == n
    ends = starts + counts - 1
    high = np.maximum.reduceat(series.high, starts)
    low = np.minimum.reduceat(series.low, starts)
    volume = np.add.reduceat(series.volume, starts)
    quote = np.add.reduceat(series.quote_volume, starts)
    return KlineSeries(
        symbol=series.symbol,
        interval=interval,
        open_ms=buckets[starts][complete],
        open=series.open[starts][complete],
        high=high[complete],
        low=low[complete],
        close=series.close[ends][complete],
        volume=volume[complete],
        quote_volume=quote[complete],
        source=f"aggregated from {series.interval}",
    )


def _empty_series(symbol: str, interval: str, source: str) -> KlineSeries:
    empty_f = np.zeros(0, dtype=np.float64)
    return KlineSeries(
        symbol,
        interval,
        np.zeros(0, dtype=np.int64),
        empty_f,
        empty_f,
        empty_f,
        empty_f,
        empty_f,
        empty_f,
        source,
    )


def _union(parts: list[KlineSeries], interval: str) -> KlineSeries:
    """Merge series of one interval; for a period present in several, the first part wins."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_series("", interval, "no data")
    if len(parts) == 1:
        return parts[0]
    opens = np.concatenate([p.open_ms for p in parts])
    uniq, first = np.unique(opens, return_index=True)  # sorted; index of first occurrence

    def take(name: str) -> F64:
        col: F64 = np.concatenate([getattr(p, name) for p in parts])[first]
        return col

    return KlineSeries(
        symbol=parts[0].symbol,
        interval=interval,
        open_ms=uniq.astype(np.int64),
        open=take("open"),
        high=take("high"),
        low=take("low"),
        close=take("close"),
        volume=take("volume"),
        quote_volume=take("quote_volume"),
        source=" + ".join(p.source for p in parts),
    )


# --------------------------------------------------------------------------- file reading


def _read_table(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".feather", ".arrow", ".ipc"):
            return pl.read_ipc(path)
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)
    except Exception as exc:  # polars/pyarrow raise many types for a bad file
        kind = suffix.lstrip(".")
        raise ReplayDataError(path, f"cannot read as {kind}: {exc}") from exc
    raise ReplayDataError(path, f"unsupported file type {suffix!r}")


def _time_ms(path: Path, column: pl.Series) -> I64:
    """Convert a time column to ms UTC."""
    dtype = column.dtype
    name = column.name
    if column.null_count():
        raise ReplayDataError(path, f"column {name!r} has {column.null_count()} empty time(s)")
    if isinstance(dtype, pl.Datetime):
        out = column.dt.epoch("ms")
    elif dtype == pl.Date:
        out = column.cast(pl.Datetime("ms")).dt.epoch("ms")
    elif dtype.is_integer() or dtype.is_float():
        values = column.cast(pl.Float64)
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        biggest = float(values.abs().max())  # type: ignore[arg-type]
        # Epoch magnitude tells the unit: ~1.7e9 s, 1.7e12 ms, 1.7e15 µs, 1.7e18 ns.
        if biggest < 1e11:
            scale = 1000.0
        elif biggest < 1e14:
            scale = 1.0
        elif biggest < 1e17:
            scale = 1e-3
        else:
            scale = 1e-6
        out = (values * scale).round(0).cast(pl.Int64)
    elif dtype == pl.String:
        try:
            parsed = column.str.strip_chars().str.to_datetime(time_unit="ms", strict=True)
        except Exception as exc:
            raise ReplayDataError(
                path, f"column {name!r} is neither epoch numbers nor ISO-8601 times: {exc}"
            ) from exc
        out = parsed.dt.epoch("ms")
    else:
        raise ReplayDataError(path, f"column {name!r} has unsupported type {dtype}")
    array: I64 = out.to_numpy().astype(np.int64)
    return array


def _float_column(path: Path, frame: pl.DataFrame, name: str) -> F64:
    column = frame[name]
    try:
        values = column.cast(pl.Float64, strict=True)
    except Exception as exc:
        raise ReplayDataError(path, f"column {name!r} is not numeric ({column.dtype})") from exc
    array: F64 = values.to_numpy().astype(np.float64)
    return array


def read_kline_table(path: Path) -> tuple[I64, dict[str, F64]]:
    """Read one kline/funding file: (time ms UTC sorted and unique, OHLCV columns).

    Duplicate times keep the last row; rows with an empty or NaN price are dropped; both are
    logged with their count.

    Raises:
        ReplayDataError: unreadable file, no time column, missing OHLCV column(s),
            non-numeric values or no rows.
    """
    frame = _read_table(path)
    lower = {c.lower().strip(): c for c in frame.columns}
    time_name = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    if time_name is None:
        raise ReplayDataError(
            path,
            f"no time column (expected one of {', '.join(TIME_COLUMNS)}; "
            f"found {', '.join(frame.columns) or 'none'})",
        )
    missing = [c for c in OHLCV if c not in lower]
    if missing:
        raise ReplayDataError(
            path,
            f"missing column(s) {', '.join(missing)} (found {', '.join(frame.columns)})",
        )
    if frame.height == 0:
        raise ReplayDataError(path, "no rows")
    times = _time_ms(path, frame[time_name])
    cols = {c: _float_column(path, frame, lower[c]) for c in OHLCV}
    cols["volume"] = np.nan_to_num(cols["volume"], nan=0.0)
    order = np.argsort(times, kind="stable")
    times = times[order]
    cols = {k: v[order] for k, v in cols.items()}
    # Keep the last of duplicate times (a later download overwrote the candle).
    keep = np.r_[times[1:] != times[:-1], True]
    if not keep.all():
        logger.warning("%s: dropped %d duplicate time(s)", path, int((~keep).sum()))
        times = times[keep]
        cols = {k: v[keep] for k, v in cols.items()}
    return times, cols


def _kline_series(path: Path, name: KlineFileName) -> KlineSeries:
    times, cols = read_kline_table(path)
    prices_ok = np.isfinite(cols["open"]) & np.isfinite(cols["high"])
    prices_ok &= np.isfinite(cols["low"]) & np.isfinite(cols["close"])
    if not prices_ok.all():
        logger.warning("%s: dropped %d row(s) without prices", path, int((~prices_ok).sum()))
        times = times[prices_ok]
        cols = {k: v[prices_ok] for k, v in cols.items()}
    if len(times) == 0:
        raise ReplayDataError(path, "no rows with prices")
    steps = np.diff(times)
    common_step: int | None = None
    if len(steps):
        values, counts = np.unique(steps, return_counts=True)
        common_step = int(values[counts.argmax()])
    interval = name.interval
    if interval is not None and interval not in INTERVAL_MS:
        raise ReplayDataError(path, f"unsupported interval {interval!r} in the file name")
    if interval is None:
        if common_step is None:
            raise ReplayDataError(path, "one candle only and no interval in the file name")
        try:
            interval = interval_from_ms(common_step)
        except ValueError:
            raise ReplayDataError(
                path, f"candles are {common_step} ms apart, which is no kline interval"
            ) from None
    elif common_step is not None and common_step != interval_ms(interval):
        raise ReplayDataError(
            path,
            f"file name says {interval} but candles are mostly {common_step} ms apart",
        )
    misaligned = int((times % interval_ms(interval) != 0).sum())
    if misaligned:
        raise ReplayDataError(
            path, f"{misaligned} candle open time(s) not on {interval} UTC boundaries"
        )
    quote = cols["volume"] * (cols["open"] + cols["high"] + cols["low"] + cols["close"]) / 4.0
    return KlineSeries(
        symbol=name.symbol,
        interval=interval,
        open_ms=times,
        open=cols["open"],
        high=cols["high"],
        low=cols["low"],
        close=cols["close"],
        volume=cols["volume"],
        quote_volume=quote,
        source=str(path),
    )


def _funding_series(path: Path, name: KlineFileName) -> FundingSeries:
    times, cols = read_kline_table(path)
    rates = cols["open"]
    ok = np.isfinite(rates)
    if not ok.all():
        logger.warning("%s: dropped %d funding row(s) without a rate", path, int((~ok).sum()))
    return FundingSeries(name.symbol, times[ok], rates[ok], str(path))


# --------------------------------------------------------------------------- history


class KlineHistory:
    """All kline, mark-price and funding data of a replay, by symbol.

    Attributes:
        klines: symbol → interval → trade-price klines read from files.
        marks: symbol → interval → mark-price klines read from files.
        funding: symbol → funding-rate history.
        skipped: Files left out, with the reason (also logged as warnings).
    """

    def __init__(self) -> None:
        self.klines: dict[str, dict[str, KlineSeries]] = {}
        self.marks: dict[str, dict[str, KlineSeries]] = {}
        self.funding: dict[str, FundingSeries] = {}
        self.skipped: list[SkippedFile] = []
        self._derived: dict[tuple[str, str], KlineSeries | None] = {}
        self._decimals: dict[str, tuple[int, int]] = {}

    @property
    def symbols(self) -> list[str]:
        """Symbols with trade-price klines, sorted."""
        return sorted(self.klines)

    def add(self, path: Path, name: KlineFileName) -> None:
        """Load one file into the history.

        Raises:
            ReplayDataError: the file is unusable or duplicates an already loaded one.
        """
        if name.kind == "funding_rate":
            if name.symbol in self.funding:
                raise ReplayDataError(path, f"second funding file for {name.symbol}")
            self.funding[name.symbol] = _funding_series(path, name)
            return
        series = _kline_series(path, name)
        target = self.marks if name.kind == "mark" else self.klines
        per_symbol = target.setdefault(name.symbol, {})
        if series.interval in per_symbol:
            raise ReplayDataError(
                path,
                f"second {series.interval} {name.kind} file for {name.symbol} "
                f"(first: {per_symbol[series.interval].source})",
            )
        per_symbol[series.interval] = series
        self._derived.clear()
        self._decimals.pop(name.symbol, None)

    def file_intervals(self, symbol: str) -> list[str]:
        """Intervals with a trade-kline file for ``symbol``, shortest first."""
        return sorted(self.klines.get(symbol, {}), key=interval_ms)

    def _finer_files(self, symbol: str, interval: str) -> list[KlineSeries]:
        """Files of intervals shorter than ``interval`` that divide it, finest first."""
        length = interval_ms(interval)
        files = self.klines.get(symbol, {})
        return [
            files[i]
            for i in self.file_intervals(symbol)
            if interval_ms(i) < length and length % interval_ms(i) == 0
        ]

    def candles(self, symbol: str, interval: str) -> KlineSeries | None:
        """Complete candles of ``interval`` for ``symbol`` (file, else aggregated).

        Returns ``None`` when the symbol is unknown or no file can make this interval.

        Raises:
            ValueError: unknown interval code.
        """
        interval_ms(interval)
        files = self.klines.get(symbol)
        if files is None:
            return None
        if interval in files:
            return files[interval]
        key = (symbol, interval)
        if key not in self._derived:
            parts = [aggregate(f, interval) for f in self._finer_files(symbol, interval)]
            self._derived[key] = _union(parts, interval) if parts else None
        return self._derived[key]

    def constituents(
        self, symbol: str, interval: str, open_ms: int
    ) -> tuple[KlineSeries, int, int] | None:
        """The finest finer file covering every constituent of one candle.

        Returns:
            ``(series, first_row, count)`` such that rows ``first_row .. first_row+count-1``
            of ``series`` are exactly the candle's constituents, or ``None``.
        """
        length = interval_ms(interval)
        for series in self._finer_files(symbol, interval):
            step = series.interval_ms
            count = length // step
            first = int(np.searchsorted(series.open_ms, open_ms))
            last = first + count - 1
            if (
                last < len(series)
                and int(series.open_ms[first]) == open_ms
                and int(series.open_ms[last]) == open_ms + length - step
            ):
                return series, first, count
        return None

    def forming(self, symbol: str, interval: str, open_ms: int, now_ms: int) -> Candle | None:
        """State at ``now_ms`` of the candle opening at ``open_ms`` (``open_ms`` ≤ ``now_ms``).

        The state aggregates the finer candles already closed at ``now_ms``; with none closed
        yet (or no finer file) it is the state at the open: o = h = l = c = open, volume 0.
        Prices are never made up: every value is a recorded open/high/low/close.
        """
        length = interval_ms(interval)
        if now_ms >= open_ms + length:
            series = self.candles(symbol, interval)
            idx = series.index_of(open_ms) if series is not None else None
            return series.candle(idx) if series is not None and idx is not None else None
        full = self.constituents(symbol, interval, open_ms)
        if full is not None:
            series, first, count = full
            done = min((now_ms - open_ms) // series.interval_ms, count - 1)
            if done >= 1:
                return series.partial(first, done)
            return _at_open(open_ms, float(series.open[first]))
        complete = self.candles(symbol, interval)
        idx = complete.index_of(open_ms) if complete is not None else None
        if complete is not None and idx is not None:
            return _at_open(open_ms, float(complete.open[idx]))
        # A period no file covers completely (the end of the data): use the closed prefix.
        for series in self._finer_files(symbol, interval):
            step = series.interval_ms
            first = int(np.searchsorted(series.open_ms, open_ms))
            if first >= len(series) or int(series.open_ms[first]) != open_ms:
                continue
            closed_until = min(now_ms, open_ms + length) - step  # last open that closed
            stop = int(np.searchsorted(series.open_ms, closed_until, side="right"))
            done = stop - first
            if done >= 1 and int(series.open_ms[stop - 1]) == open_ms + (done - 1) * step:
                return series.partial(first, done)
            return _at_open(open_ms, float(series.open[first]))
        return None

    def finest(self, symbol: str, now_ms: int | None = None) -> KlineSeries | None:
        """Finest trade-kline file of ``symbol`` that reaches ``now_ms`` (else the latest)."""
        files = [self.klines[symbol][i] for i in self.file_intervals(symbol)]
        if not files:
            return None
        if now_ms is not None:
            for series in files:
                if len(series) and int(series.open_ms[-1]) + series.interval_ms >= now_ms:
                    return series
        return max(files, key=lambda s: int(s.open_ms[-1]) + s.interval_ms if len(s) else 0)

    def trading_until(self, symbol: str) -> int | None:
        """Close time (ms UTC, exclusive) of the symbol's last recorded trade candle.

        After it the recording says nothing about the contract (data ends, delisting), so the
        replay stops publishing it, as Binance stops publishing a delisted contract.
        """
        ends = [
            int(series.open_ms[-1]) + series.interval_ms
            for interval in self.file_intervals(symbol)
            if len(series := self.klines[symbol][interval])
        ]
        return max(ends) if ends else None

    def mark_at(self, symbol: str, now_ms: int) -> float | None:
        """Latest mark price known at ``now_ms`` from mark klines, ``None`` without one.

        Inside a mark candle that is its open (the close is not known yet); after the last
        candle, its close. The finest mark file that has a candle at or before ``now_ms``
        is used.
        """
        marks = self.marks.get(symbol, {})
        for interval in sorted(marks, key=interval_ms):
            series = marks[interval]
            idx = int(np.searchsorted(series.open_ms, now_ms, side="right")) - 1
            if idx < 0:
                continue
            if now_ms >= int(series.open_ms[idx]) + series.interval_ms:
                return float(series.close[idx])
            return float(series.open[idx])
        return None

    def last_close(self, symbol: str, now_ms: int) -> float | None:
        """Close of the latest trade candle closed at ``now_ms`` (finest file)."""
        series = self.finest(symbol, now_ms)
        if series is None:
            return None
        idx = int(np.searchsorted(series.open_ms, now_ms - series.interval_ms, side="right")) - 1
        if idx < 0:
            return None
        return float(series.close[idx])

    def funding_at(self, symbol: str, now_ms: int) -> float | None:
        """Latest settled funding rate at ``now_ms`` (the first one before any settled)."""
        funding = self.funding.get(symbol)
        if funding is None or len(funding.time_ms) == 0:
            return None
        idx = int(np.searchsorted(funding.time_ms, now_ms, side="right")) - 1
        return float(funding.rate[max(idx, 0)])

    def decimals(self, symbol: str) -> tuple[int, int]:
        """(price decimals, quantity decimals) the recorded values need, capped at 8."""
        if symbol not in self._decimals:
            files = [self.klines[symbol][i] for i in self.file_intervals(symbol)]
            prices = [np.concatenate([s.open, s.high, s.low, s.close]) for s in files]
            volumes = [s.volume for s in files]
            price_dec = decimals_of(np.concatenate(prices)) if prices else 2
            qty_dec = decimals_of(np.concatenate(volumes)) if volumes else 3
            self._decimals[symbol] = (price_dec, qty_dec)
        return self._decimals[symbol]


def _at_open(open_ms: int, price: float) -> Candle:
    return Candle(open_ms, price, price, price, price, 0.0, 0.0)


def kline_files(path: Path) -> list[Path]:
    """Kline/funding files under ``path`` (a file, or a folder searched non-recursively)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in KLINE_SUFFIXES)


def load_kline_history(path: Path, symbols: Iterable[str] | None = None) -> KlineHistory:
    """Load a kline file or folder.

    Args:
        path: A kline file, or a folder of them (not searched recursively).
        symbols: Load only these symbols (``BTCUSDT``, case-insensitive); ``None`` = all.

    Returns:
        The history; files that could not be used are in ``skipped`` and logged.

    Raises:
        ReplayDataError: ``path`` does not exist; a single file given as ``path`` is
            unusable; or no usable trade-kline file was found.
    """
    if not path.exists():
        raise ReplayDataError(path, "no such file or folder")
    wanted = {s.upper() for s in symbols} if symbols is not None else None
    history = KlineHistory()
    files = kline_files(path)
    for file in files:
        name = parse_kline_file_name(file)
        if name is None:
            reason = "cannot tell the symbol from the file name"
            if path.is_file():
                raise ReplayDataError(file, reason)
            history.skipped.append(SkippedFile(file, reason))
            logger.warning("skipping %s: %s", file, reason)
            continue
        if wanted is not None and name.symbol not in wanted:
            continue
        try:
            history.add(file, name)
        except ReplayDataError as exc:
            if path.is_file():
                raise
            history.skipped.append(SkippedFile(file, exc.reason))
            logger.warning("skipping %s", exc)
    if not history.klines:
        if wanted is not None:
            raise ReplayDataError(path, f"no trade-kline file for {', '.join(sorted(wanted))}")
        detail = ""
        if history.skipped:
            first = history.skipped[0]
            detail = f"; skipped: {first.path.name}: {first.reason}"
        raise ReplayDataError(path, f"no usable trade-kline file{detail}")
    if wanted is not None and wanted - set(history.klines):
        logger.warning(
            "%s: no trade klines for %s", path, ", ".join(sorted(wanted - set(history.klines)))
        )
    # Mark/funding data for a symbol without trade klines cannot be replayed.
    for extra in sorted((set(history.marks) | set(history.funding)) - set(history.klines)):
        history.marks.pop(extra, None)
        history.funding.pop(extra, None)
    return history
