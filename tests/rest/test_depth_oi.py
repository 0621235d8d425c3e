"""Depth snapshots and open interest through ccxt against the loopback replay of the
cryptofeed capture (real recorded frames and REST snapshots): the replay exchange's reference
book, weight accounting, dropped frames, stale snapshots and the missing openInterest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from rest_support import SHARED_DATA, MakeRest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.events import DepthDiff, DepthSnapshot
from feeds.replay.captures import Capture
from feeds.replay.rest_api import OPEN_INTEREST_NOT_RECORDED
from feeds.replay.server import ReplayServer
from feeds.rest import RestError, RestUnavailable

CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
"""30 s of SUSHI/AKRO/KEEP/CTK USDT frames + the REST depth snapshots of that session."""
SYMBOLS = ("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")

Book = tuple[int, dict[float, float], dict[float, float]]


def recorded_snapshots() -> dict[str, dict[str, Any]]:
    """symbol → recorded ``GET /fapi/v1/depth`` body (one per symbol in this capture)."""
    snaps = Capture(CAPTURE).depth_snapshots()
    assert sorted(s.symbol for s in snaps) == sorted(SYMBOLS)
    return {s.symbol: json.loads(s.body) for s in snaps}


def recorded_diffs(symbol: str) -> list[DepthDiff]:
    """Every recorded diff of ``symbol``, decoded with the adapter's decoder."""
    decoder = BinanceFrameDecoder()
    out: list[DepthDiff] = []
    for frame in Capture(CAPTURE).frames():
        if frame.stream == f"{symbol.lower()}@depth@100ms":
            (event,) = decoder.decode_frame(frame.raw, 0)[1]
            assert isinstance(event, DepthDiff)
            out.append(event)
    return out


def reconstruct(snapshot: dict[str, Any], diffs: list[DepthDiff]) -> Book:
    """Binance's documented futures procedure (FEEDS.md §1.6), written out independently of
    both the client's ``feeds/orderbook.py`` and the server's ``depth_book``."""
    last = int(snapshot["lastUpdateId"])
    bids = {float(p): float(q) for p, q in snapshot["bids"]}
    asks = {float(p): float(q) for p, q in snapshot["asks"]}
    first = True
    for diff in diffs:
        if diff.final_update_id < last:
            continue
        if first:
            assert diff.first_update_id <= last <= diff.final_update_id
            first = False
        else:
            assert diff.prev_final_update_id == last
        for side, levels in ((bids, diff.bids), (asks, diff.asks)):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        last = diff.final_update_id
    return last, bids, asks


def assert_book(snap: DepthSnapshot, book: Book, limit: int = 1000) -> None:
    last, bids, asks = book
    assert snap.last_update_id == last
    assert list(snap.bids) == sorted(bids.items(), reverse=True)[:limit]
    assert list(snap.asks) == sorted(asks.items())[:limit]


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    """Max-speed capture replay that streams only once the test calls start_streaming()."""
    srv = ReplayServer(CAPTURE, speed=None, autostart=False)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def subscribe(server: ReplayServer, streams: list[str]) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"{server.ws_url}/public/stream?streams={'/'.join(streams)}", max_queue=4
    )
    async with asyncio.timeout(5):
        while server.subscribed_streams() != set(streams):  # noqa: ASYNC110 - server state
            await asyncio.sleep(0.01)
    return ws


async def drain(ws: websockets.ClientConnection, out: list[tuple[str, str]]) -> None:
    """Read (stream, raw frame) until the socket has been quiet for 0.3 s."""
    while True:
        try:
            raw = str(await asyncio.wait_for(ws.recv(), 0.3))
        except TimeoutError:
            return
        out.append((json.loads(raw)["stream"], raw))


def decode_diffs(frames: list[tuple[str, str]], stream: str) -> list[DepthDiff]:
    decoder = BinanceFrameDecoder()
    out = []
    for name, raw in frames:
        if name == stream:
            (event,) = decoder.decode_frame(raw, 0)[1]
            assert isinstance(event, DepthDiff)
            out.append(event)
    return out


