"""AI test fixtures: the loopback Ollama server and a real replayed snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai.config import AiConfig
from engine.config import EngineConfig
from engine.models import EngineSnapshot
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tests.ai.ollama_loopback import OllamaLoopback

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
KLINES_DIR = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"
"""55 USDT perpetuals, 5m klines + 8h funding/mark, 2023-07-04..2023-08-03."""
CONTEXT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT", "XLMUSDT")
"""A slice with symbols whose files end early (TRX, XLM: 2023-08-02 23:20) and late ones."""
REPLAY_START_MS = 1_690_977_600_000
"""2023-08-02 12:00Z: a late start so the replay streams ~1 day; the rest is backfill."""


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaLoopback]:
    """A running loopback Ollama server."""
    async with OllamaLoopback() as server:
        yield server


@pytest.fixture
def ai_config() -> AiConfig:
    """Short timeouts so fault tests stay fast."""
    return AiConfig(connect_timeout_s=2.0, read_timeout_s=1.0, answer_timeout_s=10.0)


@pytest.fixture(scope="session")
def replayed() -> tuple[MarketRunner, EngineSnapshot]:
    """The slice replayed to its end through the real pipeline (runner, final snapshot)."""
    assert KLINES_DIR.is_dir(), f"recorded klines not found at {KLINES_DIR}"
    runner = MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=list(CONTEXT_SYMBOLS)),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=KLINES_DIR, speed=None, start_ms=REPLAY_START_MS),
    )
    snapshot = asyncio.run(runner.run_to_completion(timeout_s=90))
    return runner, snapshot
