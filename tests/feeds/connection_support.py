"""One BinanceConnection against the loopback ReplayServer, for the connection fault and
rotation tests (imported by them; real recorded captures, nothing synthesised).

The hftbacktest BTCUSDT capture serves ``depth@0ms`` diffs as ``btcusdt@depth@100ms`` and
``bookTicker``; at 4× speed its recorded gaps are ≤ 25 ms (depth) and ≤ 0.19 s (bookTicker),
well under the :data:`STALE_S` threshold of :func:`replay_config`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import msgspec
import pytest

from feeds.base import FeedStats
from feeds.config import FeedConfig
from feeds.connection import BinanceConnection, ConnectPacer
from feeds.events import FeedStatus
from feeds.replay.server import ReplayServer

WS_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-usdm" / "ws"
BTC_CAPTURE = WS_DATA / "hftbacktest" / "btcusdt_20240718.gz"
CRYPTOFEED_CAPTURE = WS_DATA / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
DEPTH = "btcusdt@depth@100ms"
TICKER = "btcusdt@bookTicker"
STREAMS = [DEPTH, TICKER]
STALE_S = 0.5


class Recorder:
    """The connection's frame handler: keeps what it is given (the adapter's role)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, str, bytes]] = []
        """``(monotonic arrival s, stream, payload bytes)`` in delivery order."""
        self.bad: list[str] = []
        self.statuses: list[FeedStatus] = []

    def on_data(self, stream: str, data: msgspec.Raw, recv_time: int, raw: str | bytes) -> None:
        self.frames.append((time.monotonic(), stream, bytes(data)))

    def on_bad_frame(self, stream: str, reason: str, raw: str | bytes) -> None:
        self.bad.append(reason)

    def on_status(self, status: FeedStatus) -> None:
        self.statuses.append(status)

    def count(self, stream: str) -> int:
        return sum(1 for _, name, _ in self.frames if name == stream)

    def payloads(self, stream: str) -> list[dict[str, Any]]:
        """The decoded payloads of ``stream``, in delivery order."""
        return [msgspec.json.decode(data) for _, name, data in self.frames if name == stream]

    def stream_statuses(self, stream: str) -> list[FeedStatus]:
        return [s for s in self.statuses if s.stream == stream]


def fast_config(**overrides: Any) -> FeedConfig:
    """A FeedConfig with test-sized timings (overrides win)."""
    values: dict[str, Any] = {
        "connect_interval_s": 0.0,
        "subscribe_interval_s": 0.2,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "stable_after_s": 0.5,
        "stale_after_s": 5.0,
    }
    values.update(overrides)
    return FeedConfig(**values)


def replay_config(**overrides: Any) -> FeedConfig:
    """:func:`fast_config` with a :data:`STALE_S` stale threshold and a 0.4 s control timeout
    (overrides win)."""
    return fast_config(**{"stale_after_s": STALE_S, "control_timeout_s": 0.4, **overrides})


@asynccontextmanager
async def replay(path: Path, speed: float = 4.0) -> AsyncIterator[ReplayServer]:
    """A started ReplayServer over a recorded capture."""
    server = ReplayServer(path, speed=speed)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def running(
    server: ReplayServer, config: FeedConfig, streams: list[str] | None = None
) -> AsyncIterator[tuple[BinanceConnection, Recorder, FeedStats]]:
    """A ``public-0`` connection to ``server`` on ``streams`` (default :data:`STREAMS`),
    cancelled on exit."""
    recorder = Recorder()
    stats = FeedStats()
    conn = BinanceConnection(
        "public-0",
        "public",
        server.ws_url,
        config,
        handler=recorder,
        pacer=ConnectPacer(0.0),
        stats=stats,
        rng=random.Random(7),
    )
    conn.set_streams(STREAMS if streams is None else streams)
    task = asyncio.create_task(conn.run())
    try:
        yield conn, recorder, stats
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def until(predicate: Callable[[], object], within_s: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; fail the test after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.01)
