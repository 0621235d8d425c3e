"""Helpers turning the recorded feather klines into engine inputs (imported by engine tests).

Everything here reads the real recorded files in place; nothing is synthesised except the
event envelope (a Kline per recorded row; close time = next open - 1 ms as on Binance).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl

from engine.candles import ClosedArrays
from feeds.events import Kline
from feeds.intervals import interval_ms
from tests.recorded import klines_from_rows

KLINES_DIR = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-usdm" / "klines"
    / "alpergulsen-freqtrade"
).resolve()

ALL_BASES = sorted(
    {p.name.split("_")[0] for p in KLINES_DIR.glob("*_USDT_USDT-5m-futures.feather")}
)
"""The 55 recorded bases (``BTC`` → ``BTCUSDT``)."""
BASES_WITH_1H = sorted(
    {p.name.split("_")[0] for p in KLINES_DIR.glob("*_USDT_USDT-1h-futures.feather")}
)
BASES_WITH_1M = sorted(
    {p.name.split("_")[0] for p in KLINES_DIR.glob("*_USDT_USDT-1m-futures.feather")}
)


@functools.lru_cache(maxsize=256)
def frame(base: str, timeframe: str) -> pl.DataFrame:
    """Recorded ``<base>USDT`` klines: ``open_time`` (ms UTC, int64) + OHLCV, oldest first."""
    path = KLINES_DIR / f"{base}_USDT_USDT-{timeframe}-futures.feather"
    df = pl.read_ipc(path)
    return df.select(
        pl.col("date").dt.epoch("ms").alias("open_time"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    ).sort("open_time")


def raw_frame(base: str, kind: str) -> pl.DataFrame:
    """A recorded file as stored (e.g. ``8h-funding_rate``: ``open`` = funding rate), plus
    ``t`` = ``date`` in ms UTC."""
    df = pl.read_ipc(KLINES_DIR / f"{base}_USDT_USDT-{kind}.feather")
    return df.with_columns(pl.col("date").dt.epoch("ms").alias("t"))


def aggregate(df: pl.DataFrame, timeframe: str, source_timeframe: str) -> pl.DataFrame:
    """Complete ``timeframe`` candles from ``df`` (polars ``group_by_dynamic`` at UTC
    boundaries, periods with every source candle only) — an independent reference."""
    every = interval_ms(timeframe)
    need = every // interval_ms(source_timeframe)
    return (
        df.with_columns(pl.from_epoch("open_time", time_unit="ms").alias("date"))
        .group_by_dynamic("date", every=timeframe, closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("n"),
        )
        .filter(pl.col("n") == need)
        .select(
            pl.col("date").dt.epoch("ms").alias("open_time"),
            "open",
            "high",
            "low",
            "close",
            "volume",
        )
    )


def arrays(df: pl.DataFrame) -> ClosedArrays:
    """Columns of ``df`` as :class:`ClosedArrays`."""
    return ClosedArrays.from_columns(
        df["open_time"].to_numpy(),
        df["open"].to_numpy(),
        df["high"].to_numpy(),
        df["low"].to_numpy(),
        df["close"].to_numpy(),
        df["volume"].to_numpy(),
    )


def klines(
    df: pl.DataFrame, symbol: str, timeframe: str, *, closed: bool = True
) -> list[Kline]:
    """One Kline per row; ``exchange_time`` = close time (when Binance sends ``x=true``)."""
    return klines_from_rows(
        df.iter_rows(), symbol, timeframe, closed=closed, exchange_time_at_close=True
    )


def as_kline(row: tuple[int, float, float, float, float, float], symbol: str, timeframe: str,
             *, closed: bool, exchange_time: int | None = None) -> Kline:
    """One row ``(open_time, o, h, l, c, v)`` as a Kline."""
    t, o, h, lo, c, v = row
    close_time = t + interval_ms(timeframe) - 1
    return Kline(
        symbol=symbol,
        interval=timeframe,
        open_time=t,
        close_time=close_time,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        closed=closed,
        exchange_time=close_time if exchange_time is None else exchange_time,
    )


def rows(df: pl.DataFrame) -> list[tuple[int, float, float, float, float, float]]:
    """Rows of ``df`` as tuples."""
    return list(df.iter_rows())


def assert_arrays_equal(got: ClosedArrays, want: ClosedArrays, *, volume_rtol: float = 0.0) -> None:
    """OHLC and open times exactly, volume within ``volume_rtol``."""
    np.testing.assert_array_equal(got.open_time, want.open_time)
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_allclose(got.volume, want.volume, rtol=volume_rtol, atol=0)