async def test_snapshot_is_the_recorded_one_then_follows_the_stream(
    server: ReplayServer, make_rest: MakeRest
) -> None:
    snapshots = recorded_snapshots()
    rest = make_rest(server.rest_url)
    # Before streaming: exactly the recorded snapshot (what exists at that point).
    async with asyncio.timeout(10):
        sushi = await rest.depth_snapshot("sushiusdt")
        akro = await rest.depth_snapshot("AKROUSDT", limit=100)
    body = snapshots["SUSHIUSDT"]
    assert sushi.symbol == "SUSHIUSDT" and sushi.last_update_id == body["lastUpdateId"]
    assert sushi.exchange_time == body["E"] and sushi.recv_time > 0
    assert list(sushi.bids) == [(float(p), float(q)) for p, q in body["bids"]]
    assert list(sushi.asks) == [(float(p), float(q)) for p, q in body["asks"]]
    assert len(sushi.bids) == len(body["bids"]) > 100
    assert akro.last_update_id == snapshots["AKROUSDT"]["lastUpdateId"]
    akro_bids = [(float(p), float(q)) for p, q in snapshots["AKROUSDT"]["bids"]]
    assert list(akro.bids) == akro_bids[:100]
    # Weight accounting: depth 1000 costs 20, depth 100 costs 5 (FEEDS.md §1.7), counted by
    # the client's budget and by the server's X-MBX-USED-WEIGHT-1M; no other request was made.
    assert [(path, query) for _, path, query in server.rest_log] == [
        ("/fapi/v1/depth", {"symbol": "SUSHIUSDT", "limit": "1000"}),
        ("/fapi/v1/depth", {"symbol": "AKROUSDT", "limit": "100"}),
    ]
    assert rest.budget.state.server_used == 25
    assert rest.budget.used() == 25

    # Stream part of the capture, pause, and ask again: the exchange's book has moved on.
    streams = [f"{s.lower()}@depth@100ms" for s in SYMBOLS]
    ws = await subscribe(server, streams)
    received: list[tuple[str, str]] = []
    try:
        server.start_streaming()
        async with asyncio.timeout(10):
            while len(received) < 40:
                raw = str(await ws.recv())
                received.append((json.loads(raw)["stream"], raw))
            server.pause_streaming()
            await drain(ws, received)
            books = {s: await rest.depth_snapshot(s) for s in SYMBOLS}
    finally:
        ws.transport.abort()
    total = sum(len(recorded_diffs(s)) for s in SYMBOLS)
    assert 40 <= len(received) < total  # paused part-way through the recorded diffs
    for symbol in SYMBOLS:
        diffs = decode_diffs(received, f"{symbol.lower()}@depth@100ms")
        assert diffs, symbol
        book = reconstruct(snapshots[symbol], diffs)
        assert book[0] == diffs[-1].final_update_id  # the last diff passed
        assert books[symbol].last_update_id > snapshots[symbol]["lastUpdateId"]
        assert_book(books[symbol], book)


async def test_drop_frames_drops_exactly_n_of_that_stream_only(
    server: ReplayServer, make_rest: MakeRest
) -> None:
    recorded = recorded_diffs("SUSHIUSDT")
    streams = ["sushiusdt@depth@100ms", "sushiusdt@depth", "akrousdt@depth@100ms"]
    ws = await subscribe(server, streams)
    received: list[tuple[str, str]] = []
    try:
        server.start_streaming()
        async with asyncio.timeout(10):
            while sum(1 for name, _ in received if name == streams[0]) < 20:
                raw = str(await ws.recv())
                received.append((json.loads(raw)["stream"], raw))
            server.drop_frames("sushiusdt@depth@100ms", 3)
            await asyncio.gather(drain(ws, received), server.wait_finished())
    finally:
        ws.transport.abort()
    assert server.frames_dropped == 3
    got = decode_diffs(received, "sushiusdt@depth@100ms")
    ids = [d.final_update_id for d in got]
    all_ids = [d.final_update_id for d in recorded]
    assert len(ids) == len(all_ids) - 3
    # Exactly one gap of three consecutive recorded frames, after the 20th received.
    cut = next(i for i, (a, b) in enumerate(zip(ids, all_ids, strict=False)) if a != b)
    assert cut >= 20 and ids == all_ids[:cut] + all_ids[cut + 3 :]
    breaks = [i for i in range(1, len(got)) if got[i].prev_final_update_id != ids[i - 1]]
    assert breaks == [cut]
    # The same data under another name, and another symbol, lost nothing.
    assert [d.final_update_id for d in decode_diffs(received, "sushiusdt@depth")] == all_ids
    assert len(decode_diffs(received, "akrousdt@depth@100ms")) == len(recorded_diffs("AKROUSDT"))

    # The dropped frames still happened on the exchange: the book includes them.
    rest = make_rest(server.rest_url)
    async with asyncio.timeout(10):
        book = await rest.depth_snapshot("SUSHIUSDT")
    assert_book(book, reconstruct(recorded_snapshots()["SUSHIUSDT"], recorded))
    assert book.last_update_id == all_ids[-1]
    with pytest.raises(ValueError, match="count >= 1"):
        server.drop_frames("sushiusdt@depth@100ms", 0)


