"""Fixtures for the replay tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from replay_data import KLINES_55

from feeds.replay.server import ReplayServer


@pytest.fixture
async def eth_btc_server() -> AsyncIterator[ReplayServer]:
    """Max-speed kline replay of ETHUSDT (has 1m) and BTCUSDT (5m/1h only), 5m + 15m."""
    server = ReplayServer(
        KLINES_55,
        speed=None,
        timeframes=["5m", "15m"],
        history_bars={"5m": 300},
        symbols=["ETHUSDT", "BTCUSDT"],
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
