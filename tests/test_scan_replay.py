"""`perpscope scan --replay` end to end on the real 55-symbol kline history.

The CLI starts the loopback server, ccxt backfills from it, the real adapter streams from it,
and the engine evaluates: the same path as live.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.candles import CandleStore
from engine.config import EngineConfig
from engine.signals import evaluate
from tests.conftest import KLINES_55
from tests.recorded import klines_from_rows, ohlcv_rows

REPO = Path(__file__).resolve().parents[1]
START = "2023-08-02T12:00"


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


@pytest.fixture(scope="module")
def records() -> list[dict[str, object]]:
    result = run_cli("scan", "--replay", str(KLINES_55), "--start", START, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_one_valid_record_per_symbol(records: list[dict[str, object]]) -> None:
    symbols = {path.name.split("_")[0] + "USDT" for path in KLINES_55.glob("*-5m-futures.feather")}
    assert len(symbols) == 55
    assert sorted(str(r["symbol"]) for r in records) == sorted(symbols)
    directions = set()
    types = set()
    for r in records:
        assert r["signal"] in ("LONG", "SHORT", "NEUTRAL")
        directions.add(r["signal"])
        assert 0 <= float(r["score"]) <= 100  # type: ignore[arg-type]
        assert 0 <= float(r["confidence"]) <= 1  # type: ignore[arg-type]
        votes = r["timeframes"]
        assert isinstance(votes, dict) and list(votes) == ["5m", "15m", "1h", "4h"]
        # 30 days hold 180 4h candles, fewer than EMA200 needs: warming up, not guessed.
        assert votes["4h"] is None
        assert all(v is not None and -1 <= v <= 1 for k, v in votes.items() if k != "4h")
        assert isinstance(r["as_of"], int) and r["as_of"] % 1000 == 999
        entry, sl, tp1, tp2 = (r["entry"], r["stop_loss"], r["take_profit_1"], r["take_profit_2"])
        if r["signal"] == "LONG":
            assert sl < entry < tp1 < tp2  # type: ignore[operator]
        elif r["signal"] == "SHORT":
            assert sl > entry > tp1 > tp2  # type: ignore[operator]
        if r["signal"] != "NEUTRAL":
            assert float(r["risk_reward"]) > 0  # type: ignore[arg-type]
            assert entry == r["last_price"] or r["stale"]
            assert str(r["type"]).endswith("_" + str(r["signal"]))
            assert float(r["eta_minutes"]) > 0  # type: ignore[arg-type]
        regimes = r["regime"]
        assert isinstance(regimes, dict) and list(regimes) == list(votes)
        assert all(
            (v is None) == (votes[k] is None) and v in (None, "trending", "ranging",
                                                        "high_volatility")
            for k, v in regimes.items()
        )
        assert isinstance(r["filters"], list) and isinstance(r["patterns"], list)
        factors = r["factors"]
        assert isinstance(factors, list) and factors
        assert {"name", "category", "timeframe", "value", "weight", "contribution",
                "note"} == set(factors[0])
        fired = sorted(f["name"][len("filter."):] for f in factors
                       if f["category"] == "filter" and f["contribution"])
        assert fired == sorted(r["filters"])  # type: ignore[arg-type]
        types.add(r["type"])
    assert "SHORT" in directions and "LONG" in directions
    assert len(types) >= 3, types


def test_symbols_whose_data_ended_are_stale(records: list[dict[str, object]]) -> None:
    by_symbol = {r["symbol"]: r for r in records}
    # TRX/XLM/XMR/LTC files end 2023-08-02 23:20; the other files run to 2023-08-03 12:25.
    assert by_symbol["TRXUSDT"]["stale"] is True
    assert by_symbol["TRXUSDT"]["as_of"] == 1691018699999  # 2023-08-02 23:24:59.999 UTC
    assert by_symbol["BTCUSDT"]["stale"] is False
    assert by_symbol["BTCUSDT"]["as_of"] == 1691065799999  # 2023-08-03 12:29:59.999 UTC


def test_csv_and_table_outputs() -> None:
    csv_run = run_cli("scan", "--replay", str(KLINES_55 / "BTC_USDT_USDT-5m-futures.feather"),
                      "--start", START, "--csv")
    assert csv_run.returncode == 0, csv_run.stderr
    header, row = csv_run.stdout.splitlines()
    assert header.startswith("symbol,signal,score,confidence,entry,stop_loss")
    assert header.endswith("vote_5m,vote_15m,vote_1h,vote_4h")
    assert row.startswith("BTCUSDT,")
    table = run_cli("scan", "--replay", str(KLINES_55 / "ETH_USDT_USDT-5m-futures.feather"),
                    "--start", START)
    assert table.returncode == 0, table.stderr
    assert "ETHUSDT" in table.stdout and "perpscope scan" in table.stdout


def test_corrupt_replay_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "BTC_USDT_USDT-5m-futures.feather"
    bad.write_bytes(b"not an arrow file")
    result = run_cli("scan", "--replay", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "replay data error" in result.stderr and str(bad) in result.stderr


def test_scan_is_causal_end_to_end(tmp_path: Path) -> None:
    """The record from data truncated at bar t equals the signal of the full data as of t."""
    source = KLINES_55 / "DOGE_USDT_USDT-5m-futures.feather"
    full = pl.read_ipc(source)
    cut = full.height - 400  # bar t: 400 bars before the end of the file
    truncated = tmp_path / "DOGE_USDT_USDT-5m-futures.feather"
    full.head(cut).write_ipc(truncated)
    start = full["date"][cut - 300].isoformat()
    result = run_cli("scan", "--replay", str(truncated), "--start", start, "--json")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]

    # Reference: the full file's candles as of bar t, aggregated by the engine's store.
    cfg = EngineConfig()
    store = CandleStore(cfg.timeframes, "5m", {"5m"})
    for kline in klines_from_rows(ohlcv_rows(full.head(cut)), "DOGEUSDT", "5m"):
        store.apply(kline)
    arrays = {tf: store.arrays("DOGEUSDT", tf) for tf in cfg.timeframes.timeframes}
    expected = evaluate("DOGEUSDT", arrays, cfg, 0.000001)  # DOGEUSDT tick in exchangeInfo
    assert record["as_of"] == expected.as_of == int(arrays["5m"].open_time[-1]) + 299_999
    assert record["signal"] == expected.direction.value
    assert record["score"] == pytest.approx(round(expected.score, 2), abs=1e-9)
    votes = {s.timeframe: s.vote for s in expected.timeframes}
    for tf, vote in record["timeframes"].items():
        if vote is None:
            assert votes[tf] is None
        else:
            assert vote == pytest.approx(round(votes[tf], 4), abs=1e-9)
    if expected.plan is not None:
        assert record["stop_loss"] == pytest.approx(expected.plan.stop_loss)
        assert record["eta_minutes"] == pytest.approx(expected.plan.eta_minutes, abs=0.05)
    assert record["type"] == expected.signal_type.value
    assert record["filters"] == list(expected.filters)
    assert record["patterns"] == list(expected.patterns)
    assert record["regime"] == {s.timeframe: s.regime or None for s in expected.timeframes}
    assert len(record["factors"]) == len(expected.factors)
    assert [f["name"] for f in record["factors"]] == [f.name for f in expected.factors]
    assert np.isfinite(record["confidence"])


def test_raw_capture_replay_carries_the_recorded_prices(shared_data: Path) -> None:
    """A cryptofeed WebSocket capture replays its trades: last price = last recorded trade."""
    capture = shared_data / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
    expected: dict[str, float] = {}
    for line in capture.read_text(encoding="utf-8").splitlines()[1:]:
        _, _, raw = line.partition(": ")
        data = json.loads(raw)["data"]
        if data["e"] == "aggTrade":
            expected[data["s"]] = float(data["p"])
        elif data["e"] == "kline":
            expected[data["s"]] = float(data["k"]["c"])
    result = run_cli("scan", "--replay", str(capture), "--json")
    assert result.returncode == 0, result.stderr
    records = {r["symbol"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == set(expected) == {"AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"}
    for symbol, price in expected.items():
        assert records[symbol]["last_price"] == price
        # 30 s of data: every timeframe is still warming up, nothing is guessed.
        assert records[symbol]["signal"] == "NEUTRAL"
        assert set(records[symbol]["timeframes"].values()) == {None}
