"""Kline replay over a real loopback WebSocket (plain ``websockets`` client) and REST."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import polars as pl
import pytest
import websockets
from replay_data import KLINES_55, MINUTE, connect, control, read_feather, recv_json

from feeds.replay.errors import ReplayDataError
from feeds.replay.klines import aggregate, load_kline_history
from feeds.replay.server import ReplayServer

BTC_FIRST_5M = 1688474100000  # 2023-07-04 12:35 UTC, the latest first 5m candle of ETH/BTC
START = BTC_FIRST_5M + 300 * 5 * MINUTE  # 2023-07-05 13:35 UTC
EIGHT_H = 8 * 3_600_000


def _floats(k: dict[str, Any]) -> tuple[float, float, float, float]:
    return float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"])


async def test_default_start_leaves_history_bars_for_backfill(eth_btc_server: ReplayServer) -> None:
    server = eth_btc_server
    assert server.source_kind == "klines"
    assert server.symbols == ["BTCUSDT", "ETHUSDT"]
    assert server.start_ms == START
    assert server.replay_time_ms == START  # nobody subscribed yet: the clock waits
    assert server.end_ms == 1691065800000  # close of the last 5m candle, 2023-08-03 12:30
    assert server.rest_url.startswith("http://127.0.0.1:")
    assert server.ws_url == server.rest_url.replace("http://", "ws://")


async def test_stream_closes_equal_file_rows_and_forming_updates_are_partials(
    eth_btc_server: ReplayServer,
) -> None:
    server = eth_btc_server
    url = f"{server.ws_url}/market/stream?streams=ethusdt@kline_5m/btcusdt@kline_15m"
    eth_frames: list[dict[str, Any]] = []
    btc_frames: list[dict[str, Any]] = []
    async with connect(url) as ws:
        while sum(f["k"]["x"] for f in eth_frames) < 24 or sum(f["k"]["x"] for f in btc_frames) < 8:
            msg = await recv_json(ws)
            assert msg["data"]["e"] == "kline"
            (eth_frames if msg["stream"] == "ethusdt@kline_5m" else btc_frames).append(msg["data"])
    events = [f["E"] for f in eth_frames]
    assert events == sorted(events)

    eth_all = read_feather("ETH_USDT_USDT-5m-futures.feather")
    eth_5m = eth_all.filter(eth_all["t"] >= START)
    eth_1m = read_feather("ETH_USDT_USDT-1m-futures.feather")
    m1_t = eth_1m["t"].to_numpy()
    closes = [f for f in eth_frames if f["k"]["x"]][:24]
    for frame, row in zip(closes, eth_5m.head(24).iter_rows(named=True), strict=True):
        k = frame["k"]
        assert k["t"] == row["t"] and k["T"] == row["t"] + 5 * MINUTE - 1
        assert frame["E"] == row["t"] + 5 * MINUTE and k["i"] == "5m" and k["s"] == "ETHUSDT"
        assert _floats(k) == (row["open"], row["high"], row["low"], row["close"])
        assert float(k["v"]) == pytest.approx(row["volume"], abs=1e-6)
        # ETH has a 1m file: one forming update after each of the first four 1m candles.
        forming = [f for f in eth_frames if f["k"]["t"] == row["t"] and not f["k"]["x"]]
        assert [f["E"] - row["t"] for f in forming] == [MINUTE, 2 * MINUTE, 3 * MINUTE, 4 * MINUTE]
        first = int(np.searchsorted(m1_t, row["t"]))
        for done, f in enumerate(forming, 1):
            part = eth_1m.slice(first, done)
            assert _floats(f["k"]) == (
                part["open"][0],
                part["high"].max(),
                part["low"].min(),
                part["close"][-1],
            )
            assert float(f["k"]["v"]) == pytest.approx(part["volume"].sum(), abs=1e-6)

    # BTC 15m from 5m: forming after 5m bars 1 and 2, closing after bar 3 (= aggregation).
    history = load_kline_history(KLINES_55, ["BTCUSDT"])
    btc_5m = history.klines["BTCUSDT"]["5m"]
    btc_15m = aggregate(btc_5m, "15m")
    first_open = START - START % (15 * MINUTE)
    assert btc_frames[0]["k"]["t"] == first_open and btc_frames[0]["E"] == START
    for frame in btc_frames:
        k = frame["k"]
        if k["x"]:
            idx = btc_15m.index_of(k["t"])
            assert idx is not None and frame["E"] == k["t"] + 15 * MINUTE
            assert _floats(k) == (
                btc_15m.open[idx],
                btc_15m.high[idx],
                btc_15m.low[idx],
                btc_15m.close[idx],
            )
        else:
            done = (frame["E"] - k["t"]) // (5 * MINUTE)
            assert done in (1, 2)
            first_bar = btc_5m.index_of(k["t"])
            assert first_bar is not None
            state = btc_5m.partial(first_bar, done)
            assert _floats(k) == (state.open, state.high, state.low, state.close)
    assert sum(1 for f in btc_frames if not f["k"]["x"]) == 2 * 8


async def test_rest_klines_backfill_joins_the_stream(eth_btc_server: ReplayServer) -> None:
    server = eth_btc_server
    eth_5m = read_feather("ETH_USDT_USDT-5m-futures.feather")
    async with aiohttp.ClientSession(server.rest_url) as http:
        rows = await (
            await http.get(
                "/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "5m", "limit": "300"}
            )
        ).json()
        expected = eth_5m.filter(eth_5m["t"] < START).tail(300)
        assert [r[0] for r in rows] == expected["t"].to_list()
        assert [float(r[4]) for r in rows] == expected["close"].to_list()
        assert all(len(r) == 12 and r[6] == r[0] + 5 * MINUTE - 1 for r in rows)
        first = await (
            await http.get(
                "/fapi/v1/klines",
                params={
                    "symbol": "ETHUSDT",
                    "interval": "5m",
                    "startTime": str(eth_5m["t"][0]),
                    "limit": "3",
                },
            )
        ).json()
        assert [r[0] for r in first] == eth_5m["t"].head(3).to_list()
        end = START - 3_600_000
        upto = await (
            await http.get(
                "/fapi/v1/klines",
                params={"symbol": "ETHUSDT", "interval": "5m", "endTime": str(end), "limit": "2"},
            )
        ).json()
        assert [r[0] for r in upto] == [end - 5 * MINUTE, end]
        # The 15m candle containing the start is forming: its state at 13:35 is bar 13:30.
        btc = await (
            await http.get(
                "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "15m", "limit": "2"}
            )
        ).json()
        btc_5m = read_feather("BTC_USDT_USDT-5m-futures.feather")
        bar = btc_5m.filter(btc_5m["t"] == START - 5 * MINUTE).row(0, named=True)
        assert btc[-1][0] == START - 5 * MINUTE and btc[-1][0] % (15 * MINUTE) == 0
        assert [float(x) for x in btc[-1][1:5]] == [
            bar["open"],
            bar["high"],
            bar["low"],
            bar["close"],
        ]
        assert btc[0][0] == START - 20 * MINUTE
    url = f"{server.ws_url}/market/stream?streams=btcusdt@kline_15m"
    async with connect(url) as ws:
        msg = await recv_json(ws)
    # The stream's first update is exactly the backfill's forming candle.
    assert msg["data"]["k"]["t"] == btc[-1][0] and msg["data"]["E"] == START
    assert msg["data"]["k"]["c"] == btc[-1][4] and msg["data"]["k"]["v"] == btc[-1][5]


async def test_wrong_route_legacy_path_and_upper_case_are_acked_without_data(
    eth_btc_server: ReplayServer,
) -> None:
    server = eth_btc_server
    ws_url = server.ws_url
    async with (
        connect(f"{ws_url}/public/stream?streams=ethusdt@kline_5m") as public,
        connect(f"{ws_url}/stream?streams=ethusdt@kline_5m") as legacy,
        connect(f"{ws_url}/market/stream") as upper,
    ):
        assert (await control(upper, "SUBSCRIBE", ["ETHUSDT@kline_5m"], 1)) == {
            "result": None,
            "id": 1,
        }
        assert (await control(public, "LIST_SUBSCRIPTIONS", None, 2))["result"] == [
            "ethusdt@kline_5m"
        ]
        assert server.subscribed_streams() == {"ethusdt@kline_5m", "ETHUSDT@kline_5m"}
        await asyncio.sleep(0.1)
        assert server.replay_time_ms == START  # no deliverable subscription: not started
        async with connect(f"{ws_url}/market/stream?streams=ethusdt@kline_5m") as market:
            for _ in range(50):
                assert (await recv_json(market))["stream"] == "ethusdt@kline_5m"
            for silent in (public, legacy, upper):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(silent.recv(), 0.2)
        assert server.frames_sent >= 50


async def test_control_messages_and_raw_mode(eth_btc_server: ReplayServer) -> None:
    server = eth_btc_server
    async with connect(f"{server.ws_url}/market/stream") as ws:
        assert await control(ws, "SUBSCRIBE", ["ethusdt@kline_5m", "btcusdt@kline_5m"], 1) == {
            "result": None,
            "id": 1,
        }
        data = await recv_json(ws)
        assert data["stream"] in ("ethusdt@kline_5m", "btcusdt@kline_5m")
        assert (await control(ws, "GET_PROPERTY", ["combined"], 2))["result"] is True
        assert await control(ws, "UNSUBSCRIBE", ["btcusdt@kline_5m"], 3) == {
            "result": None,
            "id": 3,
        }
        assert (await control(ws, "LIST_SUBSCRIPTIONS", None, 4))["result"] == ["ethusdt@kline_5m"]
        for _ in range(20):
            assert (await recv_json(ws))["stream"] == "ethusdt@kline_5m"
    async with connect(f"{server.ws_url}/market/stream") as ws:
        await ws.send("{not json")
        assert (await recv_json(ws))["error"]["code"] == 3
        assert (await control(ws, "PING", [], 5))["error"]["code"] == 2
        assert (await control(ws, "SUBSCRIBE", "ethusdt@kline_5m", 6))["error"]["code"] == 2
        assert (await control(ws, "SET_PROPERTY", ["combined", "yes"], 7))["error"]["code"] == 1
        assert (await control(ws, "GET_PROPERTY", ["colour"], 8))["error"]["code"] == 0
    async with connect(f"{server.ws_url}/market/ws/ethusdt@kline_5m") as raw:
        payload = await recv_json(raw)
        assert payload["e"] == "kline" and "stream" not in payload  # raw mode: no envelope
        assert (await control(raw, "GET_PROPERTY", ["combined"], 9))["result"] is False
        await control(raw, "SET_PROPERTY", ["combined", True], 10)
        assert (await recv_json(raw))["stream"] == "ethusdt@kline_5m"


async def test_control_message_flood_closes_the_connection(eth_btc_server: ReplayServer) -> None:
    async with connect(f"{eth_btc_server.ws_url}/market/stream") as ws:
        for i in range(11):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def _get(http: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, Any, int]:
    async with http.get(path, params=params) as resp:
        return resp.status, await resp.json(), int(resp.headers["X-MBX-USED-WEIGHT-1M"])


async def test_rest_endpoints_errors_and_weights(eth_btc_server: ReplayServer) -> None:
    server = eth_btc_server
    async with aiohttp.ClientSession(server.rest_url) as http:
        assert await _get(http, "/fapi/v1/ping") == (200, {}, 1)
        assert await _get(http, "/fapi/v1/time") == (200, {"serverTime": START}, 2)
        status, info, used = await _get(http, "/fapi/v1/exchangeInfo")
        assert (status, used) == (200, 3)
        assert info["serverTime"] == START and info["rateLimits"][0]["limit"] == 2400
        by_symbol = {s["symbol"]: s for s in info["symbols"]}
        assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}
        btc = by_symbol["BTCUSDT"]
        assert (btc["status"], btc["contractType"], btc["quoteAsset"]) == (
            "TRADING",
            "PERPETUAL",
            "USDT",
        )
        price_filter = next(f for f in btc["filters"] if f["filterType"] == "PRICE_FILTER")
        assert price_filter["tickSize"] == "0.01"  # recorded (rezbot exchangeInfo)

        weights = [
            (await _get(http, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m", limit="99"))[2],
            (await _get(http, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m", limit="499"))[2],
            (await _get(http, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m", limit="1000"))[2],
            (await _get(http, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m", limit="1500"))[2],
            (await _get(http, "/fapi/v1/depth", symbol="BTCUSDT", limit="1000"))[2],
            (await _get(http, "/fapi/v1/ticker/24hr"))[2],
            (await _get(http, "/fapi/v1/ticker/24hr", symbol="BTCUSDT"))[2],
        ]
        assert np.diff([3, *weights]).tolist() == [1, 2, 5, 10, 20, 40, 1]

        status, ticker, _ = await _get(http, "/fapi/v1/ticker/24hr", symbol="BTCUSDT")
        btc_5m = read_feather("BTC_USDT_USDT-5m-futures.feather")
        day = btc_5m.filter((btc_5m["t"] >= START - 86_400_000) & (btc_5m["t"] < START))
        assert len(day) == 288
        assert float(ticker["openPrice"]) == day["open"][0]
        assert float(ticker["lastPrice"]) == day["close"][-1]
        assert float(ticker["highPrice"]) == day["high"].max()
        assert float(ticker["lowPrice"]) == day["low"].min()
        assert float(ticker["volume"]) == pytest.approx(day["volume"].sum(), abs=1e-3)

        status, book, _ = await _get(http, "/fapi/v1/depth", symbol="ETHUSDT", limit="5")
        assert book["bids"] == [] and book["asks"] == []  # klines hold no order book

        status, premium, _ = await _get(http, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
        mark = read_feather("BTC_USDT_USDT-8h-mark.feather")
        mark_row = mark.filter(mark["t"] <= START).tail(1).row(0, named=True)
        funding = read_feather("BTC_USDT_USDT-8h-funding_rate.feather")
        settled = funding.filter(funding["t"] <= START)
        assert float(premium["markPrice"]) == pytest.approx(mark_row["open"], abs=1e-8)
        assert float(premium["lastFundingRate"]) == settled["open"][-1]
        assert premium["nextFundingTime"] == (START // EIGHT_H + 1) * EIGHT_H
        status, rates, _ = await _get(http, "/fapi/v1/fundingRate", symbol="BTCUSDT", limit="3")
        assert [r["fundingTime"] for r in rates] == settled["t"].tail(3).to_list()

        for params, code in [
            ({"symbol": "NOPEUSDT", "interval": "5m"}, -1121),
            ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
            ({"interval": "5m"}, -1102),
            ({"symbol": "BTCUSDT", "interval": "5m", "limit": "1501"}, -1130),
            ({"symbol": "BTCUSDT", "interval": "5m", "startTime": "abc"}, -1100),
        ]:
            status, body, _ = await _get(http, "/fapi/v1/klines", **params)
            assert (status, body["code"]) == (400, code)
        assert (await _get(http, "/fapi/v1/depth", symbol="NOPEUSDT"))[1] == {
            "code": -1121,
            "msg": "Invalid symbol.",
        }
    logged = [(path, query) for _, path, query in server.rest_log]
    assert logged[:2] == [("/fapi/v1/ping", {}), ("/fapi/v1/time", {})]
    assert ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "5m", "limit": "99"}) in logged
    monotonic = [t for t, _, _ in server.rest_log]
    assert monotonic == sorted(monotonic) and monotonic[-1] <= time.monotonic()


async def test_injected_rest_faults(eth_btc_server: ReplayServer) -> None:
    server = eth_btc_server
    server.inject_rest_fault("/fapi/v1/klines", 429, headers={"Retry-After": "3"}, count=2)
    server.inject_rest_fault("/fapi/v1/depth", 418)
    server.inject_rest_fault("/fapi/v1/time", 503, body={"code": -1, "msg": "custom"})
    server.inject_rest_fault("/fapi/v1/ping", 200, delay_s=0.3)
    params = {"symbol": "BTCUSDT", "interval": "5m", "limit": "10"}
    async with aiohttp.ClientSession(server.rest_url) as http:
        for _ in range(2):
            async with http.get("/fapi/v1/klines", params=params) as resp:
                assert resp.status == 429 and resp.headers["Retry-After"] == "3"
                assert (await resp.json())["code"] == -1003
                assert "X-MBX-USED-WEIGHT-1M" in resp.headers
        async with http.get("/fapi/v1/klines", params=params) as resp:
            assert resp.status == 200 and len(await resp.json()) == 10
        async with http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT"}) as resp:
            assert resp.status == 418 and "IP banned until" in (await resp.json())["msg"]
        async with http.get("/fapi/v1/time") as resp:
            assert resp.status == 503 and await resp.json() == {"code": -1, "msg": "custom"}
        began = time.monotonic()
        async with http.get("/fapi/v1/ping") as resp:
            assert resp.status == 200 and await resp.json() == {}
        assert time.monotonic() - began >= 0.29
        async with http.get("/fapi/v1/time") as resp:
            assert resp.status == 200
    assert [path for _, path, _ in server.rest_log].count("/fapi/v1/klines") == 3
    with pytest.raises(ValueError, match="count"):
        server.inject_rest_fault("/fapi/v1/time", 500, count=0)


async def test_mark_price_arrays_once_per_kline_timestamp_at_max_speed(
    eth_btc_server: ReplayServer,
) -> None:
    server = eth_btc_server
    streams = "!markPrice@arr@1s/ethusdt@markPrice@1s/btcusdt@kline_5m"
    arrays: list[list[dict[str, Any]]] = []
    singles: list[dict[str, Any]] = []
    async with connect(f"{server.ws_url}/market/stream?streams={streams}") as ws:
        while len(arrays) < 30:
            msg = await recv_json(ws)
            if msg["stream"] == "!markPrice@arr@1s":
                arrays.append(msg["data"])
            elif msg["stream"] == "ethusdt@markPrice@1s":
                singles.append(msg["data"])
    times = [a[0]["E"] for a in arrays]
    assert times == sorted(set(times))  # one array per distinct timeline time
    assert times[0] == START and all(t % MINUTE == 0 for t in times)
    mark = read_feather("BTC_USDT_USDT-8h-mark.feather")
    funding = read_feather("BTC_USDT_USDT-8h-funding_rate.feather")
    for array in arrays:
        assert [u["s"] for u in array] == ["BTCUSDT", "ETHUSDT"]
        btc = array[0]
        t = btc["E"]
        assert btc["e"] == "markPriceUpdate" and btc["T"] == (t // EIGHT_H + 1) * EIGHT_H
        assert float(btc["p"]) == pytest.approx(mark.filter(mark["t"] <= t)["open"][-1], abs=1e-8)
        assert float(btc["r"]) == funding.filter(funding["t"] <= t)["open"][-1]
        assert btc["i"] == btc["p"]  # index price is not recorded: the mark stands in
    assert [s["E"] for s in singles][: len(arrays) - 1] == times[: len(arrays) - 1]
    assert singles[0] == arrays[0][1]


async def test_finite_speed_paces_by_the_replay_clock() -> None:
    server = ReplayServer(
        KLINES_55, speed=600, timeframes=["5m"], history_bars={"5m": 50}, symbols=["BTCUSDT"]
    )
    await server.start()
    try:
        async with connect(f"{server.ws_url}/market/stream") as ws:
            await control(ws, "SUBSCRIBE", ["btcusdt@kline_5m"], 1)
            began = time.monotonic()
            start = server.start_ms
            arrivals: list[tuple[float, int, bool]] = []
            while sum(1 for a in arrivals if a[2]) < 4:
                msg = await recv_json(ws)
                arrivals.append((time.monotonic() - began, msg["data"]["E"], msg["data"]["k"]["x"]))
            clock = server.replay_time_ms
            elapsed = time.monotonic() - began
    finally:
        await server.stop()
    assert arrivals[0][1] == start and not arrivals[0][2]  # forming at the open, right away
    assert arrivals[0][0] < 0.2
    for wall, event_ms, _ in arrivals:
        due = (event_ms - start) / 1000 / 600  # 5m of replay = 0.5 s of wall time
        assert due - 0.05 <= wall <= due + 0.25, (wall, due)
    assert arrivals[-1][1] == start + 4 * 5 * MINUTE
    assert abs(clock - (start + elapsed * 600_000)) < 0.3 * 600_000


async def test_max_speed_waits_for_a_slow_reader_without_losing_frames() -> None:
    server = ReplayServer(
        KLINES_55,
        speed=None,
        timeframes=["1m", "5m"],
        history_bars={"1m": 10},
        symbols=["ETHUSDT"],
    )
    await server.start()
    try:
        async with connect(
            f"{server.ws_url}/market/stream?streams=ethusdt@kline_1m", max_queue=4
        ) as ws:
            closes: list[int] = []
            for _ in range(10):
                k = (await recv_json(ws))["data"]["k"]
                if k["x"]:
                    closes.append(k["t"])
            await asyncio.sleep(0.5)  # stop reading: the server must stall
            stalled = server.frames_sent
            await asyncio.sleep(0.3)
            assert server.frames_sent == stalled
            assert stalled < 2 * 40_000  # far from the end of the month of 1m candles
            while len(closes) < 20_000:
                k = (await recv_json(ws))["data"]["k"]
                if k["x"]:
                    closes.append(k["t"])
    finally:
        await server.stop()
    assert np.all(np.diff(closes) == MINUTE)  # every candle, in order, none lost


async def test_drop_pause_resume_and_finish() -> None:
    server = ReplayServer(
        KLINES_55, speed=600, timeframes=["5m"], history_bars={"5m": 50}, symbols=["BTCUSDT"]
    )
    await server.start()
    url = f"{server.ws_url}/market/stream?streams=btcusdt@kline_5m"
    try:
        async with connect(url) as ws:
            await recv_json(ws)
            assert server.connections == 1
            assert server.drop_connections() == 1
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(2):
                    while True:
                        await ws.recv()
        clock_at_drop = server.replay_time_ms
        await asyncio.sleep(0.6)
        assert server.replay_time_ms >= clock_at_drop + 300_000  # the timeline went on
        async with connect(url) as ws:
            first = await recv_json(ws)
            assert first["data"]["E"] >= clock_at_drop + 300_000  # missed frames are gone
            server.pause_streaming()
            paused_at = server.replay_time_ms
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    while True:  # frames already on the wire (same timestamp) may still land
                        await ws.recv()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.8)
            pong = await ws.ping()
            await asyncio.wait_for(pong, 2)  # the socket itself is alive
            server.resume_streaming()
            after = await recv_json(ws)
            assert after["data"]["E"] >= paused_at + 0.7 * 480_000
            assert server.frames_skipped >= 2
    finally:
        await server.stop()


async def test_wait_finished_and_manual_start() -> None:
    history = load_kline_history(KLINES_55, ["BTCUSDT"])
    btc = history.klines["BTCUSDT"]["5m"]
    start = int(btc.open_ms[-6])
    server = ReplayServer(
        KLINES_55,
        speed=None,
        start_ms=start,
        timeframes=["5m"],
        symbols=["BTCUSDT"],
        autostart=False,
    )
    await server.start()
    try:
        async with connect(f"{server.ws_url}/market/stream") as ws:
            await control(ws, "SUBSCRIBE", ["btcusdt@kline_5m"], 1)
            assert server.subscribed_streams() == {"btcusdt@kline_5m"}
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
            assert server.replay_time_ms == start
            server.start_streaming()
            async with asyncio.timeout(5):
                await server.wait_finished()
            frames: list[dict[str, Any]] = []
            while len(frames) < server.frames_sent:
                frames.append((await recv_json(ws))["data"]["k"])
    finally:
        await server.stop()
    assert [k["t"] for k in frames if k["x"]] == btc.open_ms[-6:].tolist()
    assert (
        len(frames) == 12
        and server.replay_time_ms == server.end_ms == int(btc.open_ms[-1]) + 300_000
    )


async def test_csv_replay_without_mark_file_uses_the_last_close(tmp_path: Path) -> None:
    rows = read_feather("BTC_USDT_USDT-5m-futures.feather").head(60)
    rows.select(pl.col("t").alias("open_time"), "open", "high", "low", "close", "volume").write_csv(
        tmp_path / "BTCUSDT_klines.csv"
    )
    (tmp_path / "ZZZ_USDT_USDT-5m-futures.feather").write_bytes(b"not arrow")
    server = ReplayServer(tmp_path, speed=None, timeframes=["5m"], history_bars={"5m": 50})
    await server.start()
    try:
        assert server.symbols == ["BTCUSDT"]
        assert len(server.skipped) == 1 and "ZZZ_USDT_USDT-5m-futures.feather" in server.skipped[0]
        assert server.start_ms == rows["t"][50]
        async with aiohttp.ClientSession(server.rest_url) as http:
            _, premium, _ = await _get(http, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
            _, info, _ = await _get(http, "/fapi/v1/exchangeInfo")
    finally:
        await server.stop()
    assert float(premium["markPrice"]) == rows["close"][49]  # no mark file: last closed candle
    assert premium["lastFundingRate"] == "0.00000000"
    assert info["symbols"][0]["symbol"] == "BTCUSDT"
    with pytest.raises(ReplayDataError, match=r"ZZZ_USDT_USDT-5m-futures\.feather: cannot read"):
        await ReplayServer(tmp_path / "ZZZ_USDT_USDT-5m-futures.feather").start()


async def test_mark_price_every_replay_second_at_finite_speed() -> None:
    server = ReplayServer(
        KLINES_55, speed=60, timeframes=["5m"], history_bars={"5m": 50}, symbols=["BTCUSDT"]
    )
    await server.start()
    try:
        async with connect(f"{server.ws_url}/market/stream?streams=!markPrice@arr@1s") as ws:
            began = time.monotonic()
            times = [(await recv_json(ws))["data"][0]["E"] for _ in range(30)]
            elapsed = time.monotonic() - began
    finally:
        await server.stop()
    assert times[0] == server.start_ms
    assert np.diff(times).tolist() == [1000] * 29  # one array per replay second
    assert 29 / 60 - 0.05 <= elapsed <= 29 / 60 + 0.3  # 60 replay seconds per wall second
