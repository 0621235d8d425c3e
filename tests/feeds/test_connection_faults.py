"""BinanceConnection fault handling against the loopback replay server (real recorded data).

FEEDS.md §4 A.6 / §5 Connection 12: a control message whose reply never comes is timed out,
re-sent a bounded number of times with the same id, then the socket is reopened and every
stream subscribed again. FEEDS.md §4 A.2 / §5 Connection 4-5: one silent stream among flowing
ones (depth here; book tickers and trades push only on activity, so they are never
re-subscribed) is re-subscribed alone (no reconnect); still silent after 2 re-subscribes, the
socket is reopened exactly once.

The server replays the hftbacktest BTCUSDT capture (``depth@0ms`` diffs served as
``btcusdt@depth@100ms``, ``bookTicker``) at 4× speed: recorded gaps are ≤ 25 ms for depth and
≤ 0.19 s for bookTicker, well under the 0.5 s stale threshold of the test config.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from connection_support import (
    BTC_CAPTURE,
    DEPTH,
    STALE_S,
    STREAMS,
    TICKER,
    Recorder,
    replay,
    replay_config,
    running,
    until,
)

from feeds.events import FeedState
from feeds.replay.server import ReplayServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    async with replay(BTC_CAPTURE, speed=4.0) as started:
        yield started


def controls(server: ReplayServer, label: str) -> list[tuple[float, dict[str, Any]]]:
    """Control messages the server received on connection ``label`` (``public-1``, ...)."""
    return [(at, msg) for conn, at, msg in server.control_log if conn == label]


def labels(server: ReplayServer) -> list[str]:
    return list(dict.fromkeys(conn for conn, _, _ in server.control_log))


def assert_paced(received: list[tuple[float, dict[str, Any]]]) -> None:
    """≤ 5 control messages/s: sent ≥ 0.2 s apart (20 ms slack for delivery)."""
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(received)]
    assert all(gap >= 0.18 for gap in gaps), gaps


def assert_flowing(recorder: Recorder, stream: str, since: float) -> None:
    """``stream`` kept arriving after ``since`` with no pause near the stale threshold."""
    times = [at for at, name, _ in recorder.frames if name == stream and at >= since]
    assert len(times) > 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.8 * STALE_S, max(gaps)


# --------------------------------------------------------------------- control timeouts


async def test_lost_subscribe_is_resent_with_its_id_and_no_reconnect(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.ignore_control(method="SUBSCRIBE", count=1)
    caplog.set_level(logging.WARNING, logger="feeds.connection")
    async with running(server, replay_config()) as (conn, recorder, stats):
        async with asyncio.timeout(10):
            await until(lambda: recorder.count(DEPTH) > 10, 5, "data after the re-send")
            await until(lambda: stats.stale_streams == 0, 3, "streams live")
            await asyncio.sleep(0.5)
    assert labels(server) == ["public-1"]
    received = controls(server, "public-1")
    methods = [(msg["method"], msg["id"], msg.get("params")) for _, msg in received]
    assert methods == [
        ("SUBSCRIBE", 1, sorted(STREAMS)),  # ignored by the server
        ("SUBSCRIBE", 1, sorted(STREAMS)),  # the re-send, same id
        ("LIST_SUBSCRIPTIONS", 2, None),  # the audit waits for the SUBSCRIBE reply
    ]
    assert received[1][0] - received[0][0] >= 0.38  # control_timeout_s, 20 ms slack
    assert_paced(received)
    assert conn.control_timeouts == 1 and conn.reconnects == 0
    assert "SUBSCRIBE id=1 got no reply within 0.4 s" in caplog.text
    assert "re-sending (1/2)" in caplog.text
    # Both streams were silent when the SUBSCRIBE timed out: STALE, then LIVE on data.
    for stream in STREAMS:
        states = [s.state for s in recorder.stream_statuses(stream)]
        assert states == [FeedState.STALE, FeedState.LIVE], (stream, states)
        assert "SUBSCRIBE id=1 unanswered" in recorder.stream_statuses(stream)[0].reason
    assert not [s for s in recorder.statuses if s.state is FeedState.RECONNECTING]
    assert recorder.bad == []


async def test_never_answered_subscribe_reopens_and_resubscribes_the_same_streams(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.ignore_control(method="SUBSCRIBE", request_id=1, count=None)
    caplog.set_level(logging.WARNING, logger="feeds.connection")
    async with running(server, replay_config()) as (conn, recorder, stats):
        async with asyncio.timeout(15):
            await until(lambda: len(labels(server)) == 2, 5, "a second connection")
            await until(lambda: recorder.count(DEPTH) > 10, 5, "data after the reconnect")
            await until(lambda: stats.stale_streams == 0, 3, "streams live")
            await asyncio.sleep(1.0)  # no further reconnect
            assert stats.connections_open == 1
    assert labels(server) == ["public-1", "public-2"]
    first = controls(server, "public-1")
    # The first send and control_retries=2 re-sends, one control timeout apart, same id.
    assert [(m["method"], m["id"], m["params"]) for _, m in first] == [
        ("SUBSCRIBE", 1, sorted(STREAMS))
    ] * 3
    assert all(b - a >= 0.38 for (a, _), (b, _) in itertools.pairwise(first))
    second = controls(server, "public-2")
    assert [m["method"] for _, m in second] == ["SUBSCRIBE", "LIST_SUBSCRIPTIONS"]
    subscribed = {s for _, m in second if m["method"] == "SUBSCRIBE" for s in m["params"]}
    assert subscribed == {s for _, m in first for s in m["params"]} == set(STREAMS)
    assert_paced(second)
    assert conn.control_timeouts == 3 and conn.reconnects == 1 and stats.reconnects == 1
    (reconnecting,) = [s for s in recorder.statuses if s.state is FeedState.RECONNECTING]
    assert reconnecting.reason == "SUBSCRIBE id=1 (2 streams) unanswered 3 times"
    assert reconnecting.retry_in == 0.0  # the connection was up longer than stable_after_s
    assert "unanswered 3 times, reopening the connection" in caplog.text


# --------------------------------------------------------------------- one silent stream


async def _flowing(recorder: Recorder) -> None:
    await until(
        lambda: recorder.count(DEPTH) > 20 and recorder.count(TICKER) > 5, 5, "both streams"
    )


async def test_one_silent_stream_is_resubscribed_alone_without_reconnect(
    server: ReplayServer,
) -> None:
    async with running(server, replay_config()) as (conn, recorder, stats):
        async with asyncio.timeout(15):
            await _flowing(recorder)
            assert server.stall_stream(DEPTH, revive="resubscribe") == 1
            stalled_at = time.monotonic()
            before = recorder.count(DEPTH)
            await until(lambda: recorder.stream_statuses(DEPTH), 3, "depth STALE")
            await until(lambda: recorder.count(DEPTH) > before + 5, 5, "depth back")
            await until(lambda: stats.stale_streams == 0, 2, "depth LIVE")
            await asyncio.sleep(0.5)
    assert labels(server) == ["public-1"] and server.connections == 0
    after_audit = [m for _, m in controls(server, "public-1")][2:]
    assert [(m["method"], m["params"]) for m in after_audit] == [
        ("UNSUBSCRIBE", [DEPTH]),
        ("SUBSCRIBE", [DEPTH]),
    ]
    assert_paced(controls(server, "public-1"))
    assert conn.resubscribes == 1 and conn.reconnects == 0 and stats.reconnects == 0
    assert [s.state for s in recorder.stream_statuses(DEPTH)] == [
        FeedState.STALE,
        FeedState.LIVE,
    ]
    assert recorder.stream_statuses(TICKER) == []
    assert_flowing(recorder, TICKER, since=stalled_at - 0.2)


async def test_stream_silent_through_two_resubscribes_reopens_once(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.connection")
    async with running(server, replay_config()) as (conn, recorder, stats):
        async with asyncio.timeout(15):
            await _flowing(recorder)
            server.stall_stream(DEPTH, revive="reconnect")
            await until(lambda: len(labels(server)) == 2, 6, "the reopened connection")
            reopened = len(recorder.frames)
            await until(
                lambda: any(name == DEPTH for _, name, _ in recorder.frames[reopened:]),
                3,
                "depth on the new connection",
            )
            await until(lambda: stats.stale_streams == 0, 2, "depth LIVE")
            await asyncio.sleep(1.5)  # (3 stale thresholds) no second reopen
    assert labels(server) == ["public-1", "public-2"]
    first = [(m["method"], m.get("params")) for _, m in controls(server, "public-1")][2:]
    assert first == [
        ("UNSUBSCRIBE", [DEPTH]),
        ("SUBSCRIBE", [DEPTH]),
        ("UNSUBSCRIBE", [DEPTH]),
        ("SUBSCRIBE", [DEPTH]),
    ]
    assert_paced(controls(server, "public-1"))
    second = [(m["method"], m.get("params")) for _, m in controls(server, "public-2")]
    assert second == [("SUBSCRIBE", sorted(STREAMS)), ("LIST_SUBSCRIPTIONS", None)]
    assert conn.resubscribes == 2 and conn.reconnects == 1 and stats.reconnects == 1
    (reconnecting,) = [s for s in recorder.statuses if s.state is FeedState.RECONNECTING]
    assert reconnecting.reason == f"{DEPTH} silent after 2 re-subscribes"
    assert [s.state for s in recorder.stream_statuses(DEPTH)] == [
        FeedState.STALE,
        FeedState.LIVE,
    ]
    assert recorder.stream_statuses(TICKER) == []
    assert f"re-subscribing 1 silent stream(s): {DEPTH}" in caplog.text


async def test_stream_dead_after_a_reopen_is_reported_offline_not_reopened_again(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.connection")
    async with running(server, replay_config()) as (conn, recorder, stats):
        async with asyncio.timeout(20):
            await _flowing(recorder)
            server.stall_stream(DEPTH, revive="never")  # e.g. a symbol that stopped trading
            await until(
                lambda: any(s.state is FeedState.OFFLINE for s in recorder.statuses),
                10,
                "depth OFFLINE",
            )
            given_up = len(recorder.frames)
            await asyncio.sleep(1.5)  # no further reopen, no more re-subscribes
    assert labels(server) == ["public-1", "public-2"]
    assert conn.reconnects == 1 and conn.resubscribes == 4
    for label in ("public-1", "public-2"):
        resubs = [m for _, m in controls(server, label) if m.get("params") == [DEPTH]]
        assert [m["method"] for m in resubs] == ["UNSUBSCRIBE", "SUBSCRIBE"] * 2
    (offline,) = [s for s in recorder.statuses if s.state is FeedState.OFFLINE]
    assert offline.stream == DEPTH
    assert offline.reason == "no data after 2 re-subscribes and a reconnect"
    assert stats.stale_streams == 1
    # The healthy stream kept flowing on the second connection.
    assert sum(1 for _, name, _ in recorder.frames[given_up:] if name == TICKER) > 5
    assert "giving up on it until data arrives" in caplog.text
