"""storage.chat: threads per symbol and a general thread, clearing, verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.chat import GENERAL_THREAD, ChatStore
from storage.db import Database


async def test_threads_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "perpscope.db"
    times = iter(range(1_000, 2_000))
    async with Database(path) as db:
        store = ChatStore(db, clock=lambda: next(times))
        await store.append("BTCUSDT", "user", "why short?")
        await store.append("BTCUSDT", "assistant", "1h supertrend down", model="qwen2.5:7b")
        await store.append(GENERAL_THREAD, "user", "top longs?")
        await store.append("ETHUSDT", "notice", "no Ollama")
    async with Database(path) as db:
        store = ChatStore(db)
        btc = await store.load("BTCUSDT")
        assert [(m.role, m.content, m.model) for m in btc] == [
            ("user", "why short?", ""),
            ("assistant", "1h supertrend down", "qwen2.5:7b"),
        ]
        assert [m.created_ms for m in btc] == [1_000, 1_001]
        assert [m.content for m in await store.load("BTCUSDT", limit=1)] == ["1h supertrend down"]
        assert await store.threads() == sorted(["BTCUSDT", "ETHUSDT", GENERAL_THREAD])
        assert await store.clear("BTCUSDT") == 2
        assert await store.load("BTCUSDT") == []
        assert [m.content for m in await store.load(GENERAL_THREAD)] == ["top longs?"]


async def test_bad_role_and_decision_are_refused(tmp_path: Path) -> None:
    async with Database(tmp_path / "perpscope.db") as db:
        store = ChatStore(db)
        with pytest.raises(ValueError, match="unknown chat role 'system'"):
            await store.append("BTCUSDT", "system", "x")
        with pytest.raises(ValueError, match="must not be empty"):
            await store.append("", "user", "x")
        with pytest.raises(ValueError, match="invalid verdict decision 'buy'"):
            await store.add_verdict(
                symbol="BTCUSDT", signal_as_of=1, source="rules", model="", decision="buy",
                target_price=None, entry_price=None, payload={},
            )


async def test_verdicts_keep_signal_and_model(tmp_path: Path) -> None:
    async with Database(tmp_path / "perpscope.db") as db:
        store = ChatStore(db, clock=lambda: 5)
        await store.add_verdict(
            symbol="BTCUSDT", signal_as_of=1691065799999, source="model", model="qwen2.5:7b",
            decision="short", target_price=28886.0, entry_price=29116.2,
            payload={"decision": "short", "rationale": ["a"]},
        )
        [stored] = await store.verdicts("BTCUSDT")
        assert await store.verdicts("ETHUSDT") == []
    assert (stored.signal_as_of, stored.model, stored.decision) == (
        1691065799999, "qwen2.5:7b", "short"
    )
    assert stored.target_price == 28886.0 and stored.entry_price == 29116.2
    assert stored.payload == '{"decision": "short", "rationale": ["a"]}'
