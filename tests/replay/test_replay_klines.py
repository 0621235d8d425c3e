"""Kline history loader: real freqtrade files, CSV/parquet variants, aggregation, bad files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from replay_data import KLINES_55, KLINES_XRP, MINUTE, read_feather

from feeds.replay.errors import ReplayDataError
from feeds.replay.klines import (
    KlineFileName,
    aggregate,
    load_kline_history,
    parse_kline_file_name,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BTC_USDT_USDT-5m-futures.feather", KlineFileName("BTCUSDT", "5m", "futures")),
        ("XRP_USDT_USDT-8h-funding_rate.feather", KlineFileName("XRPUSDT", "8h", "funding_rate")),
        ("XRP_USDT_USDT-1h-mark.feather", KlineFileName("XRPUSDT", "1h", "mark")),
        ("BTCUSDT_klines.csv", KlineFileName("BTCUSDT", None, "futures")),
        ("ethusdt-1h.parquet", KlineFileName("ETHUSDT", "1h", "futures")),
        ("BTC_USDT-5m.feather", KlineFileName("BTCUSDT", "5m", "futures")),
        ("notes.txt.csv", KlineFileName("NOTES", None, "futures")),
        ("_.csv", None),
    ],
)
def test_file_names(name: str, expected: KlineFileName | None) -> None:
    assert parse_kline_file_name(Path(name)) == expected


def test_loads_all_55_symbols_with_every_interval() -> None:
    history = load_kline_history(KLINES_55)
    assert len(history.symbols) == 55
    assert history.skipped == []
    with_1h = [s for s in history.symbols if "1h" in history.klines[s]]
    with_1m = [s for s in history.symbols if "1m" in history.klines[s]]
    assert len(with_1h) == 51
    assert sorted(with_1m) == sorted(
        f"{b}USDT" for b in ["ADA", "DASH", "EOS", "ETC", "ETH", "LTC", "TRX", "XLM", "XMR", "ZEC"]
    )
    assert all(set(history.marks[s]) == {"8h"} for s in history.symbols)
    assert len(history.funding) == 55
    btc = history.klines["BTCUSDT"]["5m"]
    assert len(btc) == 8639
    assert int(btc.open_ms[0]) == 1688474100000  # 2023-07-04 12:35 UTC
    assert float(btc.open[0]) == 31031.7 and float(btc.volume[0]) == 280.094
    assert len(history.funding["BTCUSDT"].time_ms) == 89
    assert history.decimals("BTCUSDT") == (1, 3)


def test_freqtrade_testdata_marks_and_funding() -> None:
    history = load_kline_history(KLINES_XRP)
    assert history.symbols == ["XRPUSDT"]
    assert history.file_intervals("XRPUSDT") == ["5m", "1h"]
    assert sorted(history.marks["XRPUSDT"]) == ["1h", "8h"]
    mark_1h = read_feather("XRP_USDT_USDT-1h-mark.feather", KLINES_XRP)
    t = int(mark_1h["t"][10])
    # Inside a 1h mark candle the latest known mark is its open (finest mark file wins).
    assert history.mark_at("XRPUSDT", t + 30 * MINUTE) == mark_1h["open"][10]
    funding = read_feather("XRP_USDT_USDT-8h-funding_rate.feather", KLINES_XRP)
    t0 = int(funding["t"][3])
    assert history.funding_at("XRPUSDT", t0 + 1) == funding["open"][3]
    assert history.funding_at("XRPUSDT", t0 - 1) == funding["open"][2]


@pytest.mark.parametrize("base", ["BTC", "ETH", "AAVE", "XTZ"])
def test_5m_aggregated_to_1h_equals_recorded_1h(base: str) -> None:
    history = load_kline_history(KLINES_55, [f"{base}USDT"])
    built = aggregate(history.klines[f"{base}USDT"]["5m"], "1h")
    recorded = read_feather(f"{base}_USDT_USDT-1h-futures.feather")
    common, a, b = np.intersect1d(built.open_ms, recorded["t"].to_numpy(), return_indices=True)
    assert len(common) == len(recorded) == 719  # every recorded hour is rebuilt
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(built, col)[a], recorded[col].to_numpy()[b]), col
    assert np.allclose(built.volume[a], recorded["volume"].to_numpy()[b], rtol=1e-9, atol=1e-6)


def test_1m_aggregated_to_5m_equals_recorded_5m() -> None:
    history = load_kline_history(KLINES_55, ["ETHUSDT"])
    built = aggregate(history.klines["ETHUSDT"]["1m"], "5m")
    recorded = history.klines["ETHUSDT"]["5m"]
    common, a, b = np.intersect1d(built.open_ms, recorded.open_ms, return_indices=True)
    assert len(common) == 8639
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(built, col)[a], getattr(recorded, col)[b]), col


def test_interval_served_from_its_file_else_aggregated_from_finest() -> None:
    history = load_kline_history(KLINES_55, ["ETHUSDT", "LTCUSDT"])
    eth_1h = history.candles("ETHUSDT", "1h")
    assert eth_1h is history.klines["ETHUSDT"]["1h"]
    # LTC has 1m and 5m but no 1h file: 1h comes from 1m where 1m covers the hour, else 5m.
    ltc_1h = history.candles("LTCUSDT", "1h")
    assert ltc_1h is not None and "aggregated from 1m" in ltc_1h.source
    ltc_5m = history.klines["LTCUSDT"]["5m"]
    from_5m = aggregate(ltc_5m, "1h")
    assert int(ltc_1h.open_ms[-1]) == int(from_5m.open_ms[-1])  # beyond the 1m file's end
    assert len(ltc_1h) >= len(from_5m)
    assert history.candles("ETHUSDT", "3m") is not None  # from 1m
    btc = load_kline_history(KLINES_55, ["BTCUSDT"])
    assert btc.candles("BTCUSDT", "3m") is None  # 5m cannot make 3m
    assert btc.candles("NOPEUSDT", "5m") is None


def test_forming_states_are_partial_aggregates_of_recorded_candles() -> None:
    history = load_kline_history(KLINES_55, ["ETHUSDT", "BTCUSDT"])
    eth_1m = history.klines["ETHUSDT"]["1m"]
    t = int(history.klines["ETHUSDT"]["5m"].open_ms[500])
    t = t - t % (15 * MINUTE)
    first = int(np.searchsorted(eth_1m.open_ms, t))
    state = history.forming("ETHUSDT", "15m", t, t + 7 * MINUTE + 30_000)
    assert state is not None
    assert state.open == eth_1m.open[first]
    assert state.high == eth_1m.high[first : first + 7].max()
    assert state.low == eth_1m.low[first : first + 7].min()
    assert state.close == eth_1m.close[first + 6]
    assert state.volume == pytest.approx(eth_1m.volume[first : first + 7].sum())
    at_open = history.forming("ETHUSDT", "15m", t, t)
    assert at_open is not None and at_open.volume == 0.0
    assert at_open.open == at_open.high == at_open.low == at_open.close == eth_1m.open[first]
    # BTC has no 1m: at 7 minutes only the first 5m candle has closed.
    btc_5m = history.klines["BTCUSDT"]["5m"]
    idx = btc_5m.index_of(t)
    assert idx is not None
    btc_state = history.forming("BTCUSDT", "15m", t, t + 7 * MINUTE)
    assert btc_state is not None
    assert (btc_state.open, btc_state.high, btc_state.low, btc_state.close) == (
        btc_5m.open[idx],
        btc_5m.high[idx],
        btc_5m.low[idx],
        btc_5m.close[idx],
    )
    # The 5m base with no finer file forms at its open only.
    base = history.forming("BTCUSDT", "5m", t, t + 4 * MINUTE)
    assert base is not None and base.close == btc_5m.open[idx] and base.volume == 0.0


def _real_rows(n: int = 400) -> pl.DataFrame:
    return read_feather("BTC_USDT_USDT-5m-futures.feather").head(n)


def test_csv_with_ms_open_time_and_symbol_only_name(tmp_path: Path) -> None:
    rows = _real_rows()
    path = tmp_path / "BTCUSDT_klines.csv"
    rows.select(pl.col("t").alias("open_time"), "open", "high", "low", "close", "volume").write_csv(
        path
    )
    history = load_kline_history(path)
    series = history.klines["BTCUSDT"]["5m"]  # interval inferred from the 5-minute steps
    assert np.array_equal(series.open_ms, rows["t"].to_numpy())
    assert np.array_equal(series.close, rows["close"].to_numpy())
    assert np.array_equal(series.volume, rows["volume"].to_numpy())


def test_csv_with_iso_timestamps(tmp_path: Path) -> None:
    rows = _real_rows()
    iso = rows.select(
        pl.col("date").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    )
    path = tmp_path / "BTCUSDT_klines.csv"
    iso.write_csv(path)
    series = load_kline_history(path).klines["BTCUSDT"]["5m"]
    assert np.array_equal(series.open_ms, rows["t"].to_numpy())
    assert np.array_equal(series.high, rows["high"].to_numpy())


def test_parquet_with_datetime_and_name_interval(tmp_path: Path) -> None:
    rows = _real_rows().drop("t")
    path = tmp_path / "BTCUSDT-5m.parquet"
    rows.write_parquet(path)
    history = load_kline_history(path)
    assert history.file_intervals("BTCUSDT") == ["5m"]
    assert len(history.klines["BTCUSDT"]["5m"]) == 400


def test_corrupt_file_named_in_error_and_others_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(KLINES_55 / "ETH_USDT_USDT-5m-futures.feather", tmp_path)
    bad = tmp_path / "ZZZ_USDT_USDT-5m-futures.feather"
    bad.write_bytes(b"ARROW1\x00\x00 this is not an arrow file")
    with caplog.at_level(logging.WARNING):
        history = load_kline_history(tmp_path)
    assert history.symbols == ["ETHUSDT"]
    assert [s.path for s in history.skipped] == [bad]
    assert "cannot read as feather" in history.skipped[0].reason
    assert any(bad.name in rec.getMessage() for rec in caplog.records)
    with pytest.raises(ReplayDataError, match=r"ZZZ_USDT_USDT-5m-futures\.feather: cannot read"):
        load_kline_history(bad)


def test_missing_column_and_wrong_interval_are_clear_errors(tmp_path: Path) -> None:
    no_close = tmp_path / "BTCUSDT-5m.parquet"
    _real_rows().drop("t", "close").write_parquet(no_close)
    with pytest.raises(ReplayDataError, match=r"BTCUSDT-5m\.parquet: missing column\(s\) close"):
        load_kline_history(no_close)
    wrong = tmp_path / "BTCUSDT-1h.parquet"
    _real_rows().drop("t").write_parquet(wrong)
    with pytest.raises(ReplayDataError, match="file name says 1h but candles are mostly 300000"):
        load_kline_history(wrong)
    no_time = tmp_path / "BTCUSDT_klines.csv"
    _real_rows().drop("t", "date").write_csv(no_time)
    with pytest.raises(ReplayDataError, match="no time column"):
        load_kline_history(no_time)
    with pytest.raises(ReplayDataError, match="no such file"):
        load_kline_history(tmp_path / "missing")
