"""``perpscope ask SYMBOL "question"``: one grounded answer (or verdict) on stdout, then exit.

Builds the same context as the chat pane: the real pipeline runs to completion like ``scan``
(a live backfill, or a ``--replay`` to its end), then the question goes to the configured
Ollama model with that context. With no Ollama (or a model/server error before any text), the
reason goes to stderr and perpscope's rule-based analysis to stdout, exit 0.

Replays keep conversations and verdicts in memory only: verdicts on recorded data must not
mix into the tracked record of live ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ai.analyst import SOURCE as RULES_SOURCE
from ai.client import AiError, OllamaUnavailable
from ai.session import AiSession, Request
from ai.verdict import Verdict, VerdictError
from feeds.replay.loaders import ReplayDataError
from feeds.rest import RestError
from storage.chat import ChatStore
from storage.db import DB_NAME, Database, DatabaseError
from tui.headless import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, build_runner
from tui.settings import Settings


def fallback_notice(error: AiError, session: AiSession) -> str:
    """The stderr line when the model cannot answer and the rule-based analyst does."""
    if isinstance(error, OllamaUnavailable):
        head = (
            f"no Ollama at {session.host}: start it with `ollama serve`, then "
            f"`ollama pull {session.model}`"
        )
    else:
        head = str(error)
    return f"perpscope: {head}; showing the rule-based analysis instead"


def normalise_symbol(text: str, known: set[str]) -> str:
    """``btc`` → ``BTCUSDT`` when that is known; otherwise the upper-cased text."""
    symbol = text.strip().upper()
    if symbol not in known and f"{symbol}USDT" in known:
        return f"{symbol}USDT"
    return symbol


def verdict_json(verdict: Verdict, request: Request, source: str, model: str) -> str:
    """One JSON line: the verdict with its symbol, signal ``as_of``, source and model."""
    record = {
        "symbol": request.context.symbol,
        "signal_as_of": request.context.as_of,
        "source": source,
        "model": model,
        **verdict.model_dump(),
    }
    return json.dumps(record)


def run_ask(settings: Settings, args: argparse.Namespace) -> int:
    """``perpscope ask``: returns the exit status."""
    runner = build_runner(settings, args, default_speed=None)
    try:
        snapshot = asyncio.run(runner.run_to_completion())
    except ReplayDataError as exc:
        print(f"perpscope: replay data error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RestError as exc:
        print(f"perpscope: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    symbol = normalise_symbol(args.symbol, set(snapshot.symbols))
    if symbol not in snapshot.symbols:
        print(
            f"perpscope: unknown symbol {args.symbol!r}: not in the scanned universe "
            f"({len(snapshot.symbols)} symbols, e.g. {', '.join(sorted(snapshot.symbols)[:5])})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    base = snapshot.timeframes[0] if snapshot.timeframes else "5m"
    candles = runner.candles(symbol, base)
    micro = runner.micro(symbol)

    async def ask() -> int:
        db: Database | None = None
        store = None
        if args.replay is None:
            db = Database(settings.data_path() / DB_NAME)
            try:
                await db.open()
                store = ChatStore(db)
            except DatabaseError as exc:
                print(f"perpscope: {exc}; answers are not saved", file=sys.stderr)
                db = None
        session = AiSession(settings.ai, store=store)
        if args.model:
            session.model = args.model
        try:
            request = await session.prepare(
                snapshot, symbol, args.question, candles=candles, micro=micro,
                track=runner.track_record(), verdict=args.verdict,
            )
            if args.show_prompt:
                print(request.prompt_text, file=sys.stderr)
            if args.verdict:
                return await _verdict(session, request)
            return await _answer(session, request)
        finally:
            await session.close()
            if db is not None:
                await db.close()

    return asyncio.run(ask())


async def _answer(session: AiSession, request: Request) -> int:
    written = 0
    parts: list[str] = []
    try:
        async for chunk in session.stream(request):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            parts.append(chunk)
            written += len(chunk)
    except AiError as exc:
        if written:
            # Part of the answer is out already: end the line and say why it stopped.
            sys.stdout.write("\n")
            print(f"perpscope: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        print(fallback_notice(exc, session), file=sys.stderr)
        print(session.rule_summary(request))
        return EXIT_OK
    sys.stdout.write("\n")
    await session.record(request.thread, "user", request.question)
    await session.record(request.thread, "assistant", "".join(parts), request.model)
    return EXIT_OK


async def _verdict(session: AiSession, request: Request) -> int:
    try:
        verdict = await session.verdict(request)
    except VerdictError as exc:
        print(f"perpscope: {exc}; no verdict", file=sys.stderr)
        return EXIT_RUNTIME
    except AiError as exc:
        print(fallback_notice(exc, session), file=sys.stderr)
        rules = await session.rule_verdict(request)
        print(verdict_json(rules, request, RULES_SOURCE, ""))
        return EXIT_OK
    print(verdict_json(verdict, request, "model", request.model))
    return EXIT_OK