async def test_inject_stale_depth_serves_the_first_snapshot(
    server: ReplayServer, make_rest: MakeRest
) -> None:
    first_id = recorded_snapshots()["CTKUSDT"]["lastUpdateId"]
    last_id = recorded_diffs("CTKUSDT")[-1].final_update_id
    ws = await subscribe(server, ["ctkusdt@depth@100ms"])
    try:
        server.start_streaming()
        async with asyncio.timeout(10):
            await asyncio.gather(drain(ws, []), server.wait_finished())
    finally:
        ws.transport.abort()
    rest = make_rest(server.rest_url)
    server.inject_stale_depth("ctkusdt", 2)
    async with asyncio.timeout(10):
        ids = [(await rest.depth_snapshot("CTKUSDT", limit=5)).last_update_id for _ in range(3)]
    assert ids == [first_id, first_id, last_id] and first_id < last_id
    with pytest.raises(ValueError, match="no depth snapshot recorded for BTCUSDT"):
        server.inject_stale_depth("BTCUSDT")
    with pytest.raises(ValueError, match="count"):
        server.inject_stale_depth("CTKUSDT", 0)


async def test_open_interest_is_not_offered_by_the_replay(
    server: ReplayServer, make_rest: MakeRest
) -> None:
    rest = make_rest(server.rest_url)
    async with asyncio.timeout(10):
        with pytest.raises(RestUnavailable) as caught:
            await rest.open_interest("SUSHIUSDT")
    assert caught.value.path == "/fapi/v1/openInterest"
    assert caught.value.cause == OPEN_INTEREST_NOT_RECORDED
    assert "open interest SUSHIUSDT" in str(caught.value) and "HTTP 404" in str(caught.value)
    assert isinstance(caught.value, RestError)
    # Not retried: one request, weight 1.
    assert [path for _, path, _ in server.rest_log] == ["/fapi/v1/openInterest"]
    assert rest.budget.state.server_used == 1


async def test_malformed_depth_bodies_name_the_symbol_and_the_problem(
    server: ReplayServer, make_rest: MakeRest
) -> None:
    body = recorded_snapshots()["KEEPUSDT"]
    reversed_bids = {**body, "bids": body["bids"][::-1]}
    no_id = {key: value for key, value in body.items() if key != "lastUpdateId"}
    bad_qty = {**body, "asks": [[body["asks"][0][0], "lots"], *body["asks"][1:]]}
    server.inject_rest_fault("/fapi/v1/depth", 200, body=reversed_bids)
    server.inject_rest_fault("/fapi/v1/depth", 200, body=no_id)
    server.inject_rest_fault("/fapi/v1/depth", 200, body=bad_qty)
    rest = make_rest(server.rest_url)
    async with asyncio.timeout(10):
        with pytest.raises(RestError, match=r"depth KEEPUSDT: .* bids not strictly descending"):
            await rest.depth_snapshot("KEEPUSDT")
        with pytest.raises(RestError, match=r"depth KEEPUSDT: .*malformed.*lastUpdateId"):
            await rest.depth_snapshot("KEEPUSDT")
        with pytest.raises(RestError, match=r"depth KEEPUSDT: .*malformed.*asks"):
            await rest.depth_snapshot("KEEPUSDT")
        with pytest.raises(RestError, match="Invalid symbol"):
            await rest.depth_snapshot("BTCUSDT")
        with pytest.raises(ValueError, match="depth limit"):
            await rest.depth_snapshot("KEEPUSDT", limit=7)
        # The faults are used up: the real book again.
        assert (await rest.depth_snapshot("KEEPUSDT")).last_update_id == body["lastUpdateId"]
