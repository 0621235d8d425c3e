"""Parquet cache of closed klines, one file per exchange, symbol and interval.

Layout: ``<root>/<exchange>/<SYMBOL>/<interval>.parquet`` (root is ``<data_dir>/klines``),
e.g. ``klines/binanceusdm/BTCUSDT/5m.parquet``. Columns:

* ``open_time`` Int64: candle open time, ms UTC (the key);
* ``open``, ``high``, ``low``, ``close`` Float64: prices, quote currency;
* ``volume`` Float64: traded volume, base units;
* ``quote_volume`` Float64: traded volume, quote currency;
* ``trades`` Int64: number of trades.

Only closed candles are cached: a forming candle changes until it closes, and the exchange is
the source of truth for it. The cache is a pure optimisation; a corrupt file is moved aside
(``*.corrupt``) and treated as empty, so the data is simply fetched again.

The methods do blocking file I/O: call them through ``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from feeds.events import Kline
from feeds.intervals import interval_ms

logger = logging.getLogger(__name__)

SCHEMA: dict[str, type[pl.DataType]] = {
    "open_time": pl.Int64,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "quote_volume": pl.Float64,
    "trades": pl.Int64,
}
"""Column name → polars dtype of every cache file, in file order."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class KlineCache:
    """Closed-kline cache on local disk (parquet via polars).

    Args:
        root: Cache root directory (``<data_dir>/klines``); created on first write.
        exchange: Exchange id used as the first path level (ccxt id, ``binanceusdm``).
        max_rows: Candles kept per file, the most recent ones (50 000 = 173 days of 5m,
            35 days of 1m); ``None`` keeps everything. Bounds disk use and load time.

    Thread safety: writes are serialised by an internal lock, so concurrent ``merge`` calls
    from worker threads never interleave on one file.
    """

    def __init__(
        self, root: Path, *, exchange: str = "binanceusdm", max_rows: int | None = 50_000
    ) -> None:
        if not _NAME.match(exchange):
            raise ValueError(f"invalid exchange id for the kline cache: {exchange!r}")
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"max_rows must be ≥ 1 or None, got {max_rows}")
        self.max_rows = max_rows
        self.root = Path(root)
        self.exchange = exchange
        self._lock = threading.Lock()

    def path(self, symbol: str, interval: str) -> Path:
        """File holding ``symbol``/``interval`` candles.

        Raises:
            ValueError: if the symbol has characters unsafe in a path or the interval is
                unknown.
        """
        if not _NAME.match(symbol) or symbol in {".", ".."}:
            raise ValueError(f"invalid symbol for the kline cache: {symbol!r}")
        interval_ms(interval)  # raises ValueError naming the allowed codes
        return self.root / self.exchange / symbol.upper() / f"{interval}.parquet"

    def load(self, symbol: str, interval: str) -> list[Kline]:
        """Cached closed candles of ``symbol``/``interval``, ascending by open time.

        Duplicated open times keep the last row written. A missing file gives ``[]``; an
        unreadable one is logged, renamed to ``*.corrupt`` and gives ``[]``.
        """
        with self._lock:
            frame = self._read(self.path(symbol, interval))
        return _to_klines(frame, symbol.upper(), interval)

    def merge(self, symbol: str, interval: str, klines: Iterable[Kline]) -> list[Kline]:
        """Upsert the closed candles of ``klines`` into the cache and return the result.

        Rows with ``closed=False`` are ignored. A cached row with the same open time is
        replaced by the new one (the newer REST value wins). Only the latest ``max_rows``
        candles are kept. The file is written to a
        temporary file in the same directory and renamed over the old one, so a crash never
        leaves a half-written cache.

        Returns:
            Every cached closed candle after the merge, ascending by open time.

        Raises:
            ValueError: if a kline belongs to another symbol or interval.
            OSError: if the file cannot be written.
        """
        symbol = symbol.upper()
        rows = []
        for kline in klines:
            if kline.symbol.upper() != symbol or kline.interval != interval:
                raise ValueError(
                    f"kline {kline.symbol} {kline.interval} @ {kline.open_time} given to the "
                    f"{symbol} {interval} cache"
                )
            if kline.closed:
                rows.append(
                    (
                        kline.open_time,
                        kline.open,
                        kline.high,
                        kline.low,
                        kline.close,
                        kline.volume,
                        kline.quote_volume,
                        kline.trades,
                    )
                )
        path = self.path(symbol, interval)
        with self._lock:
            existing = self._read(path)
            if not rows:
                return _to_klines(existing, symbol, interval)
            new = pl.DataFrame(rows, schema=SCHEMA, orient="row")
            merged = _normalise(pl.concat([existing, new], how="vertical"))
            if self.max_rows is not None:
                merged = merged.tail(self.max_rows)
            self._write(path, merged)
        return _to_klines(merged, symbol, interval)

    def _read(self, path: Path) -> pl.DataFrame:
        if not path.exists():
            return _empty()
        try:
            frame = pl.read_parquet(path)
            missing = [name for name in SCHEMA if name not in frame.columns]
            if missing:
                raise ValueError(f"missing columns {', '.join(missing)}")
            frame = frame.select(
                [pl.col(name).cast(dtype, strict=True) for name, dtype in SCHEMA.items()]
            )
            nulls = [name for name in SCHEMA if frame[name].null_count()]
            if nulls:
                raise ValueError(f"null values in {', '.join(nulls)}")
        except Exception as exc:  # any decode failure means the file is unusable
            aside = path.with_name(path.name + ".corrupt")
            logger.warning(
                "kline cache file %s is unreadable (%s); moved to %s and refetching",
                path,
                _short(exc),
                aside.name,
            )
            try:
                os.replace(path, aside)
            except OSError as move_exc:
                logger.warning("could not move %s aside: %s", path, move_exc)
            return _empty()
        return _normalise(frame)

    def _write(self, path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    # keep="last" with maintain_order: of duplicated open times the row appended last wins.
    return frame.unique(subset="open_time", keep="last", maintain_order=True).sort("open_time")


def _to_klines(frame: pl.DataFrame, symbol: str, interval: str) -> list[Kline]:
    length = interval_ms(interval)
    return [
        Kline(
            symbol=symbol,
            interval=interval,
            open_time=open_time,
            close_time=open_time + length - 1,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            quote_volume=quote_volume,
            trades=trades,
            closed=True,
        )
        for open_time, open_, high, low, close, volume, quote_volume, trades in frame.iter_rows()
    ]


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
