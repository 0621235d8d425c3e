"""A loopback HTTP server speaking Ollama's API, for tests of the real ``ollama`` client.

Endpoints (as Ollama 0.x serves them): ``GET /api/version``, ``GET /api/tags``,
``POST /api/chat`` streaming NDJSON records ``{"model", "created_at", "message": {"role",
"content"}, "done": false}`` and a final ``{"done": true, "done_reason": "stop", ...}``.

Models and what they do:

* the names in :attr:`OllamaLoopback.models` answer with :attr:`OllamaLoopback.reply` (or,
  with ``"format": "json"``, :attr:`OllamaLoopback.json_reply`), split into chunks sent
  :attr:`OllamaLoopback.chunk_delay_s` apart;
* ``broken:500`` replies HTTP 500 ``{"error": ...}``;
* ``slow:1b`` sends one chunk, then nothing for 30 s;
* ``cutoff:1b`` sends two chunks, then drops the connection mid-stream;
* ``nodone:1b`` sends two chunks and ends cleanly without the ``done`` record;
* anything else: HTTP 404 ``{"error": "model '<name>' not found"}`` like Ollama.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

DEFAULT_MODELS = ("qwen2.5:7b", "llama3.2:3b", "broken:500", "slow:1b", "cutoff:1b", "nodone:1b")
CREATED = "2024-01-01T00:00:00Z"


class OllamaLoopback:
    """The server; ``async with OllamaLoopback() as server`` then point a client at ``url``."""

    def __init__(self) -> None:
        self.models: list[str] = list(DEFAULT_MODELS)
        self.reply = (
            "**BTCUSDT** looks long: score 62.0 on the 5m and 15m votes.\n\n- stop below 29000"
        )
        self.json_reply = json.dumps(
            {
                "decision": "long",
                "target_price": 29500.0,
                "rationale": ["5m vote +0.60", "15m vote +0.40"],
                "risk_flags": ["funding +0.0100%"],
                "confidence_explained": "two of three timeframes agree",
            }
        )
        self.chunk_size = 8
        self.chunk_delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        """Every /api/chat body received, in order."""
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> OllamaLoopback:
        app = web.Application()
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.6.3"})

    async def _tags(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": CREATED,
                "size": 4_683_087_332,
                "digest": "0" * 64,
                "details": {"format": "gguf", "family": "qwen2", "parameter_size": "7.6B"},
            }
            for name in self.models
        ]
        return web.json_response({"models": models})

    def _record(self, model: str, content: str, done: bool) -> bytes:
        record: dict[str, Any] = {
            "model": model,
            "created_at": CREATED,
            "message": {"role": "assistant", "content": content},
            "done": done,
        }
        if done:
            record.update(done_reason="stop", total_duration=1, eval_count=1)
        return (json.dumps(record) + "\n").encode()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        model = str(body.get("model", ""))
        if model not in self.models:
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        if model == "broken:500":
            return web.json_response(
                {"error": "llama runner process has terminated: signal: killed"}, status=500
            )
        text = self.json_reply if body.get("format") == "json" else self.reply
        chunks = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if model == "slow:1b":
            await response.write(self._record(model, chunks[0], False))
            await asyncio.sleep(30)
        if model in ("cutoff:1b", "nodone:1b"):
            for chunk in chunks[:2]:
                await response.write(self._record(model, chunk, False))
            if model == "cutoff:1b":
                # Half a record, then the connection drops: what a crashed server looks like.
                await response.write(b'{"model": "cutoff:1b", "mess')
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write_eof()
            return response
        for chunk in chunks:
            await response.write(self._record(model, chunk, False))
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await response.write(self._record(model, "", True))
        await response.write_eof()
        return response


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a port bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class ThreadedOllama:
    """:class:`OllamaLoopback` on its own event loop in a thread, for sync tests (snapshots).

    ``with ThreadedOllama() as server:`` then use ``server.url``.
    """

    def __init__(self) -> None:
        import threading

        self.server = OllamaLoopback()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> OllamaLoopback:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self._loop)
        return future.result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        future = asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self._loop)
        future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
