"""Shared helpers for storage tests: recorded kline files read in place from ../shared/data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import polars as pl
import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.events import Kline
from tests.recorded import klines_from_rows

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KLINES_DIR = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"


def _recorded_klines(base: str, interval: str, count: int, offset: int = 0) -> list[Kline]:
    """Closed klines of ``<BASE>USDT`` from the recorded freqtrade feather file.

    The files keep only OHLCV, so ``quote_volume`` and ``trades`` are 0.
    """
    path = KLINES_DIR / f"{base}_USDT_USDT-{interval}-futures.feather"
    frame = pl.read_ipc(path).slice(offset, count)
    return klines_from_rows(frame.iter_rows(), f"{base}USDT", interval)


WS_CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"


@pytest.fixture
def ctk_kline_updates() -> list[Kline]:
    """Every recorded ``ctkusdt@kline_1m`` update (2021-07-22), as closed-flagged klines.

    Successive updates of one candle are two real versions of the same open time; they
    carry quote volume and trade count, which the freqtrade files lack.
    """
    decoder = BinanceFrameDecoder()
    out: list[Kline] = []
    for line in WS_CAPTURE.read_text().splitlines():
        _, sep, payload = line.partition(": ")
        if not sep or '"ctkusdt@kline_1m"' not in payload:
            continue
        _, events = decoder.decode_frame(payload, 0)
        out.extend(
            msgspec.structs.replace(event, closed=True, exchange_time=0)
            for event in events
            if isinstance(event, Kline)
        )
    assert out, f"no ctkusdt kline frames in {WS_CAPTURE}"
    return out


RecordedKlines = Callable[..., list[Kline]]


@pytest.fixture
def recorded_klines() -> RecordedKlines:
    """``recorded_klines(base, interval, count, offset=0)`` → closed klines from the files."""
    return _recorded_klines


@pytest.fixture
def btc_5m() -> list[Kline]:
    """The first 300 recorded BTCUSDT 5m klines (2023-07-04 12:35 UTC onward)."""
    return _recorded_klines("BTC", "5m", 300)
