"""Order books end to end: the real adapter, book sync, snapshot fetcher and ccxt REST client
against the loopback exchange replaying a real capture, with faults injected on the wire."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from engine.config import EngineConfig
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import BookConfig, EndpointConfig, FeedConfig, UniverseConfig
from feeds.replay.server import ReplayServer
from tests.conftest import SHARED_DATA

CRYPTOFEED = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
FAST_FEED = FeedConfig(connect_interval_s=0.0, backoff_initial_s=0.05, backoff_max_s=0.2)
SYMBOL = "SUSHIUSDT"
STREAM = "sushiusdt@depth@100ms"


async def wait_for(predicate: Callable[[], bool], limit_s: float = 15.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling pipeline state, bounded
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(speed: float, books: BookConfig | None = None) -> AsyncIterator[MarketRunner]:
    runner = MarketRunner(
        endpoints=EndpointConfig(), universe=UniverseConfig(mode="all"), feed=FAST_FEED,
        engine_config=EngineConfig(), data_dir=None,
        replay=ReplayOptions(path=CRYPTOFEED, speed=speed),
        books=books,
    )
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.micro_feed is not None and runner.replay_server is not None)
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _server(runner: MarketRunner) -> ReplayServer:
    server = runner.replay_server
    assert server is not None
    return server


def _info(runner: MarketRunner) -> tuple[str, int, int, int]:
    assert runner.micro_feed is not None
    info = runner.micro_feed.info(SYMBOL)
    return info.state, info.resyncs, info.gaps, info.stale_snapshots


async def test_dropped_diff_is_a_counted_gap_and_the_book_resyncs() -> None:
    async with running(speed=2.5) as runner:
        await wait_for(lambda: _info(runner)[0] == "synced")
        assert _info(runner) == ("synced", 0, 0, 0)
        _server(runner).drop_frames(STREAM, 1)
        # Detected at the next diff, resynced from a fresh snapshot of the exchange's book.
        await wait_for(lambda: _info(runner)[2] == 1)
        await wait_for(lambda: _info(runner)[0] == "synced")
        _, resyncs, gaps, _ = _info(runner)
        assert (resyncs, gaps) == (1, 1)
        assert runner.micro_feed is not None
        book = runner.micro_feed.book(SYMBOL)
        assert book is not None and not book.crossed()
        health = runner.snapshot().health
        assert health.book_gaps == 1 and health.book_resyncs == 1
        row = runner.snapshot().symbols[SYMBOL]
        assert row.book is not None and row.book.gaps == 1
        # The other books never noticed.
        for other in ("AKROUSDT", "CTKUSDT", "KEEPUSDT"):
            info = runner.micro_feed.info(other)
            assert info.gaps == 0 and info.resyncs == 0


async def test_stale_snapshot_is_refetched_not_applied() -> None:
    books = BookConfig(resync_delay_s=0.1)
    async with running(speed=2.5, books=books) as runner:
        await wait_for(lambda: _info(runner)[0] == "synced")
        server = _server(runner)
        # Force a resync, and answer its first snapshot request with the session's first
        # recorded snapshot: older than every diff buffered since.
        server.inject_stale_depth(SYMBOL, 1)
        server.drop_frames(STREAM, 1)
        await wait_for(lambda: _info(runner)[3] >= 1)
        assert _info(runner)[0] == "resyncing"
        await wait_for(lambda: _info(runner)[0] == "synced")
        _, resyncs, gaps, stale = _info(runner)
        assert gaps == 1 and stale == 1 and resyncs >= 1
        depth_requests = [
            entry for entry in server.rest_log
            if entry[1] == "/fapi/v1/depth" and entry[2].get("symbol") == SYMBOL
        ]
        # First sync, the stale answer, and the refetch.
        assert len(depth_requests) == 3


async def test_scan_state_at_end_of_capture() -> None:
    runner = MarketRunner(
        endpoints=EndpointConfig(), universe=UniverseConfig(mode="all"), feed=FAST_FEED,
        engine_config=EngineConfig(), data_dir=None,
        replay=ReplayOptions(path=CRYPTOFEED, speed=None),
    )
    snapshot = await runner.run_to_completion(timeout_s=60)
    assert sorted(snapshot.symbols) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    for row in snapshot.symbols.values():
        assert row.book is not None and row.book.state == "synced"
        assert (row.book.gaps, row.book.resyncs) == (0, 0)
        assert row.spread_bps is not None and row.spread_bps > 0
        assert row.imbalance is not None and -1 <= row.imbalance <= 1
        assert row.micro_score is not None and 0 <= row.micro_score <= 100
    assert snapshot.health.books == snapshot.health.books_synced == 4
    assert snapshot.health.open_interest == "unavailable"
    assert "not recorded" in snapshot.health.open_interest_reason


async def test_opening_a_symbol_subscribes_its_book_on_demand() -> None:
    async with running(speed=2.5, books=BookConfig(top_n=0)) as runner:
        server = _server(runner)
        await wait_for(lambda: server.frames_sent > 20)
        assert runner.micro_feed is not None
        assert runner.micro_feed.book_symbols() == []
        assert STREAM not in server.subscribed_streams()
        assert runner.micro(SYMBOL) is not None and runner.micro(SYMBOL).book.state == "none"
        runner.want_book(SYMBOL)
        await wait_for(lambda: STREAM in server.subscribed_streams())
        await wait_for(lambda: _info(runner)[0] == "synced")
        view = runner.micro(SYMBOL)
        assert view is not None and view.book.state == "synced"
        assert view.bids and view.asks and view.bids[0][0] < view.asks[0][0]
        # Only the opened symbol got a book.
        assert runner.micro_feed.book_symbols() == [SYMBOL]
        runner.want_book(SYMBOL, False)
        await wait_for(lambda: STREAM not in server.subscribed_streams())
        assert runner.micro_feed.info(SYMBOL).state == "none"
