"""One analyst session: context → prompt → model (or rules), with caching and one request in flight.

The chat pane and ``perpscope ask`` both talk to :class:`AiSession` only; it owns the Ollama
client and, when given, the chat store.

* One request in flight: starting an answer cancels the task still streaming the previous one
  (a stale question is not worth the model's time).
* Cache: a complete answer is reused for the same (symbol, bar ``as_of``, question, model,
  mode) until the symbol's next bar closes; entries of older bars are evicted.
* History: the last ``AiConfig.history_messages`` user/assistant messages of the thread go
  with each question, so follow-ups work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ai.analyst import SOURCE as RULES_SOURCE
from ai.analyst import rule_summary, rule_verdict
from ai.client import AiError, ChatMessage, OllamaClient
from ai.config import AiConfig
from ai.context import MarketContext, build_context
from ai.prompts import build_messages, render_prompt
from ai.verdict import Verdict, parse_verdict
from engine.history import TrackRecord
from engine.models import CandleSeries, EngineSnapshot, MicroView
from storage.chat import GENERAL_THREAD, ChatStore, StoredMessage

log = logging.getLogger(__name__)

CacheKey = tuple[str, int, str, str, bool]
"""(symbol, bar as_of, normalised question, model, verdict mode)."""


@dataclass(frozen=True)
class Request:
    """Everything one question sends, prepared before any network call.

    Attributes:
        thread: Thread key (symbol or the general thread).
        question: The user's text.
        model: Model asked.
        verdict: Verdict (JSON) mode.
        context: The grounding context.
        messages: The exact messages sent (system prompt with context, history, question).
    """

    thread: str
    question: str
    model: str
    verdict: bool
    context: MarketContext
    messages: tuple[ChatMessage, ...]

    @property
    def prompt_text(self) -> str:
        """The messages as readable text, exactly as sent."""
        return render_prompt(self.messages)

    @property
    def cache_key(self) -> CacheKey:
        """The answer-cache key of this request."""
        normalised = " ".join(self.question.lower().split())
        return (self.thread, self.context.as_of, normalised, self.model, self.verdict)


def thread_of(symbol: str | None) -> str:
    """Thread key of a symbol (the general thread for ``None`` / empty)."""
    return symbol or GENERAL_THREAD


class AiSession:
    """The analyst behind the chat pane and ``perpscope ask``.

    Args:
        config: The ``[ai]`` section.
        store: Chat persistence, or ``None`` to keep threads in memory only.
        host: Override of the configured Ollama host.
        clock: Wall clock in ms UTC for in-memory messages.
        on_verdict: Receives ``(symbol, decision, target_price)`` of each verdict (the TUI
            passes ``MarketService.record_verdict`` so verdicts are tracked like signals).
    """

    def __init__(
        self,
        config: AiConfig,
        *,
        store: ChatStore | None = None,
        host: str | None = None,
        clock: Callable[[], int] | None = None,
        on_verdict: Callable[[str, str, float | None], object] | None = None,
    ) -> None:
        self.config = config
        self.on_verdict = on_verdict
        """``(symbol, decision, target_price)`` of every stored verdict: the pipeline tracks
        its outcome like any other signal source (``MarketService.record_verdict``)."""
        self.client = OllamaClient(config, host)
        self.model = config.model
        """Model asked by the next request (the pane's model picker sets it)."""
        self.last_request: Request | None = None
        """The most recent request (``ctrl+o`` shows its prompt)."""
        self._store = store
        self._memory: dict[str, list[StoredMessage]] = {}
        self._cache: dict[CacheKey, str] = {}
        self._inflight: asyncio.Task[object] | None = None
        self._clock = clock or (lambda: int(time.time() * 1000))

    @property
    def host(self) -> str:
        """The Ollama server URL used."""
        return self.client.host

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.close()

    async def models(self) -> list[str]:
        """Models the server has (``/api/tags``).

        Raises:
            AiError: no server, timeout, server error.
        """
        return await self.client.models()

    # -- threads -------------------------------------------------------------------------

    async def load_thread(self, thread: str) -> list[StoredMessage]:
        """Messages of ``thread``, oldest first."""
        if self._store is not None:
            return await self._store.load(thread)
        return list(self._memory.get(thread, ()))

    async def clear_thread(self, thread: str) -> None:
        """Forget ``thread`` (store and memory) and its cached answers."""
        if self._store is not None:
            await self._store.clear(thread)
        self._memory.pop(thread, None)
        self._cache = {k: v for k, v in self._cache.items() if k[0] != thread}

    async def record(self, thread: str, role: str, content: str, model: str = "") -> None:
        """Append a message to ``thread`` (persisted when a store is configured)."""
        if self._store is not None:
            await self._store.append(thread, role, content, model)
            return
        memory = self._memory.setdefault(thread, [])
        memory.append(
            StoredMessage(len(memory) + 1, thread, role, content, model, self._clock())
        )

    # -- requests ------------------------------------------------------------------------

    async def prepare(
        self,
        snapshot: EngineSnapshot,
        symbol: str | None,
        question: str,
        *,
        candles: CandleSeries | None = None,
        micro: MicroView | None = None,
        track: TrackRecord | None = None,
        verdict: bool = False,
    ) -> Request:
        """Build the context and the exact messages for a question (no network).

        Args:
            snapshot: Engine snapshot to ground the answer in.
            symbol: Symbol asked about, ``None`` for the general thread.
            question: The user's text.
            candles: The symbol's base-timeframe candles, optional.
            micro: The symbol's order book / flow / derivatives view, optional.
            track: The track record of emitted signals, optional.
            verdict: Verdict (JSON) mode.
        """
        context = await asyncio.to_thread(
            build_context, snapshot, symbol, self.config, candles, micro, track
        )
        thread = thread_of(context.symbol or None)
        history: list[ChatMessage] = []
        if self.config.history_messages:
            past = await self.load_thread(thread)
            history = [
                ChatMessage(m.role, m.content)
                for m in past
                if m.role in ("user", "assistant")
            ][-self.config.history_messages :]
        messages = build_messages(context, question, history, verdict=verdict)
        request = Request(thread, question, self.model, verdict, context, tuple(messages))
        self.last_request = request
        return request

    def cached(self, request: Request) -> str | None:
        """The cached complete answer to ``request``, if any."""
        return self._cache.get(request.cache_key) if self.config.cache_answers else None

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Stream the model's answer to ``request`` as text chunks; caches a complete answer.

        Cancels the previous request if it is still streaming.

        Raises:
            AiError: see :mod:`ai.client`.
        """
        self._claim()
        hit = self.cached(request)
        if hit is not None:
            yield hit
            return
        parts: list[str] = []
        async for chunk in self.client.chat(
            request.model, request.messages, json_output=request.verdict
        ):
            parts.append(chunk)
            yield chunk
        self._store_cache(request, "".join(parts))

    async def answer(self, request: Request) -> str:
        """The whole answer (see :meth:`stream`)."""
        return "".join([chunk async for chunk in self.stream(request)])

    async def verdict(self, request: Request) -> Verdict:
        """Ask the model for a verdict, validate it and store it with the signal.

        Raises:
            ai.verdict.VerdictError: the output breaks the contract (never stored).
            AiError: see :mod:`ai.client`.
        """
        text = await self.answer(request)
        try:
            result = parse_verdict(text)
        except AiError:
            # A broken answer must not be served again from the cache.
            self._cache.pop(request.cache_key, None)
            raise
        await self.save_verdict(request.context, result, source="model", model=request.model)
        return result

    def rule_summary(self, request: Request) -> str:
        """The rule-based analysis of the request's context (Markdown)."""
        return rule_summary(request.context)

    async def rule_verdict(self, request: Request) -> Verdict:
        """The rule-based verdict of the request's context, stored like a model's."""
        result = rule_verdict(request.context)
        await self.save_verdict(request.context, result, source=RULES_SOURCE, model="")
        return result

    async def save_verdict(
        self, context: MarketContext, verdict: Verdict, *, source: str, model: str
    ) -> None:
        """Store ``verdict`` with the judged signal's ``as_of`` (no-op without a store) and
        hand it to :attr:`on_verdict` for outcome tracking."""
        if context.symbol and self.on_verdict is not None:
            self.on_verdict(context.symbol, verdict.decision, verdict.target_price)
        if self._store is None or not context.symbol:
            return
        state = context.state
        await self._store.add_verdict(
            symbol=context.symbol,
            signal_as_of=context.as_of,
            source=source,
            model=model,
            decision=verdict.decision,
            target_price=verdict.target_price,
            entry_price=state.last_price if state is not None else None,
            payload=verdict.model_dump(),
        )

    # -- internals -----------------------------------------------------------------------

    def _claim(self) -> None:
        """Make the current task the one request in flight, cancelling an older one."""
        task = asyncio.current_task()
        previous = self._inflight
        if previous is not None and previous is not task and not previous.done():
            log.info("cancelling the previous question: a new one was asked")
            previous.cancel()
        self._inflight = task

    def _store_cache(self, request: Request, text: str) -> None:
        if not self.config.cache_answers or not text:
            return
        # A new bar makes every older answer of this thread stale: evict them.
        thread, as_of = request.thread, request.context.as_of
        self._cache = {
            k: v for k, v in self._cache.items() if k[0] != thread or k[1] == as_of
        }
        self._cache[request.cache_key] = text
