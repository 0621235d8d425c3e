"""AiSession: prompt as sent, answer cache per bar, one request in flight, verdicts stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from ai.client import OllamaUnavailable
from ai.config import AiConfig
from ai.session import AiSession
from ai.verdict import VerdictError
from engine.models import EngineSnapshot
from engine.runner import MarketRunner
from storage.chat import ChatStore
from storage.db import Database
from tests.ai.ollama_loopback import OllamaLoopback, closed_port_url

Replayed = tuple[MarketRunner, EngineSnapshot]


async def test_answer_is_grounded_and_cached_until_next_bar(
    ollama: OllamaLoopback, ai_config: AiConfig, replayed: Replayed
) -> None:
    runner, snapshot = replayed
    session = AiSession(ai_config, host=ollama.url)
    try:
        candles = runner.candles("BTCUSDT", "5m")
        request = await session.prepare(snapshot, "BTCUSDT", "why short?", candles=candles)
        assert session.last_request is request
        assert await session.answer(request) == ollama.reply
        system = ollama.requests[-1]["messages"][0]
        assert system["role"] == "system" and request.context.text in system["content"]
        assert "marked STALE" in system["content"]
        assert request.prompt_text.startswith("--- system ---\n")
        # Same symbol, bar and question (modulo case/space): served from the cache.
        again = await session.prepare(snapshot, "BTCUSDT", "  Why SHORT? ", candles=candles)
        assert await session.answer(again) == ollama.reply
        assert len(ollama.requests) == 1
        # The next bar: the cache no longer applies.
        state = snapshot.symbols["BTCUSDT"]
        assert state.signal is not None
        later = msgspec.structs.replace(
            state, signal=msgspec.structs.replace(state.signal, as_of=state.signal.as_of + 300_000)
        )
        moved = msgspec.structs.replace(snapshot, symbols={**snapshot.symbols, "BTCUSDT": later})
        next_bar = await session.prepare(moved, "BTCUSDT", "why short?")
        await session.answer(next_bar)
        assert len(ollama.requests) == 2
        # Another model is another cache entry.
        session.model = "llama3.2:3b"
        other = await session.prepare(moved, "BTCUSDT", "why short?")
        await session.answer(other)
        assert ollama.requests[-1]["model"] == "llama3.2:3b" and len(ollama.requests) == 3
    finally:
        await session.close()


async def test_new_question_cancels_the_one_in_flight(
    ollama: OllamaLoopback, ai_config: AiConfig, replayed: Replayed
) -> None:
    _, snapshot = replayed
    ollama.chunk_delay_s = 0.1
    session = AiSession(ai_config, host=ollama.url)
    try:
        first = await session.prepare(snapshot, "ETHUSDT", "first")
        second = await session.prepare(snapshot, "ETHUSDT", "second")
        got_chunk = asyncio.Event()

        async def consume_first() -> str:
            parts = []
            async for chunk in session.stream(first):
                parts.append(chunk)
                got_chunk.set()
            return "".join(parts)

        async with asyncio.timeout(10):
            task = asyncio.create_task(consume_first())
            await got_chunk.wait()
            ollama.chunk_delay_s = 0.0
            answer = await session.answer(second)
            with pytest.raises(asyncio.CancelledError):
                await task
        assert answer == ollama.reply
        # The cancelled answer was not cached: asking again goes to the server.
        assert session.cached(first) is None and session.cached(second) == ollama.reply
    finally:
        await session.close()


async def test_verdicts_are_validated_and_stored(
    ollama: OllamaLoopback, ai_config: AiConfig, replayed: Replayed, tmp_path: Path
) -> None:
    _, snapshot = replayed
    async with Database(tmp_path / "perpscope.db") as db:
        store = ChatStore(db, clock=lambda: 1_700_000_000_000)
        session = AiSession(ai_config, store=store, host=ollama.url)
        try:
            request = await session.prepare(snapshot, "BTCUSDT", "", verdict=True)
            assert "ONE JSON object" in request.messages[-1].content
            verdict = await session.verdict(request)
            assert verdict.decision == "long" and verdict.target_price == 29500.0
            ollama.json_reply = '{"decision": "buy", "rationale": ["x"]}'
            session.model = "llama3.2:3b"
            bad = await session.prepare(snapshot, "BTCUSDT", "", verdict=True)
            with pytest.raises(VerdictError):
                await session.verdict(bad)
            assert session.cached(bad) is None
            rules = await session.rule_verdict(bad)
            stored = await store.verdicts("BTCUSDT")
        finally:
            await session.close()
    state = snapshot.symbols["BTCUSDT"]
    assert state.signal is not None
    assert [(v.source, v.model, v.decision) for v in stored] == [
        ("model", "qwen2.5:7b", "long"),
        ("rules", "", rules.decision),
    ]
    assert all(v.signal_as_of == state.signal.as_of for v in stored)
    assert stored[0].entry_price == state.last_price and stored[0].target_price == 29500.0


async def test_history_goes_with_follow_ups(
    ollama: OllamaLoopback, ai_config: AiConfig, replayed: Replayed
) -> None:
    _, snapshot = replayed
    session = AiSession(ai_config, host=ollama.url)
    try:
        await session.record("BTCUSDT", "user", "why short?")
        await session.record("BTCUSDT", "assistant", "because 1h supertrend is down")
        await session.record("BTCUSDT", "notice", "no Ollama")
        request = await session.prepare(snapshot, "BTCUSDT", "and the stop?")
        roles = [m.role for m in request.messages]
        assert roles == ["system", "user", "assistant", "user"]
        assert request.messages[2].content == "because 1h supertrend is down"
        await session.clear_thread("BTCUSDT")
        assert await session.load_thread("BTCUSDT") == []
    finally:
        await session.close()


async def test_no_server_then_rule_based(ai_config: AiConfig, replayed: Replayed) -> None:
    _, snapshot = replayed
    session = AiSession(ai_config, host=closed_port_url())
    try:
        request = await session.prepare(snapshot, "ADAUSDT", "what now?")
        with pytest.raises(OllamaUnavailable):
            await session.answer(request)
        assert "**Verdict on ADAUSDT: SHORT**" in session.rule_summary(request)
    finally:
        await session.close()
