"""Recorded klines as normalised events, for tests (real data from ../shared, never invented)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from feeds.events import Kline
from feeds.intervals import interval_ms

OhlcvRow = tuple[int | datetime, float, float, float, float, float]
"""(open time as ms UTC or an aware datetime, open, high, low, close, volume)."""


def ohlcv_rows(frame: pl.DataFrame) -> list[OhlcvRow]:
    """Rows of a freqtrade-style OHLCV frame (``date`` column) with open times in ms UTC."""
    return list(
        frame.select(pl.col("date").dt.epoch("ms"), "open", "high", "low", "close", "volume")
        .iter_rows()
    )


def klines_from_rows(
    rows: Iterable[OhlcvRow],
    symbol: str,
    interval: str,
    *,
    closed: bool = True,
    exchange_time_at_close: bool = False,
) -> list[Kline]:
    """One :class:`Kline` per OHLCV row.

    Args:
        rows: Recorded rows, oldest first.
        symbol: Venue symbol.
        interval: Interval code of the rows.
        closed: ``closed`` flag of every kline.
        exchange_time_at_close: Set ``exchange_time`` to the close time (when Binance sends
            the ``x=true`` update); otherwise 0, as for REST rows.
    """
    length = interval_ms(interval)
    out = []
    for t, o, h, low, c, v in rows:
        open_time = int(t.timestamp() * 1000) if isinstance(t, datetime) else int(t)
        close_time = open_time + length - 1
        out.append(
            Kline(
                symbol=symbol, interval=interval, open_time=open_time, close_time=close_time,
                open=o, high=h, low=low, close=c, volume=v, closed=closed,
                exchange_time=close_time if exchange_time_at_close else 0,
            )
        )
    return out
