"""`perpscope ask` end to end: real replay → context → loopback Ollama (or the rule-based
analyst when none answers)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.ai.ollama_loopback import OllamaLoopback, closed_port_url
from tests.conftest import KLINES_55

REPO = Path(__file__).resolve().parents[1]
BTC_FILE = KLINES_55 / "BTC_USDT_USDT-5m-futures.feather"
START = "2023-08-02T12:00"


async def run_ask(*args: str, host: str) -> tuple[int, str, str]:
    env = {**os.environ, "OLLAMA_HOST": host, "PERPSCOPE_AI__READ_TIMEOUT_S": "5"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "ask", *args,
        "--replay", str(BTC_FILE), "--start", START,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ask_streams_the_model_answer_with_the_context() -> None:
    async with OllamaLoopback() as server:
        code, out, err = await run_ask("btc", "why is it short?", "--show-prompt", host=server.url)
    assert code == 0, err
    assert out == server.reply + "\n"
    [sent] = server.requests
    assert sent["model"] == "qwen2.5:7b"
    system, user = sent["messages"]
    assert user == {"role": "user", "content": "why is it short?"}
    # The context is the replayed snapshot's: BTCUSDT's last close and signal bar.
    assert "## symbol BTCUSDT" in system["content"]
    assert "last price: 29116.2" in system["content"]
    assert "## signal (last closed bar 2023-08-03 12:30 UTC" in system["content"]
    assert system["content"] in err  # --show-prompt prints exactly what was sent


async def test_ask_verdict_prints_validated_json() -> None:
    async with OllamaLoopback() as server:
        code, out, err = await run_ask("BTCUSDT", "--verdict", host=server.url)
        server.json_reply = '{"decision": "moon", "rationale": []}'
        bad_code, bad_out, bad_err = await run_ask("BTCUSDT", "--verdict", host=server.url)
    assert code == 0, err
    record = json.loads(out)
    assert record["symbol"] == "BTCUSDT" and record["signal_as_of"] == 1691065799999
    assert record["source"] == "model" and record["model"] == "qwen2.5:7b"
    assert record["decision"] == "long" and record["target_price"] == 29500.0
    assert server.requests[0]["format"] == "json"
    assert bad_code == 1 and bad_out == ""
    assert "verdict breaks the contract" in bad_err and "decision" in bad_err


async def test_ask_without_ollama_falls_back_to_rules() -> None:
    url = closed_port_url()
    code, out, err = await run_ask("BTCUSDT", "why?", host=url)
    assert code == 0
    assert f"no Ollama at {url}: start it with `ollama serve`, then `ollama pull qwen2.5:7b`" in err
    assert "showing the rule-based analysis instead" in err
    assert out.startswith("**Rule-based analysis**")
    text = out
    code, out, err = await run_ask("BTCUSDT", "--verdict", host=url)
    assert code == 0 and "no Ollama at" in err
    record = json.loads(out)
    assert record["source"] == "rules" and record["signal_as_of"] == 1691065799999
    # The summary and the JSON verdict are the same deterministic analysis.
    assert f"**Verdict on BTCUSDT: {record['decision'].upper()}**" in text
    assert "by rules" in text
    assert all(f"- {item}" in text for item in record["rationale"])
    assert record["rationale"][0].startswith("fused signal ")


async def test_ask_unknown_model_and_symbol() -> None:
    async with OllamaLoopback() as server:
        code, out, err = await run_ask("BTCUSDT", "why?", "--model", "mistral:7b", host=server.url)
        bad_code, _, bad_err = await run_ask("NOPEUSDT", "why?", host=server.url)
    assert code == 0
    assert "model 'mistral:7b' not found" in err and "ollama pull mistral:7b" in err
    assert out.startswith("**Rule-based analysis**")
    assert bad_code == 2 and "unknown symbol 'NOPEUSDT'" in bad_err
