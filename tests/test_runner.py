"""The market pipeline under faults: a dropped socket, and no exchange at all."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from engine.config import EngineConfig
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tests.conftest import KLINES_55

FAST_FEED = FeedConfig(connect_interval_s=0.0, backoff_initial_s=0.05, backoff_max_s=0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling pipeline state, bounded
            await asyncio.sleep(0.05)


async def test_dropped_connection_reconnects_and_resubscribes() -> None:
    runner = MarketRunner(
        endpoints=EndpointConfig(), universe=UniverseConfig(mode="all"), feed=FAST_FEED,
        engine_config=EngineConfig(), data_dir=None,
        replay=ReplayOptions(
            path=KLINES_55 / "BTC_USDT_USDT-5m-futures.feather", speed=300.0,
            start_ms=1690848000000,
        ),
    )
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.snapshot().health.msgs_per_s > 0 or (
            runner.replay_server is not None and runner.replay_server.frames_sent > 2))
        server = runner.replay_server
        assert server is not None
        wanted = {"btcusdt@kline_5m", "!markPrice@arr@1s"}
        assert wanted <= server.subscribed_streams()
        sent_before = server.frames_sent
        assert server.drop_connections() >= 1
        await wait_for(lambda: runner.snapshot().health.reconnects >= 1)
        await wait_for(lambda: wanted <= server.subscribed_streams())
        await wait_for(lambda: server.frames_sent > sent_before + 2)
        health = runner.snapshot().health
        assert health.mode == "REPLAY" and health.connections >= 1
        assert health.stale_streams == 0
        assert runner.snapshot().symbols["BTCUSDT"].signal is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_no_exchange_shows_offline_with_reason_and_keeps_retrying() -> None:
    port = free_port()  # nothing listens here
    url = f"http://127.0.0.1:{port}"
    runner = MarketRunner(
        endpoints=EndpointConfig(rest_url=url, ws_url=f"ws://127.0.0.1:{port}"),
        universe=UniverseConfig(), feed=FAST_FEED.model_copy(update={"rest_timeout_s": 1.0}),
        engine_config=EngineConfig(), data_dir=None,
    )
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.snapshot().health.mode == "OFFLINE")
        health = runner.snapshot().health
        # Host and root cause, not ccxt's "binanceusdm GET <url>" wrapper.
        assert health.reason.startswith(f"cannot reach {url}: ")
        assert "Connect call failed" in health.reason
        assert "ExchangeNotAvailable" not in health.reason
        assert health.retry_in is not None and health.retry_in >= 0
        first_reason = health.reason
        await asyncio.sleep(0.6)
        assert runner.snapshot().health.mode == "OFFLINE"  # still retrying, no crash
        assert runner.snapshot().health.reason == first_reason
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
