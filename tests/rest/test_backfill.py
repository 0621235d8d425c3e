"""Klines and backfill through ccxt against the loopback replay server of recorded klines,
with and without the parquet cache."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
from rest_support import DAY0_MS, KLINES_DIR, START_MS, MakeRest, StartReplay

from feeds.events import Kline
from feeds.intervals import interval_ms, period_open
from feeds.replay.server import ReplayServer
from feeds.rest import BackfillResult, BinanceRest, RestError
from storage.kline_cache import KlineCache

BARS = {"5m": 1200, "15m": 200, "1h": 100, "4h": 30}
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
HOUR_MS = 3_600_000


def recorded_rows(symbol: str, interval: str) -> dict[int, tuple[float, ...]]:
    """open_time → (open, high, low, close, volume) from the recorded feather file."""
    base = symbol.removesuffix("USDT")
    frame = pl.read_ipc(KLINES_DIR / f"{base}_USDT_USDT-{interval}-futures.feather")
    return {
        int(date.timestamp() * 1000): (o, h, low, c, v)
        for date, o, h, low, c, v in frame.iter_rows()
    }


async def served_klines(
    server: ReplayServer, symbol: str, interval: str, start: int, limit: int
) -> list[list[Any]]:
    """Raw ``/fapi/v1/klines`` rows straight from the server (no ccxt, no project parser)."""
    params = {"symbol": symbol, "interval": interval, "startTime": str(start), "limit": str(limit)}
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.rest_url + "/fapi/v1/klines", params=params) as response,
    ):
        assert response.status == 200
        rows: list[list[Any]] = await response.json()
        return rows


def as_wire(k: Kline) -> tuple[Any, ...]:
    return (
        k.open_time,
        k.close_time,
        k.open,
        k.high,
        k.low,
        k.close,
        k.volume,
        k.quote_volume,
        k.trades,
    )


def row_tuple(row: list[Any]) -> tuple[Any, ...]:
    return (
        row[0],
        row[6],
        float(row[1]),
        float(row[2]),
        float(row[3]),
        float(row[4]),
        float(row[5]),
        float(row[7]),
        row[8],
    )


def kline_requests(server: ReplayServer, start: int = 0) -> list[dict[str, str]]:
    return [query for _, path, query in server.rest_log[start:] if path == "/fapi/v1/klines"]


async def run_backfill(
    rest: BinanceRest, cache: KlineCache | None, symbols: list[str] = SYMBOLS
) -> tuple[BackfillResult, dict[tuple[str, str], list[Kline]], list[tuple[int, int]]]:
    got: dict[tuple[str, str], list[Kline]] = {}
    progress: list[tuple[int, int]] = []

    def on_series(symbol: str, tf: str, klines: list[Kline]) -> None:
        assert (symbol, tf) not in got
        got[(symbol, tf)] = klines

    result = await rest.backfill(
        symbols,
        list(BARS),
        BARS.__getitem__,
        cache=cache,
        on_series=on_series,
        progress=lambda done, total: progress.append((done, total)),
    )
    return result, got, progress


def check_shape(got: dict[tuple[str, str], list[Kline]], now: int) -> None:
    for (symbol, tf), klines in got.items():
        length = interval_ms(tf)
        assert len(klines) == BARS[tf] + 1, (symbol, tf)
        assert all(k.symbol == symbol and k.interval == tf for k in klines)
        assert [k.closed for k in klines] == [True] * BARS[tf] + [False]
        assert klines[-1].open_time == period_open(now, tf)
        opens = [k.open_time for k in klines]
        assert opens == list(range(opens[0], opens[0] + len(opens) * length, length))


async def test_klines_mark_the_forming_candle(replay: StartReplay, make_rest: MakeRest) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    recorded = recorded_rows("BTCUSDT", "5m")

    latest = await rest.klines("BTCUSDT", "5m", limit=3)
    assert [k.open_time for k in latest] == [DAY0_MS - 300_000, DAY0_MS, DAY0_MS + 300_000]
    assert [k.closed for k in latest] == [True, True, False]
    for k in latest[:2]:
        assert (k.open, k.high, k.low, k.close, k.volume) == recorded[k.open_time]
    assert latest[-1].close_time >= START_MS

    since = DAY0_MS - 3 * HOUR_MS
    history = await rest.klines("btcusdt", "1h", since_ms=since, limit=3)
    assert [k.open_time for k in history] == [since, since + HOUR_MS, since + 2 * HOUR_MS]
    assert all(k.closed for k in history)
    assert history[0].close_time == since + HOUR_MS - 1

    forming_4h = await rest.klines("ETHUSDT", "4h", limit=1)
    assert len(forming_4h) == 1
    assert forming_4h[0].open_time == DAY0_MS
    assert not forming_4h[0].closed


async def test_klines_bad_arguments(replay: StartReplay, make_rest: MakeRest) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    with pytest.raises(ValueError, match="limit"):
        await rest.klines("BTCUSDT", "5m", limit=1501)
    with pytest.raises(ValueError, match="interval"):
        await rest.klines("BTCUSDT", "7m", limit=10)
    with pytest.raises(RestError, match="NOPEUSDT") as info:
        await rest.klines("NOPEUSDT", "5m", limit=10)
    assert "\n" not in str(info.value)
    assert kline_requests(server) == []  # refused before any klines request


async def test_backfill_equals_recorded_and_served_klines(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    result, got, progress = await run_backfill(rest, cache=None)

    assert result.failed == ()
    assert result.loaded == result.series == 8
    assert result.cached_bars == 0
    assert progress == [(i, 8) for i in range(1, 9)]
    assert set(got) == {(s, tf) for s in SYMBOLS for tf in BARS}
    check_shape(got, START_MS)
    backfill_requests = kline_requests(server)

    # 1200 + 1 bars of 5m: two pages, the second starting right after the first
    window_start = period_open(START_MS, "5m") - 1200 * 300_000
    pages = [q for q in backfill_requests if q["symbol"] == "BTCUSDT" and q["interval"] == "5m"]
    assert [int(q["startTime"]) for q in pages] == [window_start, window_start + 1000 * 300_000]
    assert all(int(q["limit"]) <= 1000 for q in backfill_requests)

    for (symbol, tf), klines in got.items():
        if tf in ("5m", "1h"):  # these come from recorded files of their own
            recorded = recorded_rows(symbol, tf)
            for k in klines[:-1]:
                assert (k.open, k.high, k.low, k.close, k.volume) == recorded[k.open_time]
        # every timeframe (15m/4h are aggregated by the server) equals what the server serves
        rows = await served_klines(server, symbol, tf, klines[0].open_time, len(klines))
        assert [as_wire(k) for k in klines] == [row_tuple(r) for r in rows]


async def test_second_backfill_fetches_only_the_tail(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path
) -> None:
    cache = KlineCache(tmp_path / "klines")
    first_server = await replay()
    first, got_first, _ = await run_backfill(make_rest(first_server.rest_url), cache)
    assert first.failed == ()
    for symbol in SYMBOLS:
        for tf in BARS:
            assert (tmp_path / "klines" / "binanceusdm" / symbol / f"{tf}.parquet").is_file()
    first_requests = kline_requests(first_server)

    # One hour later: the cache covers everything up to the first run's last closed candle.
    later = START_MS + HOUR_MS
    server = await replay(start_ms=later)
    second, got, _ = await run_backfill(make_rest(server.rest_url), cache)
    assert second.failed == ()
    tail_requests = kline_requests(server)
    check_shape(got, later)

    for symbol in SYMBOLS:
        for tf in BARS:
            last_cached = got_first[(symbol, tf)][-2].open_time  # last closed of run one
            queries = [q for q in tail_requests if q["symbol"] == symbol and q["interval"] == tf]
            assert [int(q["startTime"]) for q in queries] == [last_cached + interval_ms(tf)]
    assert len(tail_requests) < len(first_requests)
    assert (
        sum(int(q["limit"]) for q in tail_requests)
        < sum(int(q["limit"]) for q in first_requests) / 20
    )
    assert second.cached_bars > 0
    assert second.fetched_bars < first.fetched_bars / 20

    # cache + tail gives exactly what a cold backfill from the same server gives
    log_mark = len(server.rest_log)
    _, cold, _ = await run_backfill(make_rest(server.rest_url), cache=None)
    assert len(kline_requests(server, log_mark)) > len(tail_requests)
    assert got == cold


async def test_corrupt_cache_file_is_refetched(
    replay: StartReplay,
    make_rest: MakeRest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = KlineCache(tmp_path / "klines")
    await run_backfill(make_rest((await replay()).rest_url), cache)
    broken = cache.path("BTCUSDT", "5m")
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # torn write

    later = START_MS + HOUR_MS
    server = await replay(start_ms=later)
    with caplog.at_level(logging.WARNING, logger="storage.kline_cache"):
        result, got, _ = await run_backfill(make_rest(server.rest_url), cache)
    assert result.failed == ()
    assert str(broken) in caplog.text
    assert broken.with_name("5m.parquet.corrupt").is_file()

    requests = kline_requests(server)
    btc_5m = [
        int(q["startTime"]) for q in requests if q["symbol"] == "BTCUSDT" and q["interval"] == "5m"
    ]
    eth_5m = [
        int(q["startTime"]) for q in requests if q["symbol"] == "ETHUSDT" and q["interval"] == "5m"
    ]
    window_start = period_open(later, "5m") - BARS["5m"] * 300_000
    assert btc_5m[0] == window_start  # refetched in full (two pages)
    assert len(btc_5m) == 2
    assert len(eth_5m) == 1  # the intact file still serves its cached part

    _, cold, _ = await run_backfill(make_rest(server.rest_url), cache=None)
    assert got == cold
    # the rewritten file holds exactly the refetched closed window
    assert cache.load("BTCUSDT", "5m") == cold[("BTCUSDT", "5m")][:-1]


async def test_cache_from_a_later_replay_never_leaks_future_candles(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path
) -> None:
    cache = KlineCache(tmp_path / "klines")
    later = await replay(start_ms=START_MS + 6 * HOUR_MS)
    await run_backfill(make_rest(later.rest_url), cache, symbols=["BTCUSDT"])

    server = await replay()  # six hours earlier than the cache's newest candles
    result, got, _ = await run_backfill(make_rest(server.rest_url), cache, symbols=["BTCUSDT"])
    assert result.failed == ()
    check_shape(got, START_MS)
    _, cold, _ = await run_backfill(make_rest(server.rest_url), cache=None, symbols=["BTCUSDT"])
    assert got == cold
