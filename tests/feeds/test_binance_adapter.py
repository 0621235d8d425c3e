"""BinanceFuturesFeed against a real loopback Binance server streaming recorded frames.

Covers: decoded events equal the recorded frames, the /public vs /market split, sharding,
SUBSCRIBE batching and pacing, live (un)subscription, the LIST_SUBSCRIPTIONS audit,
reconnect + resubscribe after a drop, the stale watchdog, rotation, refused connections,
subscription rejections, malformed frames and clean cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from feeds.binance_futures import BinanceFrameDecoder, BinanceFuturesFeed
from feeds.config import EndpointConfig
from feeds.events import BookTicker, FeedState, FeedStatus
from feeds.replay.server import ReplayServer

SYMBOLS = ("sushiusdt", "akrousdt", "keepusdt", "ctkusdt")
PUBLIC_STREAMS = [f"{s}@depth@100ms" for s in SYMBOLS] + [f"{s}@bookTicker" for s in SYMBOLS]
MARKET_STREAMS = [f"{s}@aggTrade" for s in SYMBOLS] + [f"{s}@kline_1m" for s in SYMBOLS]
ALL_STREAMS = PUBLIC_STREAMS + MARKET_STREAMS
CRYPTOFEED_WS = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "binance-usdm"
    / "ws"
    / "cryptofeed"
    / "BINANCE_FUTURES.ws.1.0"
)


def _key(event: object) -> tuple[str, str]:
    return type(event).__name__, getattr(event, "symbol", "")


async def test_events_equal_recorded_frames_and_routes_split(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames, gap_s=0.0, loop=False)
    hooked: list[tuple[str, int, str]] = []
    run = start_feed(
        server.url, ALL_STREAMS, config_factory(), frame_hook=lambda *args: hooked.append(args)
    )
    async with asyncio.timeout(15):
        await until(lambda: len(run.market()) == len(cryptofeed_frames), 12, "all frames")

    # One connection per route, each carrying only its route's streams.
    assert sorted(c.route for c in server.connections) == ["market", "public"]
    (public,), (market,) = server.on("public"), server.on("market")
    assert public.subscribe_params() == set(PUBLIC_STREAMS)
    assert market.subscribe_params() == set(MARKET_STREAMS)
    assert run.feed.connections == {
        "public-0": frozenset(PUBLIC_STREAMS),
        "market-0": frozenset(MARKET_STREAMS),
    }

    # Per (type, symbol), the events equal the recorded frames decoded, in order.
    decoder = BinanceFrameDecoder()
    expected: dict[tuple[str, str], list[object]] = defaultdict(list)
    for frame in cryptofeed_frames:
        for event in decoder.decode_frame(frame.raw, 0)[1]:
            expected[_key(event)].append(event)
    received: dict[tuple[str, str], list[object]] = defaultdict(list)
    for event in run.market():
        assert event.recv_time > 1_600_000_000_000  # wall-clock ms at receipt
        received[_key(event)].append(msgspec.structs.replace(event, recv_time=0))
    assert received == expected
    assert len(received) == 16

    # frame_hook saw every raw frame with its route.
    assert sorted(text for _, _, text in hooked) == sorted(f.raw for f in cryptofeed_frames)
    for route, recv_time, text in hooked:
        stream = msgspec.json.decode(text)["stream"]
        assert route == ("public" if stream in PUBLIC_STREAMS else "market")
        assert recv_time > 1_600_000_000_000
    assert run.stats.frames == len(cryptofeed_frames)
    assert run.stats.decode_errors == 0
    assert run.stats.connections_open == 2
    assert run.stats.streams == 16 and run.stats.connections_total == 2
    live = {s.connection for s in run.statuses(FeedState.LIVE) if not s.stream}
    assert live == {"public-0", "market-0"}


async def test_sharding_and_subscribe_pacing(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    config = config_factory(
        max_streams_per_connection=3,
        subscribe_batch=2,
        subscribe_interval_s=0.2,
        connect_interval_s=0.1,
    )
    run = start_feed(server.url, ALL_STREAMS, config)
    async with asyncio.timeout(15):
        # Each connection: 2 SUBSCRIBE batches then one LIST_SUBSCRIPTIONS audit.
        await until(
            lambda: (
                len(server.connections) == 6
                and all(c.methods("LIST_SUBSCRIPTIONS") for c in server.connections)
            ),
            10,
            "6 audited connections",
        )
    assert run.stats.connections_total == 6
    assert set(run.feed.connections) == {f"{r}-{i}" for r in ("public", "market") for i in range(3)}
    for conn in server.connections:
        params = conn.subscribe_params()
        assert 1 <= len(params) <= 3
        assert all(len(m["params"]) <= 2 for m in conn.methods("SUBSCRIBE"))
        wanted = PUBLIC_STREAMS if conn.route == "public" else MARKET_STREAMS
        assert params <= set(wanted), "a route must never carry the other route's streams"
        arrivals = [t for t, _ in conn.controls]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # Sent >= 0.2 s apart on the client's monotonic clock; 20 ms slack for delivery.
        assert len(gaps) == len(params) // 2 + (len(params) % 2) and min(gaps) >= 0.18, gaps
    for route, wanted in (("public", PUBLIC_STREAMS), ("market", MARKET_STREAMS)):
        union = set().union(*(c.subscribe_params() for c in server.on(route)))
        assert union == set(wanted)
    opened = sorted(c.opened_at for c in server.connections)
    assert min(b - a for a, b in itertools.pairwise(opened)) >= 0.08
    # The adapter's plan is what the server was asked for.
    assert sorted(map(sorted, run.feed.connections.values())) == sorted(
        sorted(c.subscribe_params()) for c in server.connections
    )

    # Live change: drop two streams, add one back later; no new connection.
    removed = ["ctkusdt@aggTrade", "ctkusdt@kline_1m"]
    remaining = [s for s in ALL_STREAMS if s not in removed]
    run.feed.set_streams(remaining)
    async with asyncio.timeout(10):
        await until(
            lambda: (
                {
                    s
                    for c in server.connections
                    for m in c.methods("UNSUBSCRIBE")
                    for s in m["params"]
                }
                == set(removed)
            ),
            5,
            "UNSUBSCRIBE of the removed streams",
        )
    run.feed.set_streams([*remaining, "ctkusdt@aggTrade"])
    async with asyncio.timeout(10):
        await until(
            lambda: any("ctkusdt@aggTrade" in c.subscribed for c in server.on("market")),
            5,
            "re-SUBSCRIBE",
        )
    assert len(server.connections) == 6
    assert run.stats.streams == 15
    assert sorted(run.feed.streams) == sorted([*remaining, "ctkusdt@aggTrade"])


async def test_emptied_connections_close_and_new_ones_open_while_running(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    config = config_factory(max_streams_per_connection=2)
    run = start_feed(server.url, PUBLIC_STREAMS[:4], config)
    async with asyncio.timeout(10):
        await until(
            lambda: len(server.connections) == 2 and all(c.subscribed for c in server.connections),
            5,
            "2 public connections",
        )
        run.feed.set_streams([*PUBLIC_STREAMS[:2], "ctkusdt@aggTrade"])
        await until(lambda: server.connections[1].closed_at is not None, 5, "public-1 closed")
        await until(
            lambda: (
                len(server.on("market")) == 1
                and server.on("market")[0].subscribed == {"ctkusdt@aggTrade"}
            ),
            5,
            "market-0 opened",
        )
    assert set(run.feed.connections) == {"public-0", "market-0"}
    assert server.connections[0].closed_at is None
    assert run.stats.connections_total == 2


async def test_list_subscriptions_audit_resubscribes_what_the_server_lost(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    server.forget_once = {"sushiusdt@bookTicker"}
    run = start_feed(
        server.url, ["sushiusdt@bookTicker", "sushiusdt@depth@100ms"], config_factory()
    )
    async with asyncio.timeout(10):
        await until(
            lambda: (
                bool(server.connections)
                and "sushiusdt@bookTicker" in server.connections[0].subscribed
            ),
            5,
            "audit resubscribe",
        )
        await until(
            lambda: any(
                e.symbol == "SUSHIUSDT" and type(e).__name__ == "BookTicker" for e in run.market()
            ),
            5,
            "bookTicker data",
        )
    conn = server.connections[0]
    subscribes = [m["params"] for m in conn.methods("SUBSCRIBE")]
    assert subscribes[0] == ["sushiusdt@bookTicker", "sushiusdt@depth@100ms"]
    assert subscribes[1] == ["sushiusdt@bookTicker"]
    assert [m["method"] for _, m in conn.controls][:3] == [
        "SUBSCRIBE",
        "LIST_SUBSCRIPTIONS",
        "SUBSCRIBE",
    ]
    assert len(server.connections) == 1


@pytest.mark.parametrize("how", ["abort", "close"])
async def test_dropped_connection_reconnects_and_resubscribes(
    how: str, fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    streams = [
        "sushiusdt@bookTicker",
        "ctkusdt@depth@100ms",
        "sushiusdt@aggTrade",
        "ctkusdt@kline_1m",
    ]
    run = start_feed(server.url, streams, config_factory(subscribe_batch=1))
    async with asyncio.timeout(15):
        await until(
            lambda: (
                len(server.on("public")) == 1
                and len(server.on("public")[0].subscribe_params()) == 2
            ),
            5,
            "subscribed",
        )
        await until(lambda: len(server.on("public")[0].sent) > 5, 5, "data flowing")
        first = server.on("public")[0]
        if how == "abort":
            first.abort()  # TCP drop, no close frame (1006)
        else:
            await first.ws.close(1001, "going away")
        await until(
            lambda: (
                len(server.on("public")) == 2
                and server.on("public")[1].subscribe_params() == first.subscribe_params()
            ),
            5,
            "resubscribed after reconnect",
        )
        await until(lambda: len(server.on("public")[1].sent) > 5, 5, "data after reconnect")
    assert first.subscribe_params() == {"sushiusdt@bookTicker", "ctkusdt@depth@100ms"}
    reconnecting = run.statuses(FeedState.RECONNECTING, "public-0")
    assert len(reconnecting) == 1
    assert reconnecting[0].retry_in == 0.0  # first retry is immediate
    assert reconnecting[0].reconnects == 1
    if how == "abort":
        assert reconnecting[0].reason == "connection lost (no close frame)"
    else:
        assert reconnecting[0].reason == "server closed the connection (code 1001: going away)"
    states = [s.state for s in run.statuses(connection="public-0") if not s.stream]
    assert states == [
        FeedState.CONNECTING,
        FeedState.LIVE,
        FeedState.RECONNECTING,
        FeedState.CONNECTING,
        FeedState.LIVE,
    ]
    assert len(server.on("market")) == 1  # the other route was not disturbed
    assert run.stats.reconnects == 1
    assert run.stats.connections_open == 2


async def test_silent_socket_is_marked_stale_and_reopened(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    streams = ["sushiusdt@bookTicker", "sushiusdt@depth@100ms"]
    run = start_feed(server.url, streams, config_factory(stale_after_s=0.3))
    async with asyncio.timeout(15):
        await until(
            lambda: len(server.connections) == 1 and len(server.connections[0].sent) > 5,
            5,
            "data flowing",
        )
        first = server.connections[0]
        first.muted = True  # socket stays open (pings answered), data stops
        await until(lambda: first.closed_at is not None, 5, "watchdog closes the socket")
        await until(
            lambda: len(server.connections) == 2 and len(server.connections[1].sent) > 5,
            5,
            "new socket flowing",
        )
        await until(lambda: run.stats.stale_streams == 0, 5, "streams live again")
    stale = run.statuses(FeedState.STALE)
    assert {s.stream for s in stale} == set(streams)
    assert all(s.connection == "public-0" and "no data for" in s.reason for s in stale)
    reconnecting = run.statuses(FeedState.RECONNECTING)
    assert len(reconnecting) == 1 and "stale" in reconnecting[0].reason
    resumed = [s for s in run.statuses(FeedState.LIVE) if s.stream]
    assert {s.stream for s in resumed} == set(streams)
    assert server.connections[1].subscribe_params() == set(streams)


async def test_one_silent_stream_is_stale_and_resubscribed_while_the_socket_stays(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    server.silent = {"sushiusdt@depth@100ms"}  # ACKed, never delivered (like a wrong route)
    streams = ["sushiusdt@bookTicker", "sushiusdt@depth@100ms"]
    # Many re-subscribes allowed: this test is about the socket staying (the escalation to a
    # reconnect is tests/feeds/test_connection_faults.py's).
    run = start_feed(server.url, streams, config_factory(stale_after_s=0.3, stream_resubscribes=10))
    async with asyncio.timeout(10):
        await until(lambda: run.statuses(FeedState.STALE), 5, "a STALE status")
        await asyncio.sleep(0.8)
    assert {s.stream for s in run.statuses(FeedState.STALE)} == {"sushiusdt@depth@100ms"}
    assert run.stats.stale_streams == 1
    assert len(server.connections) == 1 and server.connections[0].closed_at is None
    assert run.statuses(FeedState.RECONNECTING) == []
    # Only the silent stream was re-subscribed: UNSUBSCRIBE + SUBSCRIBE of it alone.
    controls = [r for _, r in server.connections[0].controls]
    unsubs = [r["params"] for r in controls if r["method"] == "UNSUBSCRIBE"]
    assert unsubs and all(p == ["sushiusdt@depth@100ms"] for p in unsubs)
    resubs = [r["params"] for r in controls if r["method"] == "SUBSCRIBE"][1:]
    assert resubs and all(p == ["sushiusdt@depth@100ms"] for p in resubs)


async def test_a_quiet_trade_stream_is_stale_but_never_resubscribed_or_reconnected(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    # aggTrade pushes only on trades: a quiet symbol is not a dead stream (FEEDS.md §4 A.2).
    server = await fake_binance(cryptofeed_frames)
    server.silent = {"keepusdt@aggTrade"}
    streams = ["sushiusdt@aggTrade", "keepusdt@aggTrade"]  # one /market socket
    run = start_feed(server.url, streams, config_factory(stale_after_s=0.2, stream_resubscribes=0))
    async with asyncio.timeout(10):
        await until(lambda: run.statuses(FeedState.STALE), 5, "a STALE status")
        await asyncio.sleep(1.0)
    assert {s.stream for s in run.statuses(FeedState.STALE)} == {"keepusdt@aggTrade"}
    assert len(server.connections) == 1 and server.connections[0].closed_at is None
    methods = [r["method"] for _, r in server.connections[0].controls]
    assert "UNSUBSCRIBE" not in methods and methods.count("SUBSCRIBE") == 1


async def test_kline_and_liquidation_streams_are_not_stale_while_quiet(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    server.silent = {"keepusdt@kline_1m", "keepusdt@forceOrder"}
    run = start_feed(
        server.url,
        ["keepusdt@kline_1m", "keepusdt@forceOrder", "sushiusdt@aggTrade"],
        config_factory(stale_after_s=0.2),
    )
    async with asyncio.timeout(10):
        await until(lambda: server.connections and server.connections[0].sent, 5, "data")
        await asyncio.sleep(1.0)
    # aggTrade flows; the kline stream gets 60 s + 0.2 s, forceOrder is exempt.
    assert run.statuses(FeedState.STALE) == []
    assert len(server.connections) == 1


async def test_rotation_is_make_before_break(start_feed, config_factory, until) -> None:
    # The replay server feeds every subscribed socket the same timeline, as Binance does (the
    # fake server above replays each socket from the start, which no real overlap does).
    server = ReplayServer(CRYPTOFEED_WS, speed=2.0)
    await server.start()
    try:
        run = start_feed(
            server.ws_url,
            ["sushiusdt@bookTicker"],
            config_factory(rotate_after_s=0.6, stable_after_s=0.3, stale_after_s=2.0),
        )
        async with asyncio.timeout(10):
            await until(lambda: run.stats.rotations >= 1, 5, "a rotation")
            seen = len(run.market())
            await until(lambda: len(run.market()) > seen + 5, 5, "data after the rotation")
            await run.stop()
    finally:
        await server.stop()
    log = server.connection_log
    first_closed = next(at for name, what, at in log if (name, what) == ("public-1", "close"))
    subscribed = next(at for name, at, msg in server.control_log if name == "public-2")
    assert [name for name, what, _ in log if what == "open"][:2] == ["public-1", "public-2"]
    assert subscribed < first_closed  # made before broken
    assert run.stats.reconnects == 0 and run.statuses(FeedState.RECONNECTING) == []
    tickers = [e.update_id for e in run.market() if isinstance(e, BookTicker)]
    assert tickers == sorted(set(tickers)) and len(tickers) > 10  # none twice
    (status,) = [s for s in run.statuses(FeedState.LIVE) if "rotated" in s.reason][:1]
    assert status.connection == "public-0" and not status.stream


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_reports_offline_and_backs_off(start_feed, config_factory) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}"
    config = config_factory(backoff_initial_s=0.05, backoff_max_s=0.2)
    run = start_feed(url, ["btcusdt@bookTicker"], config)
    async with asyncio.timeout(10):
        await asyncio.sleep(1.2)
        await run.stop()
    offline = run.statuses(FeedState.OFFLINE)
    reconnecting = run.statuses(FeedState.RECONNECTING)
    assert len(offline) >= 4 and len(reconnecting) == len(offline)
    assert offline[0].reason == f"connection refused to {url}/public/stream"
    assert reconnecting[0].retry_in == 0.0
    delays = [s.retry_in for s in reconnecting]
    assert all(d is not None and 0.0 <= d <= 0.2 for d in delays), delays
    assert max(d for d in delays if d is not None) > 0.0  # later retries wait
    assert [s.reconnects for s in reconnecting] == list(range(1, len(reconnecting) + 1))
    assert run.stats.connections_open == 0
    assert run.stats.reconnects == len(reconnecting)
    assert run.task.done()


async def test_subscription_rejection_is_reported_once(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    server.reject = {"keepusdt@bookTicker": "Invalid request: unknown stream"}
    # One batch with a bad stream: Binance rejects the whole SUBSCRIBE, so the client
    # retries stream by stream and only the bad one ends up rejected.
    run = start_feed(
        server.url,
        ["keepusdt@bookTicker", "sushiusdt@bookTicker"],
        config_factory(stale_after_s=0.3),
    )
    async with asyncio.timeout(10):
        await until(lambda: run.statuses(FeedState.OFFLINE), 5, "rejection status")
        await until(lambda: len(server.connections[0].sent) > 10, 5, "other stream flows")
        await asyncio.sleep(0.8)
    (rejected,) = run.statuses(FeedState.OFFLINE)
    assert rejected.stream == "keepusdt@bookTicker"
    assert "Invalid request: unknown stream" in rejected.reason
    conn = server.connections[0]
    assert [m["params"] for m in conn.methods("SUBSCRIBE")] == [
        ["keepusdt@bookTicker", "sushiusdt@bookTicker"],
        ["keepusdt@bookTicker"],
        ["sushiusdt@bookTicker"],
    ]
    assert run.feed.connections == {
        "public-0": frozenset({"keepusdt@bookTicker", "sushiusdt@bookTicker"})
    }
    assert run.statuses(FeedState.STALE) == []  # rejected streams are not watched
    assert len(server.connections) == 1


async def test_malformed_frames_are_counted_and_the_socket_survives(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until, caplog
) -> None:
    server = await fake_binance(cryptofeed_frames, autoplay=False)
    run = start_feed(server.url, ["sushiusdt@aggTrade"], config_factory())
    good = next(f.raw for f in cryptofeed_frames if f.stream == "sushiusdt@aggTrade")
    frame = msgspec.json.decode(good)
    missing = {**frame, "data": {k: v for k, v in frame["data"].items() if k != "p"}}
    bad_frames = [
        good[: len(good) // 2],  # truncated JSON
        "not json at all",  # garbage
        '{"stream":"sushiusdt@unknownKind","data":{}}',  # unknown stream
        msgspec.json.encode(missing).decode(),  # missing field
        good.replace('"p":"', '"p":"x'),  # unparsable price
        '{"hello":"world"}',  # neither stream nor id
    ]
    caplog.set_level(logging.WARNING, logger="feeds.binance_futures")
    async with asyncio.timeout(10):
        await until(
            lambda: server.connections and server.connections[0].subscribed, 5, "subscribed"
        )
        conn = server.connections[0]
        for text in bad_frames:
            await conn.inject(text)
        for _ in range(150):
            await conn.inject(bad_frames[0])
        await conn.inject(good)
        await until(lambda: run.market(), 5, "the good frame after the bad ones")
    assert run.stats.decode_errors == len(bad_frames) + 150
    (trade,) = run.market()
    expected = BinanceFrameDecoder().decode_frame(good, 0)[1][0]
    assert msgspec.structs.replace(trade, recv_time=0) == expected
    assert conn.closed_at is None and len(server.connections) == 1
    assert run.stats.reconnects == 0 and run.statuses(FeedState.RECONNECTING) == []
    # Logged once per 100 bad frames, naming the stream when it is known.
    warnings = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]
    assert len(warnings) == 2
    assert "(1 so far" in warnings[0] and "(101 so far" in warnings[1]


async def test_unknown_stream_frame_is_logged_with_its_name(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until, caplog
) -> None:
    server = await fake_binance(cryptofeed_frames, autoplay=False)
    run = start_feed(server.url, ["sushiusdt@aggTrade"], config_factory())
    caplog.set_level(logging.WARNING, logger="feeds.binance_futures")
    async with asyncio.timeout(10):
        await until(
            lambda: server.connections and server.connections[0].subscribed, 5, "subscribed"
        )
        await server.connections[0].inject('{"stream":"sushiusdt@mystery","data":{"e":"x"}}')
        await until(lambda: run.stats.decode_errors == 1, 5, "counted")
    (message,) = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]
    assert "'sushiusdt@mystery'" in message and "public-0" not in message
    assert "market-0" in message


async def test_cancel_closes_every_socket_and_leaves_no_tasks(
    fake_binance, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    before = asyncio.all_tasks()
    feed = BinanceFuturesFeed(
        EndpointConfig(ws_url=server.url), config_factory(max_streams_per_connection=4)
    )
    feed.set_streams(ALL_STREAMS)
    events: list[object] = []
    task = asyncio.create_task(feed.run(events.append))
    async with asyncio.timeout(10):
        await until(
            lambda: len(server.connections) == 4 and all(c.sent for c in server.connections),
            8,
            "4 live connections",
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(
            lambda: all(c.closed_at is not None for c in server.connections),
            3,
            "server sees every socket closed",
        )
        await asyncio.sleep(0.05)
    leftover = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert leftover == set(), [t.get_name() for t in leftover]
    assert feed.stats.connections_open == 0
    # The adapter can run again after a cancel.
    task = asyncio.create_task(feed.run(events.append))
    async with asyncio.timeout(10):
        await until(lambda: len(server.connections) == 8, 8, "second run reconnects")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_run_twice_and_bad_streams_are_refused(
    fake_binance, config_factory, cryptofeed_frames
) -> None:
    server = await fake_binance(cryptofeed_frames)
    feed = BinanceFuturesFeed(EndpointConfig(ws_url=server.url), config_factory())
    feed.set_streams(["sushiusdt@aggTrade"])
    for bad in (["SUSHIUSDT@aggTrade"], ["sushiusdt@miniTicker"], ["sushiusdt@nope"]):
        with pytest.raises(ValueError, match=r"sushiusdt|SUSHIUSDT"):
            feed.set_streams(["akrousdt@aggTrade", *bad])
    assert feed.connections == {"market-0": frozenset({"sushiusdt@aggTrade"})}
    assert feed.streams == ["sushiusdt@aggTrade"]
    task = asyncio.create_task(feed.run(lambda event: None))
    async with asyncio.timeout(5):
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already running"):
            await feed.run(lambda event: None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_status_type_is_the_contract() -> None:
    status = FeedStatus(state=FeedState.STALE, connection="public-0", stream="x@trade")
    assert msgspec.json.decode(msgspec.json.encode(status), type=FeedStatus) == status


async def test_wrong_path_is_reported_with_the_http_status(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until
) -> None:
    server = await fake_binance(cryptofeed_frames)
    run = start_feed(f"{server.url}/ws", ["sushiusdt@aggTrade"], config_factory())
    async with asyncio.timeout(10):
        await until(lambda: len(run.statuses(FeedState.OFFLINE)) >= 2, 5, "OFFLINE statuses")
    status = run.statuses(FeedState.OFFLINE)[0]
    assert status.reason == f"HTTP 404 from {server.url}/ws/market/stream"
    assert status.connection == "market-0"
    assert server.connections == []


async def test_a_failing_sink_is_logged_and_the_connection_recovers(
    fake_binance, config_factory, cryptofeed_frames, until, caplog
) -> None:
    server = await fake_binance(cryptofeed_frames)
    feed = BinanceFuturesFeed(EndpointConfig(ws_url=server.url), config_factory())
    feed.set_streams(["sushiusdt@bookTicker"])
    events: list[object] = []
    failures = [RuntimeError("engine bug")]

    def sink(event: object) -> None:
        if not isinstance(event, FeedStatus) and failures:
            raise failures.pop()
        events.append(event)

    task = asyncio.create_task(feed.run(sink))
    try:
        async with asyncio.timeout(10):
            await until(
                lambda: (
                    len(server.connections) == 2
                    and len([e for e in events if not isinstance(e, FeedStatus)]) > 3
                ),
                5,
                "reconnected and delivering",
            )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (status,) = [
        e for e in events if isinstance(e, FeedStatus) and e.state is FeedState.RECONNECTING
    ]
    assert status.reason == "internal error: RuntimeError: engine bug"
    assert any("unexpected error" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_loopback_server_is_reached_despite_a_proxy_environment(
    fake_binance, start_feed, config_factory, cryptofeed_frames, until, monkeypatch
) -> None:
    # A dead proxy: were it used, every connect would fail.
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    server = await fake_binance(cryptofeed_frames)
    run = start_feed(server.url, ["sushiusdt@bookTicker"], config_factory())
    async with asyncio.timeout(10):
        await until(lambda: len(run.market()) > 3, 5, "data through no proxy")
    assert run.statuses(FeedState.OFFLINE) == []
