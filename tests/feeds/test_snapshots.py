"""SnapshotFetcher against a real loopback Binance REST server serving recorded snapshots.

The server is perpscope's replay server on the cryptofeed capture (its ``/fapi/v1/depth``
answers with the REST snapshots recorded beside it); requests go through a real aiohttp
client and a real :class:`feeds.ratelimit.WeightBudget`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.book_sync import BookKeeper
from feeds.config import BookConfig
from feeds.events import DepthDiff, DepthSnapshot
from feeds.ratelimit import WeightBudget, depth_weight
from feeds.replay.captures import Capture
from feeds.replay.server import ReplayServer
from feeds.snapshots import SnapshotFetcher
from tests.conftest import SHARED_DATA

CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
SUSHI_LAST_UPDATE_ID = 600859605926  # recorded in BINANCE_FUTURES.http.0.0


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    replay = ReplayServer(CAPTURE, speed=None, autostart=False)
    await replay.start()
    try:
        yield replay
    finally:
        await replay.stop()


@dataclass
class RestClient:
    """``fetch(symbol, limit)`` over aiohttp through a WeightBudget, with in-flight tracking."""

    base: str
    budget: WeightBudget
    session: aiohttp.ClientSession
    in_flight: int = 0
    max_in_flight: int = 0
    calls: list[str] = field(default_factory=list)

    async def fetch(self, symbol: str, limit: int) -> DepthSnapshot:
        ticket = await self.budget.acquire(depth_weight(limit))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.calls.append(symbol)
        try:
            async with self.session.get(
                f"{self.base}/fapi/v1/depth", params={"symbol": symbol, "limit": str(limit)}
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {body[:80]!r}")
        finally:
            self.in_flight -= 1
            self.budget.settle(ticket)
        return decode_depth_snapshot(symbol, body, int(time.time() * 1000))


@pytest.fixture
async def client_factory(
    server: ReplayServer,
) -> AsyncIterator[Callable[[WeightBudget], RestClient]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield lambda budget: RestClient(server.rest_url, budget, session)


async def run_until(
    fetcher: SnapshotFetcher,
    done: Callable[[], bool],
    on_snapshot: Callable[[DepthSnapshot], None],
    on_failure: Callable[[str, str], None] = lambda s, r: None,
    within_s: float = 8.0,
) -> None:
    finished = asyncio.Event()

    def snapshot(snap: DepthSnapshot) -> None:
        on_snapshot(snap)
        if done():
            finished.set()

    task = asyncio.create_task(fetcher.run(snapshot, on_failure))
    try:
        async with asyncio.timeout(within_s):
            await finished.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_duplicates_are_fetched_once_and_concurrency_is_bounded(
    server: ReplayServer, client_factory: Callable[[WeightBudget], RestClient]
) -> None:
    client = client_factory(WeightBudget())
    server.inject_rest_fault("/fapi/v1/depth", 200, count=20, delay_s=0.15)  # slow answers
    fetcher = SnapshotFetcher(client.fetch, limit=1000, concurrency=2, retry_delay_s=0.05)
    for _ in range(5):
        for symbol in SYMBOLS:
            fetcher.request(symbol)
    got: list[DepthSnapshot] = []
    await run_until(fetcher, lambda: len(got) == 4, got.append)

    assert sorted(client.calls) == sorted(SYMBOLS)  # no duplicate fetch
    assert client.max_in_flight == 2
    assert {s.symbol for s in got} == set(SYMBOLS)
    sushi = next(s for s in got if s.symbol == "SUSHIUSDT")
    assert sushi.last_update_id == SUSHI_LAST_UPDATE_ID and len(sushi.bids) == 1000
    stats = fetcher.stats
    assert (stats.requested, stats.duplicates, stats.fetched, stats.failed) == (4, 16, 4, 0)
    assert (stats.queued, stats.in_flight) == (0, 0)


async def test_resync_storm_is_spread_by_the_weight_budget(
    server: ReplayServer, client_factory: Callable[[WeightBudget], RestClient]
) -> None:
    window_s = 0.25
    # Two limit=1000 snapshots (weight 20 each) per window.
    budget = WeightBudget(limit_per_min=40, fraction=1.0, window_s=window_s)
    client = client_factory(budget)
    fetcher = SnapshotFetcher(client.fetch, limit=1000, concurrency=4, retry_delay_s=0.05)
    fetched: dict[str, int] = {}

    def on_snapshot(snap: DepthSnapshot) -> None:
        # Every book resyncs twice more: 12 fetches in all, all asked for at once.
        fetched[snap.symbol] = fetched.get(snap.symbol, 0) + 1
        if fetched[snap.symbol] < 3:
            fetcher.request(snap.symbol)

    for symbol in SYMBOLS:
        fetcher.request(symbol)
    started = time.monotonic()
    await run_until(fetcher, lambda: sum(fetched.values()) == 12, on_snapshot)
    elapsed = time.monotonic() - started

    arrivals = [t for t, path, _ in server.rest_log if path == "/fapi/v1/depth"]
    assert len(arrivals) == 12
    for i, t in enumerate(arrivals):  # never more than 2 requests within one window
        assert sum(1 for u in arrivals[: i + 1] if t - u < window_s) <= 2, arrivals
    assert elapsed >= 5 * window_s  # 6 pairs of requests, one window apart
    assert client.max_in_flight <= 2  # the budget, not the concurrency, is the limit here
    assert fetched == dict.fromkeys(SYMBOLS, 3)


async def test_failures_are_reported_and_retried_with_backoff(
    server: ReplayServer, client_factory: Callable[[WeightBudget], RestClient]
) -> None:
    client = client_factory(WeightBudget())
    server.inject_rest_fault("/fapi/v1/depth", 500, count=2)
    fetcher = SnapshotFetcher(
        client.fetch, limit=100, concurrency=2, retry_delay_s=0.1, max_retry_delay_s=0.15
    )
    failures: list[tuple[float, str, str]] = []
    got: list[DepthSnapshot] = []
    fetcher.request("SUSHIUSDT")
    await run_until(
        fetcher,
        lambda: bool(got),
        got.append,
        lambda s, r: failures.append((time.monotonic(), s, r)),
    )
    assert [(s, r.startswith("RuntimeError: HTTP 500")) for _, s, r in failures] == [
        ("SUSHIUSDT", True),
        ("SUSHIUSDT", True),
    ]
    arrivals = [t for t, path, _ in server.rest_log if path == "/fapi/v1/depth"]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.09  # retry_delay_s
    assert arrivals[2] - arrivals[1] >= 0.14  # doubled, capped at max_retry_delay_s
    assert got[0].last_update_id == SUSHI_LAST_UPDATE_ID and len(got[0].bids) == 100
    assert fetcher.stats.failed == 2 and fetcher.stats.fetched == 1
    assert fetcher.pending() == frozenset()


async def test_priority_request_jumps_the_queue(
    server: ReplayServer, client_factory: Callable[[WeightBudget], RestClient]
) -> None:
    client = client_factory(WeightBudget())
    server.inject_rest_fault("/fapi/v1/depth", 200, count=10, delay_s=0.1)
    fetcher = SnapshotFetcher(client.fetch, limit=50, concurrency=1, retry_delay_s=0.05)
    for symbol in SYMBOLS:
        fetcher.request(symbol)
    fetcher.request("CTKUSDT", priority=True)  # queued last, wanted first
    got: list[DepthSnapshot] = []
    await run_until(fetcher, lambda: len(got) == 4, got.append)
    assert client.calls == ["CTKUSDT", "SUSHIUSDT", "AKROUSDT", "KEEPUSDT"]


async def test_keeper_syncs_every_book_through_the_fetcher(server: ReplayServer) -> None:
    """BookKeeper + SnapshotFetcher end to end: recorded diffs, snapshots over loopback."""
    decoder = BinanceFrameDecoder()
    diffs = [
        e
        for frame in Capture(CAPTURE).frames()
        if "@depth" in frame.stream
        for e in decoder.decode_frame(frame.raw, frame.recv_ms)[1]
        if isinstance(e, DepthDiff)
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        client = RestClient(server.rest_url, WeightBudget(), session)
        fetcher = SnapshotFetcher(client.fetch, limit=1000, concurrency=2, retry_delay_s=0.05)
        keeper = BookKeeper(BookConfig(), fetcher.request, lambda: int(time.time() * 1000))
        for symbol in SYMBOLS:
            keeper.track(symbol)
        task = asyncio.create_task(fetcher.run(keeper.on_snapshot, keeper.on_snapshot_failed))
        try:
            async with asyncio.timeout(10):
                for diff in diffs:
                    keeper.on_diff(diff)
                    await asyncio.sleep(0)  # let the fetches run meanwhile
                    if diff.symbol in fetcher.pending():
                        await asyncio.sleep(0.002)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    totals = keeper.totals()
    assert (totals.books, totals.synced, totals.resyncs, totals.gaps) == (4, 4, 0, 0)
    assert sorted(client.calls) == sorted(SYMBOLS)
