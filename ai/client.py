"""Async Ollama client: streamed chat answers and the model list, with typed errors.

Wraps the official ``ollama`` package (``ollama.AsyncClient``, HTTP via httpx) so the rest of
perpscope sees one error family, each with a message meant for the user:

* :class:`OllamaUnavailable`: nothing listens at the host (connection refused / unresolvable).
* :class:`ModelNotFound`: the server does not have the model (tells ``ollama pull <model>``).
* :class:`AiTimeout`: connect, read or whole-answer timeout.
* :class:`ServerError`: HTTP 5xx or another error reply.
* :class:`StreamCutOff`: the NDJSON stream ended before its ``"done": true`` record.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import ollama

from ai.config import AiConfig

log = logging.getLogger(__name__)


class AiError(Exception):
    """Any failure of an AI request; ``str()`` is a message for the user."""


class OllamaUnavailable(AiError):
    """No Ollama server answered at the host."""

    def __init__(self, host: str, model: str) -> None:
        self.host = host
        self.model = model
        super().__init__(
            f"no Ollama at {host}: start it with `ollama serve`, then `ollama pull {model}`"
        )


class ModelNotFound(AiError):
    """The server answered but does not have the model."""

    def __init__(self, host: str, model: str) -> None:
        self.host = host
        self.model = model
        super().__init__(
            f"model {model!r} not found on the Ollama server at {host}: "
            f"run `ollama pull {model}` or pick another model"
        )


class AiTimeout(AiError):
    """The server did not answer in time."""


class ServerError(AiError):
    """The server replied with an error (HTTP 5xx or an error record)."""

    def __init__(self, host: str, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        code = f"HTTP {status}" if status > 0 else "an error"
        super().__init__(f"the Ollama server at {host} replied with {code}: {detail}")


class StreamCutOff(AiError):
    """The answer stream ended early (connection dropped or malformed record)."""


@dataclass(frozen=True)
class ChatMessage:
    """One chat message in Ollama's format.

    Attributes:
        role: ``system``, ``user`` or ``assistant``.
        content: The text.
    """

    role: str
    content: str


class OllamaClient:
    """Talks to one Ollama server.

    Args:
        config: The ``[ai]`` section (host, timeouts).
        host: Override of the configured host (tests point it at a loopback server).
    """

    def __init__(self, config: AiConfig, host: str | None = None) -> None:
        self.config = config
        self.host = (host or config.resolved_host()).rstrip("/")
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        self._client = ollama.AsyncClient(host=self.host, timeout=timeout)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        # AsyncClient.close is untyped; close its httpx client directly (the same call).
        await self._client._client.aclose()

    async def version(self) -> str:
        """The server's version string (``GET /api/version``).

        Raises:
            AiError: see the module docstring.
        """
        async with self._guard(self.config.model):
            # The ollama package has no version call; use its own httpx client and base URL.
            response = await self._client._client.get("/api/version")
            response.raise_for_status()
            return str(response.json().get("version", ""))

    async def models(self) -> list[str]:
        """Names of the models the server has (``GET /api/tags``), sorted.

        Raises:
            AiError: see the module docstring.
        """
        async with self._guard(self.config.model):
            listing = await self._client.list()
        return sorted(m.model for m in listing.models if m.model)

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        json_output: bool = False,
    ) -> AsyncIterator[str]:
        """Stream the answer to ``messages`` (``POST /api/chat``, NDJSON) as text chunks.

        Args:
            model: Model name as the server lists it.
            messages: The conversation, system prompt first.
            json_output: Ask the server to constrain the output to JSON (``format: json``).

        Yields:
            Non-empty text chunks in order.

        Raises:
            AiError: see the module docstring; a stream without its final ``done`` record is
                :class:`StreamCutOff`.
        """
        payload = [{"role": m.role, "content": m.content} for m in messages]
        async with self._guard(model):
            async with asyncio.timeout(self.config.answer_timeout_s):
                stream = await self._client.chat(
                    model=model,
                    messages=payload,
                    stream=True,
                    format="json" if json_output else None,
                )
                done = False
                async for part in stream:
                    text = part.message.content if part.message else None
                    if text:
                        yield text
                    if part.done:
                        done = True
                if not done:
                    raise StreamCutOff(
                        f"the answer from {self.host} stopped before it was complete "
                        "(stream ended without its final record)"
                    )

    # -- error mapping -------------------------------------------------------------------

    def _guard(self, model: str) -> _ErrorMap:
        return _ErrorMap(self.host, model, self.config.answer_timeout_s)


class _ErrorMap:
    """Async context manager turning ollama/httpx exceptions into :class:`AiError`."""

    def __init__(self, host: str, model: str, answer_timeout_s: float) -> None:
        self.host = host
        self.model = model
        self.answer_timeout_s = answer_timeout_s

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None or isinstance(exc, AiError | asyncio.CancelledError):
            return
        mapped = self._map(exc)
        if mapped is None:
            return
        log.info("ollama request failed: %s (%r)", mapped, exc)
        raise mapped from exc

    def _map(self, exc: BaseException) -> AiError | None:
        if isinstance(exc, ollama.ResponseError):
            status = exc.status_code
            detail = str(exc.error)
            if status == 404 or "not found" in detail.lower():
                return ModelNotFound(self.host, self.model)
            return ServerError(self.host, status, detail)
        if isinstance(exc, httpx.TimeoutException):
            return AiTimeout(f"the Ollama server at {self.host} did not answer in time ({exc!r})")
        if isinstance(exc, TimeoutError):
            return AiTimeout(
                f"the answer from {self.host} took longer than {self.answer_timeout_s:g} s"
            )
        if isinstance(exc, httpx.ConnectError | ConnectionError):
            return OllamaUnavailable(self.host, self.model)
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | json.JSONDecodeError):
            return StreamCutOff(
                f"the answer from {self.host} was cut off before it was complete ({exc})"
            )
        if isinstance(exc, httpx.HTTPError):
            return ServerError(self.host, 0, str(exc) or type(exc).__name__)
        return None
