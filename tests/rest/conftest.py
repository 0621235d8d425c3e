"""Fixtures for REST tests: the loopback replay server over recorded klines, and clients.

Everything is read in place from ``../shared/data`` (the folder beside the repo).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rest_support import (
    KLINES_DIR,
    REPLAY_SYMBOLS,
    REPLAY_TIMEFRAMES,
    START_MS,
    MakeRest,
    StartReplay,
)

from feeds.config import EndpointConfig, FeedConfig
from feeds.replay.server import ReplayServer
from feeds.rest import BinanceRest


@pytest.fixture
def klines_dir() -> Path:
    assert KLINES_DIR.is_dir(), f"recorded klines not found at {KLINES_DIR}"
    return KLINES_DIR


@pytest.fixture
async def replay(klines_dir: Path) -> AsyncIterator[StartReplay]:
    """``await replay(start_ms=..., symbols=...)`` → a started ReplayServer, stopped after.

    The servers run at max speed with no WebSocket consumer, so the replay clock stays at
    ``start_ms`` for the whole test (deterministic REST answers).
    """
    servers: list[ReplayServer] = []

    async def start(**kwargs: Any) -> ReplayServer:
        kwargs.setdefault("start_ms", START_MS)
        kwargs.setdefault("symbols", REPLAY_SYMBOLS)
        server = ReplayServer(
            klines_dir,
            speed=None,
            timeframes=REPLAY_TIMEFRAMES,
            history_bars={"5m": 1500},
            **kwargs,
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def make_rest() -> AsyncIterator[MakeRest]:
    """``make_rest(rest_url, **kwargs)`` → a BinanceRest built by the real ccxt factory."""
    clients: list[BinanceRest] = []

    def make(rest_url: str, **kwargs: Any) -> BinanceRest:
        client = BinanceRest(EndpointConfig(rest_url=rest_url), FeedConfig(), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
