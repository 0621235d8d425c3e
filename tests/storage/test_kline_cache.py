"""KlineCache on real recorded klines: round trip, upsert, forming candles, corrupt files."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
from msgspec import structs

from feeds.events import Kline
from storage.kline_cache import SCHEMA, KlineCache


def test_round_trip_layout_and_schema(tmp_path: Path, btc_5m: list[Kline]) -> None:
    cache = KlineCache(tmp_path / "klines")
    merged = cache.merge("BTCUSDT", "5m", btc_5m)

    path = tmp_path / "klines" / "binanceusdm" / "BTCUSDT" / "5m.parquet"
    assert path.is_file()
    frame = pl.read_parquet(path)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.height == len(btc_5m)
    assert merged == btc_5m
    assert cache.load("BTCUSDT", "5m") == btc_5m
    # nothing but the data file is left in the directory (the temp file was renamed)
    assert sorted(p.name for p in path.parent.iterdir()) == ["5m.parquet"]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert KlineCache(tmp_path).load("ETHUSDT", "1h") == []


def test_merge_appends_sorts_and_dedupes(tmp_path: Path, btc_5m: list[Kline]) -> None:
    cache = KlineCache(tmp_path)
    cache.merge("BTCUSDT", "5m", btc_5m[100:200])
    # overlapping, out-of-order batch: rows 150..299 then 0..99
    merged = cache.merge("BTCUSDT", "5m", btc_5m[150:] + btc_5m[:100])
    assert merged == btc_5m
    loaded = cache.load("BTCUSDT", "5m")
    assert [k.open_time for k in loaded] == sorted({k.open_time for k in btc_5m})


def test_newer_row_replaces_cached_one(tmp_path: Path, ctk_kline_updates: list[Kline]) -> None:
    # Two real versions of one CTKUSDT 1m candle: an early update and the latest one.
    first_open = ctk_kline_updates[0].open_time
    versions = [k for k in ctk_kline_updates if k.open_time == first_open]
    older, newer = versions[0], versions[-1]
    assert (older.trades, older.quote_volume) != (newer.trades, newer.quote_volume)

    cache = KlineCache(tmp_path)
    cache.merge("CTKUSDT", "1m", [older])
    assert cache.load("CTKUSDT", "1m") == [older]
    cache.merge("CTKUSDT", "1m", [newer])
    assert cache.load("CTKUSDT", "1m") == [newer]
    # within one batch the later row wins too
    assert cache.merge("CTKUSDT", "1m", [newer, older]) == [older]


def test_forming_candle_is_not_cached(tmp_path: Path, btc_5m: list[Kline]) -> None:
    cache = KlineCache(tmp_path)
    forming = structs.replace(btc_5m[20], closed=False)
    merged = cache.merge("BTCUSDT", "5m", [*btc_5m[:20], forming])
    assert merged == btc_5m[:20]
    assert all(k.closed for k in cache.load("BTCUSDT", "5m"))
    # only a forming candle: nothing written at all
    cache2 = KlineCache(tmp_path / "other")
    assert cache2.merge("BTCUSDT", "5m", [forming]) == []
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    "content",
    [b"this is not parquet", b"PAR1\x00\x00garbage PAR1", b""],
    ids=["text", "bad-footer", "empty"],
)
def test_corrupt_file_is_moved_aside(
    tmp_path: Path, btc_5m: list[Kline], content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = KlineCache(tmp_path)
    path = cache.path("BTCUSDT", "5m")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with caplog.at_level(logging.WARNING, logger="storage.kline_cache"):
        assert cache.load("BTCUSDT", "5m") == []
    assert str(path) in caplog.text
    assert not path.exists()
    assert path.with_name("5m.parquet.corrupt").read_bytes() == content

    # the cache keeps working: the next merge writes a fresh file
    assert cache.merge("BTCUSDT", "5m", btc_5m[:50]) == btc_5m[:50]
    assert cache.load("BTCUSDT", "5m") == btc_5m[:50]


def test_wrong_schema_is_treated_as_corrupt(
    tmp_path: Path, recorded_klines, caplog: pytest.LogCaptureFixture
) -> None:
    cache = KlineCache(tmp_path)
    path = cache.path("ETHUSDT", "1h")
    path.parent.mkdir(parents=True)
    # a valid parquet file of the recorded frame, but not in the cache's schema
    pl.DataFrame({"date": [k.open_time for k in recorded_klines("ETH", "1h", 5)]}).write_parquet(
        path
    )
    with caplog.at_level(logging.WARNING, logger="storage.kline_cache"):
        assert cache.load("ETHUSDT", "1h") == []
    assert "missing columns" in caplog.text
    assert path.with_name("1h.parquet.corrupt").exists()


def test_bad_arguments(tmp_path: Path, btc_5m: list[Kline]) -> None:
    cache = KlineCache(tmp_path)
    with pytest.raises(ValueError, match="invalid symbol"):
        cache.load("../etc", "5m")
    with pytest.raises(ValueError, match="unknown interval"):
        cache.load("BTCUSDT", "7m")
    with pytest.raises(ValueError, match="BTCUSDT 5m"):
        cache.merge("ETHUSDT", "5m", btc_5m[:2])
    with pytest.raises(ValueError, match="BTCUSDT 5m"):
        cache.merge("BTCUSDT", "1h", btc_5m[:2])


def test_max_rows_keeps_the_latest_candles(tmp_path: Path, btc_5m: list[Kline]) -> None:
    cache = KlineCache(tmp_path, max_rows=100)
    cache.merge("BTCUSDT", "5m", btc_5m[:150])
    assert cache.load("BTCUSDT", "5m") == btc_5m[50:150]
    assert cache.merge("BTCUSDT", "5m", btc_5m[150:]) == btc_5m[200:]
    with pytest.raises(ValueError, match="max_rows"):
        KlineCache(tmp_path, max_rows=0)
