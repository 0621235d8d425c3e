"""The real ``ollama`` client against a loopback server speaking Ollama's API."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai.client import (
    AiTimeout,
    ChatMessage,
    ModelNotFound,
    OllamaClient,
    OllamaUnavailable,
    ServerError,
    StreamCutOff,
)
from ai.config import DEFAULT_HOST, AiConfig
from tests.ai.ollama_loopback import OllamaLoopback, closed_port_url

MESSAGES = [ChatMessage("system", "context"), ChatMessage("user", "why is BTC short?")]


async def collect(client: OllamaClient, model: str, **kw: bool) -> list[str]:
    async with asyncio.timeout(10):
        return [chunk async for chunk in client.chat(model, MESSAGES, **kw)]


async def test_version_and_model_list(ollama: OllamaLoopback, ai_config: AiConfig) -> None:
    client = OllamaClient(ai_config, ollama.url)
    try:
        assert await client.version() == "0.6.3"
        assert await client.models() == sorted(ollama.models)
    finally:
        await client.close()


async def test_streams_chunks_and_sends_messages(
    ollama: OllamaLoopback, ai_config: AiConfig
) -> None:
    client = OllamaClient(ai_config, ollama.url)
    try:
        chunks = await collect(client, "qwen2.5:7b")
    finally:
        await client.close()
    assert len(chunks) > 3 and "".join(chunks) == ollama.reply
    sent = ollama.requests[-1]
    assert sent["model"] == "qwen2.5:7b" and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "context"},
        {"role": "user", "content": "why is BTC short?"},
    ]
    assert not sent.get("format")


async def test_json_mode_asks_for_json(ollama: OllamaLoopback, ai_config: AiConfig) -> None:
    client = OllamaClient(ai_config, ollama.url)
    try:
        text = "".join(await collect(client, "qwen2.5:7b", json_output=True))
    finally:
        await client.close()
    assert ollama.requests[-1]["format"] == "json"
    assert text == ollama.json_reply


async def test_unknown_model_says_pull(ollama: OllamaLoopback, ai_config: AiConfig) -> None:
    client = OllamaClient(ai_config, ollama.url)
    try:
        with pytest.raises(ModelNotFound) as info:
            await collect(client, "mistral:7b")
    finally:
        await client.close()
    assert "ollama pull mistral:7b" in str(info.value)
    assert ollama.url in str(info.value)


async def test_server_error_500(ollama: OllamaLoopback, ai_config: AiConfig) -> None:
    client = OllamaClient(ai_config, ollama.url)
    try:
        with pytest.raises(ServerError) as info:
            await collect(client, "broken:500")
    finally:
        await client.close()
    assert info.value.status == 500
    assert "HTTP 500" in str(info.value) and "llama runner process" in str(info.value)


async def test_slow_stream_times_out(ollama: OllamaLoopback, ai_config: AiConfig) -> None:
    client = OllamaClient(ai_config, ollama.url)
    started = time.monotonic()
    try:
        with pytest.raises(AiTimeout) as info:
            await collect(client, "slow:1b")
    finally:
        await client.close()
    # read_timeout_s = 1: the silence after the first chunk ends the request, not 30 s.
    assert time.monotonic() - started < 5
    assert "did not answer in time" in str(info.value)


async def test_whole_answer_timeout(ollama: OllamaLoopback) -> None:
    ollama.chunk_delay_s = 0.2
    config = AiConfig(read_timeout_s=5.0, answer_timeout_s=0.5)
    client = OllamaClient(config, ollama.url)
    try:
        with pytest.raises(AiTimeout) as info:
            await collect(client, "qwen2.5:7b")
    finally:
        await client.close()
    assert "longer than 0.5 s" in str(info.value)


@pytest.mark.parametrize("model", ["cutoff:1b", "nodone:1b"])
async def test_cut_off_stream(ollama: OllamaLoopback, ai_config: AiConfig, model: str) -> None:
    client = OllamaClient(ai_config, ollama.url)
    received: list[str] = []
    try:
        with pytest.raises(StreamCutOff) as info:
            async with asyncio.timeout(10):
                async for chunk in client.chat(model, MESSAGES):
                    received.append(chunk)
    finally:
        await client.close()
    assert "".join(received) == ollama.reply[:16]
    assert "before it was complete" in str(info.value)


async def test_no_server_is_unavailable(ai_config: AiConfig) -> None:
    url = closed_port_url()
    client = OllamaClient(ai_config, url)
    try:
        with pytest.raises(OllamaUnavailable) as stream_info:
            await collect(client, "qwen2.5:7b")
        with pytest.raises(OllamaUnavailable) as list_info:
            await client.models()
    finally:
        await client.close()
    for info in (stream_info, list_info):
        message = str(info.value)
        assert f"no Ollama at {url}" in message
        assert "ollama serve" in message and "ollama pull qwen2.5:7b" in message


def test_host_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert AiConfig().resolved_host() == DEFAULT_HOST
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")
    assert AiConfig().resolved_host() == "http://10.0.0.5:11434"
    assert AiConfig(host="http://127.0.0.1:9999/").resolved_host() == "http://127.0.0.1:9999"
