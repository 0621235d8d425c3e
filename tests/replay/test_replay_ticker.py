"""Kline-history replay derives ``!ticker@arr`` from the klines it serves (real loopback WS).

Each ``24hrTicker`` item is checked against a direct polars computation of the 24 h rolling
open/high/low/close/volume over the symbol's finest recorded file, as of the item's event time.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from replay_data import KLINES_55, MINUTE, connect, read_feather, recv_json

from feeds.binance_schemas import TICKER_ARRAY_DECODER
from feeds.replay.server import ReplayServer

DAY = 1440 * MINUTE


def direct_ticker(frame: pl.DataFrame, step: int, now: int) -> dict[str, float]:
    """24 h window: candles opened at or after now - 24 h and closed by now."""
    window = frame.filter((pl.col("t") >= now - DAY) & (pl.col("t") + step <= now))
    return {
        "o": window["open"][0],
        "h": window["high"].max(),  # type: ignore[dict-item]
        "l": window["low"].min(),  # type: ignore[dict-item]
        "c": window["close"][-1],
        "v": window["volume"].sum(),
    }


async def test_ticker_array_is_the_rolling_24h_of_the_served_klines() -> None:
    server = ReplayServer(
        KLINES_55, speed=None, timeframes=["5m"], history_bars={"5m": 300},
        symbols=["ETHUSDT", "BTCUSDT"],
    )
    await server.start()
    frames: list[dict[str, Any]] = []
    try:
        url = f"{server.ws_url}/market/stream?streams=!ticker@arr/btcusdt@kline_5m"
        async with connect(url) as ws:
            while len(frames) < 40:
                msg = await recv_json(ws)
                if msg["stream"] == "!ticker@arr":
                    frames.append(msg)
    finally:
        await server.stop()
    eth = read_feather("ETH_USDT_USDT-1m-futures.feather")  # ETH's finest file is 1m
    btc = read_feather("BTC_USDT_USDT-5m-futures.feather")  # BTC has no 1m file
    seen = {"ETHUSDT": 0, "BTCUSDT": 0}
    times = [m["data"][0]["E"] for m in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    for msg in frames:
        items = msg["data"]
        # The project's own decoder takes them as USDⓈ-M tickers (st = 1).
        events = TICKER_ARRAY_DECODER.decode(json.dumps(items).encode())
        assert [e.s for e in events] == [i["s"] for i in items]
        for item in items:
            assert item["e"] == "24hrTicker" and item["st"] == 1
            now = item["E"]
            frame, step = (eth, MINUTE) if item["s"] == "ETHUSDT" else (btc, 5 * MINUTE)
            want = direct_ticker(frame, step, now)
            for key in ("o", "h", "l", "c"):
                assert float(item[key]) == want[key], (item["s"], now, key)
            assert float(item["v"]) == pytest.approx(want["v"], rel=1e-9)
            change = (want["c"] - want["o"]) / want["o"] * 100
            assert float(item["P"]) == pytest.approx(change, abs=5e-4)
            seen[item["s"]] += 1
    # BTC only changes at 5m closes, ETH every minute: only changed tickers are sent.
    assert seen["ETHUSDT"] > seen["BTCUSDT"] > 0
