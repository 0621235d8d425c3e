"""Capture replay over a real loopback WebSocket: recorded frames, aliases, pacing, REST."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
import pytest
import websockets
from replay_data import CRYPTOFEED_WS, HFT, connect, eventually, recv_json

from feeds.replay.captures import Capture, split_envelope
from feeds.replay.server import ReplayServer
from feeds.replay.wire import route_of

CF_SYMBOLS = ("sushiusdt", "akrousdt", "keepusdt", "ctkusdt")


async def _drain(ws: websockets.ClientConnection, out: list[str], quiet_s: float = 0.3) -> None:
    """Read until the connection has been silent for ``quiet_s``."""
    while True:
        try:
            out.append(str(await asyncio.wait_for(ws.recv(), quiet_s)))
        except TimeoutError:
            return


async def test_cryptofeed_capture_replays_every_frame_on_its_route() -> None:
    recorded = list(Capture(CRYPTOFEED_WS).frames())
    server = ReplayServer(CRYPTOFEED_WS, speed=None, autostart=False)
    await server.start()
    public_streams = "/".join(f"{s}@{k}" for s in CF_SYMBOLS for k in ("depth@100ms", "bookTicker"))
    market_streams = "/".join(f"{s}@{k}" for s in CF_SYMBOLS for k in ("aggTrade", "kline_1m"))
    public: list[str] = []
    market: list[str] = []
    try:
        assert server.source_kind == "capture"
        assert server.symbols == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
        assert (server.start_ms, server.end_ms) == (recorded[0].recv_ms, recorded[-1].recv_ms)
        async with (
            websockets.connect(f"{server.ws_url}/public/stream?streams={public_streams}") as pub,
            websockets.connect(f"{server.ws_url}/market/stream?streams={market_streams}") as mkt,
        ):
            await eventually(lambda: len(server.subscribed_streams()) == 16)
            server.start_streaming()
            async with asyncio.timeout(10):
                await asyncio.gather(_drain(pub, public), _drain(mkt, market))
                await server.wait_finished()
    finally:
        await server.stop()
    # Byte-identical frames, recorded order, each on its own route only.
    assert public == [f.raw for f in recorded if route_of(f.stream) == "public"]
    assert market == [f.raw for f in recorded if route_of(f.stream) == "market"]
    assert len(public) == 764 + 613 and len(market) == 91 + 67
    assert server.frames_sent == 1535
    assert server.replay_time_ms == recorded[-1].recv_ms


async def test_depth_aliases_renamed_and_rest_snapshot_syncs() -> None:
    path = HFT / "btcusdt_20240718.gz"
    diffs = [f for f in Capture(path).frames() if f.stream == "btcusdt@depth@0ms"]
    server = ReplayServer(path, speed=None)
    await server.start()
    received: list[dict[str, Any]] = []
    try:
        params = {"symbol": "BTCUSDT", "limit": "5"}
        async with (
            aiohttp.ClientSession(server.rest_url) as http,
            http.get("/fapi/v1/depth", params=params) as resp,
        ):
            book = await resp.json()
            assert resp.headers["X-MBX-USED-WEIGHT-1M"] == "2"
        assert book["lastUpdateId"] == 4984028384061
        assert len(book["bids"]) == len(book["asks"]) == 5
        assert book["bids"][0] == ["63943.90", "46.372"]
        streams = "btcusdt@depth@100ms/btcusdt@depth"
        async with (
            connect(f"{server.ws_url}/market/stream?streams={streams}") as wrong_route,
            websockets.connect(f"{server.ws_url}/public/stream?streams={streams}") as ws,
        ):
            async with asyncio.timeout(10):
                while len(received) < 2 * len(diffs):
                    received.append(await recv_json(ws))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(wrong_route.recv(), 0.2)
    finally:
        await server.stop()
    # Each recorded @depth@0ms frame reaches both subscriptions, renamed to what was asked.
    assert [m["stream"] for m in received[:4]] == [
        "btcusdt@depth@100ms",
        "btcusdt@depth",
        "btcusdt@depth@100ms",
        "btcusdt@depth",
    ]
    bodies = [m["data"] for m in received if m["stream"] == "btcusdt@depth@100ms"]
    assert bodies == [json.loads(split_envelope(f.raw)[1]) for f in diffs]
    # The Binance sync procedure works on the replayed data: a diff brackets the snapshot.
    last_id = book["lastUpdateId"]
    assert any(d["U"] <= last_id <= d["u"] for d in bodies)
    assert all(b["pu"] == a["u"] for a, b in itertools.pairwise(bodies))


async def test_capture_rest_is_derived_from_the_frames() -> None:
    path = HFT / "btcusdt_20230404.dat.gz"
    frames = list(Capture(path).frames())
    trades = [json.loads(split_envelope(f.raw)[1]) for f in frames if f.stream.endswith("@trade")]
    marks = [json.loads(split_envelope(f.raw)[1]) for f in frames if "markPrice" in f.stream]
    server = ReplayServer(path, speed=None)
    await server.start()
    try:
        async with connect(f"{server.ws_url}/market/stream?streams=btcusdt@markPrice@1s") as ws:
            async with asyncio.timeout(10):
                await server.wait_finished()
            assert (await recv_json(ws))["data"] == marks[0]
        async with aiohttp.ClientSession(server.rest_url) as http:
            info = await (await http.get("/fapi/v1/exchangeInfo")).json()
            ticker = await (await http.get("/fapi/v1/ticker/24hr?symbol=BTCUSDT")).json()
            klines = await (
                await http.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=10")
            ).json()
            premium = await (await http.get("/fapi/v1/premiumIndex?symbol=BTCUSDT")).json()
            funding = await (await http.get("/fapi/v1/fundingRate?symbol=BTCUSDT")).json()
    finally:
        await server.stop()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
    assert ticker["lastPrice"] == trades[-1]["p"] and ticker["openPrice"] == trades[0]["p"]
    assert ticker["count"] == len(trades) == 2197
    assert float(ticker["volume"]) == pytest.approx(sum(float(t["q"]) for t in trades))
    assert sum(float(k[5]) for k in klines) == pytest.approx(sum(float(t["q"]) for t in trades))
    assert klines[0][1] == trades[0]["p"] and klines[-1][4] == trades[-1]["p"]
    assert premium["markPrice"] == marks[-1]["p"] and premium["lastFundingRate"] == marks[-1]["r"]
    assert funding == []


async def test_finite_speed_keeps_recorded_pacing() -> None:
    recorded = [f for f in Capture(CRYPTOFEED_WS).frames() if f.stream == "ctkusdt@kline_1m"]
    span_s = (recorded[-1].recv_ms - recorded[0].recv_ms) / 1000
    server = ReplayServer(CRYPTOFEED_WS, speed=30)
    await server.start()
    arrivals: list[float] = []
    try:
        async with websockets.connect(
            f"{server.ws_url}/market/stream?streams=ctkusdt@kline_1m"
        ) as ws:
            began = time.monotonic()
            async with asyncio.timeout(10):
                while len(arrivals) < len(recorded):
                    await ws.recv()
                    arrivals.append(time.monotonic() - began)
    finally:
        await server.stop()
    start = server.start_ms
    for wall, frame in zip(arrivals, recorded, strict=True):
        due = (frame.recv_ms - start) / 1000 / 30
        assert due - 0.05 <= wall <= due + 0.25, (wall, due)
    assert arrivals[-1] == pytest.approx(
        span_s / 30 + (recorded[0].recv_ms - start) / 30_000, abs=0.25
    )


async def test_folder_of_sessions_skips_the_year_between_them() -> None:
    marks = [f for f in Capture(HFT).frames() if f.stream == "btcusdt@markPrice@1s"]
    server = ReplayServer(HFT, speed=2000)
    await server.start()
    got: list[str] = []
    try:
        assert server.symbols == ["BTCUSDT", "ETHUSDT"]
        async with websockets.connect(
            f"{server.ws_url}/market/stream?streams=btcusdt@markPrice@1s"
        ) as ws:
            began = time.monotonic()
            async with asyncio.timeout(15):
                await server.wait_finished()
            await _drain(ws, got, 0.2)
            elapsed = time.monotonic() - began
    finally:
        await server.stop()
    assert got == [f.raw for f in marks]
    # 2023-04-04/05 and 2024-07-18/19 sessions: ~16 min of data, not a year, at 2000x.
    assert elapsed < 8
