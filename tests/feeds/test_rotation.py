"""Make-before-break rotation against the loopback replay server (real recorded data).

FEEDS.md §4 A.1 / §5 Connection 2: after ``rotate_after_s`` the connection opens and subscribes
a new socket before closing the old one, and downstream sees every frame exactly once: no
aggTrade id missing or repeated, the depth ``pu`` → ``u`` chain unbroken (no book resync). A
new socket that never delivers makes the rotation fall back to a plain reconnect, saying why.

The replay server sends each recorded event to every socket subscribed at that moment, as
Binance does, so during the overlap both sockets receive the same frames.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
from collections import defaultdict
from contextlib import suppress
from pathlib import Path
from typing import Any

import msgspec
import pytest
from connection_support import (
    BTC_CAPTURE,
    CRYPTOFEED_CAPTURE,
    DEPTH,
    STALE_S,
    TICKER,
    replay,
    replay_config,
    running,
    until,
)

from feeds.binance_futures import BinanceFuturesFeed
from feeds.config import EndpointConfig, FeedConfig
from feeds.events import DepthDiff, FeedState, FeedStatus, Trade
from feeds.replay.captures import Capture
from feeds.replay.server import ReplayServer

pytestmark = pytest.mark.timeout(40)

def rotation_config(**overrides: Any) -> FeedConfig:
    """:func:`replay_config` rotating every 0.6 s, stable after 0.3 s (overrides win)."""
    return replay_config(**{"stable_after_s": 0.3, "rotate_after_s": 0.6, **overrides})


def events(server: ReplayServer, label: str) -> dict[str, float]:
    """``open`` / ``close`` time of connection ``label`` as the server saw it."""
    return {what: at for name, what, at in server.connection_log if name == label}


def first_subscribe(server: ReplayServer, label: str) -> float:
    return next(
        at for name, at, msg in server.control_log if name == label and msg["method"] == "SUBSCRIBE"
    )


def assert_made_before_broken(server: ReplayServer, old: str, new: str) -> None:
    """``new`` was opened and subscribed while ``old`` was still open."""
    closed = events(server, old)["close"]
    assert events(server, new)["open"] < first_subscribe(server, new) < closed


def recorded(path: Path, stream: str, field: str) -> list[int]:
    """``field`` of every recorded frame of ``stream``, in recorded order."""
    return [
        msgspec.json.decode(frame.raw)["data"][field]
        for frame in Capture(path).frames()
        if frame.stream == stream
    ]


async def test_rotation_is_make_before_break_with_no_frame_lost_or_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="feeds.connection")
    async with (
        replay(BTC_CAPTURE, speed=4.0) as server,
        running(server, rotation_config()) as (conn, recorder, stats),
        asyncio.timeout(20),
    ):
        await until(lambda: conn.rotations >= 2, 8, "two rotations")
        rotated = len(recorder.frames)
        await until(lambda: len(recorder.frames) > rotated + 50, 5, "data afterwards")
        sockets = stats.connections_open
    # (1) Every socket was opened and subscribed before its predecessor closed.
    opened = [name for name, what, _ in server.connection_log if what == "open"]
    assert opened[:3] == ["public-1", "public-2", "public-3"]
    assert_made_before_broken(server, "public-1", "public-2")
    assert_made_before_broken(server, "public-2", "public-3")
    subscribe = next(m for n, _, m in server.control_log if n == "public-2")
    assert subscribe["method"] == "SUBSCRIBE" and subscribe["params"] == sorted([DEPTH, TICKER])
    # (2) Downstream got exactly the recorded sequence from its start: nothing missing,
    # nothing twice, across both swaps; the depth chain never breaks (no resync).
    depth = recorder.payloads(DEPTH)
    assert [d["u"] for d in depth] == recorded(BTC_CAPTURE, "btcusdt@depth@0ms", "u")[: len(depth)]
    for before, after in itertools.pairwise(depth):
        assert after["pu"] == before["u"], "depth chain broken"
    tickers = [t["u"] for t in recorder.payloads(TICKER)]
    assert tickers == recorded(BTC_CAPTURE, TICKER, "u")[: len(tickers)]
    assert conn.reconnects == 0 and stats.reconnects == 0
    assert stats.rotations == conn.rotations >= 2 and conn.rotation_fallbacks == 0
    assert sockets == 1
    assert not [s for s in recorder.statuses if s.state is FeedState.RECONNECTING]
    assert not [s for s in recorder.statuses if s.stream]  # nothing went stale meanwhile
    rotated_statuses = [s for s in recorder.statuses if "rotated" in s.reason]
    assert rotated_statuses and all(s.state is FeedState.LIVE for s in rotated_statuses)
    assert "opening the new connection first" in caplog.text
    # Depth is matched before the swap; the book ticker (it pushes only when the best bid/ask
    # moves, so the rotation does not wait for it) may switch only once the old socket drained.
    assert re.search(r"\(make-before-break\): [12] of 2 streams matched", caplog.text)
    assert recorder.bad == []


async def test_agg_trade_ids_and_depth_chains_survive_rotations_through_the_adapter() -> None:
    symbols = ("sushiusdt", "ctkusdt", "akrousdt", "keepusdt")
    trades = [f"{s}@aggTrade" for s in symbols]
    depths = ["sushiusdt@depth@100ms", "ctkusdt@depth@100ms"]
    async with replay(CRYPTOFEED_CAPTURE, speed=4.0) as server:
        feed = BinanceFuturesFeed(
            EndpointConfig(ws_url=server.ws_url),
            rotation_config(stale_after_s=1.0),
            rng=random.Random(3),
        )
        feed.set_streams(trades + depths)
        delivered: list[object] = []
        task = asyncio.create_task(feed.run(delivered.append))
        try:
            async with asyncio.timeout(25):
                await until(
                    lambda: (
                        feed.stats.rotations >= 6
                        and sum(isinstance(e, Trade) for e in delivered) >= 40
                    ),
                    15,
                    "rotations of both connections while trades flow",
                )
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    labels = {name for name, _, _ in server.connection_log}
    for route in ("public", "market"):
        mine = sorted(
            (name for name in labels if name.startswith(route)),
            key=lambda n: int(n[len(route) + 1 :]),
        )
        assert len(mine) >= 3
        for old, new in itertools.pairwise(mine):
            assert_made_before_broken(server, old, new)
    ids: dict[str, list[int]] = defaultdict(list)
    diffs: dict[str, list[DepthDiff]] = defaultdict(list)
    for event in delivered:
        if isinstance(event, Trade):
            ids[event.symbol].append(event.trade_id)
        elif isinstance(event, DepthDiff):
            diffs[event.symbol].append(event)
    for stream in trades:
        got = ids[stream.split("@")[0].upper()]
        assert got == recorded(CRYPTOFEED_CAPTURE, stream, "a")[: len(got)], stream
        assert all(b == a + 1 for a, b in itertools.pairwise(got)), stream  # 0 missing, 0 twice
    assert sum(len(got) for got in ids.values()) >= 40
    for stream in depths:
        chain = diffs[stream.split("@")[0].upper()]
        assert len(chain) > 30
        for before, after in itertools.pairwise(chain):
            assert after.prev_final_update_id == before.final_update_id, stream
    assert feed.stats.reconnects == 0 and feed.stats.decode_errors == 0
    assert not [
        e for e in delivered if isinstance(e, FeedStatus) and e.state is FeedState.RECONNECTING
    ]


async def test_a_silent_new_socket_falls_back_to_a_plain_reconnect_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.connection")
    async with (
        replay(BTC_CAPTURE, speed=4.0) as server,
        running(server, rotation_config(rotate_after_s=1.0)) as (conn, recorder, _),
        asyncio.timeout(20),
    ):
        await until(lambda: events(server, "public-1"), 3, "the first connection")
        server.silence_new_connections(1)  # the rotation's new socket: never fed
        await until(lambda: conn.rotation_fallbacks == 1, 6, "the fallback")
        await until(lambda: len(events(server, "public-3")) == 1, 3, "the reconnect")
        reconnected = len(recorder.frames)
        await until(lambda: len(recorder.frames) > reconnected + 20, 5, "data again")
    # The silent socket was subscribed, waited for 3 × stale_after_s, then closed.
    second = events(server, "public-2")
    waited = second["close"] - first_subscribe(server, "public-2")
    assert 3 * STALE_S <= waited < 3 * STALE_S + 1.0, waited
    assert events(server, "public-1")["close"] >= second["close"] - 0.05
    assert events(server, "public-3")["open"] > events(server, "public-1")["close"]
    reconnecting = [s for s in recorder.statuses if s.state is FeedState.RECONNECTING]
    assert reconnecting[0].reason == (
        "rotating after 1 s (Binance cuts connections at 24 h); the new connection failed: "
        f"no data matching the old connection within 1.5 s on 1 stream(s): {DEPTH}"
    )
    assert reconnecting[0].retry_in == 0.0  # the old socket had been stable
    assert conn.reconnects >= 1 and conn.rotation_fallbacks == 1
    assert "make-before-break rotation failed" in caplog.text
    assert "reconnecting instead" in caplog.text
