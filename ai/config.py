"""The ``[ai]`` settings section: where the local Ollama server is and how it is used."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "http://127.0.0.1:11434"
"""Ollama's default address."""
HOST_ENV = "OLLAMA_HOST"
"""Environment variable Ollama's own tools read for the server address."""


class AiConfig(BaseModel):
    """The AI analyst: a local Ollama model, grounded in the engine snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    host: str | None = None
    """Ollama server URL; empty = ``$OLLAMA_HOST``, else ``http://127.0.0.1:11434``."""
    model: str = "qwen2.5:7b"
    """Model asked by default (pick another in the chat pane; `ollama pull <model>` first)."""
    connect_timeout_s: float = Field(default=3.0, gt=0.0, le=60.0)
    """Give up connecting to the server after this long."""
    read_timeout_s: float = Field(default=60.0, gt=0.0, le=600.0)
    """Give up when the server sends nothing for this long (a cold model load can be slow)."""
    answer_timeout_s: float = Field(default=300.0, gt=0.0, le=3600.0)
    """Give up when a whole answer takes longer than this."""
    context_tokens: int = Field(default=1500, ge=200, le=32000)
    """Token budget of the market context sent with each question (estimated as chars / 4);
    the lowest-priority parts are dropped first."""
    market_stale_s: float = Field(default=120.0, gt=0.0, le=86400.0)
    """Market data (price, mark, funding) older than this is marked STALE in the context."""
    stale_bars: float = Field(default=2.0, gt=0.0, le=100.0)
    """A timeframe whose last closed candle is older than this many of its bars is STALE."""
    cache_answers: bool = True
    """Reuse the answer to the same symbol, bar and question until the next bar closes."""
    history_messages: int = Field(default=6, ge=0, le=50)
    """Earlier messages of the thread sent along for follow-up questions."""

    def resolved_host(self) -> str:
        """The server URL: ``host``, else ``$OLLAMA_HOST``, else :data:`DEFAULT_HOST`."""
        host = self.host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        if "://" not in host:
            # Ollama's own tools accept bare host:port.
            host = f"http://{host}"
        return host.rstrip("/")
