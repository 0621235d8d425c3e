"""Prompts: the system prompt that grounds answers in the context, and the verdict request."""

from __future__ import annotations

from collections.abc import Sequence

from ai.client import ChatMessage
from ai.context import MarketContext

SYSTEM_PROMPT = """\
You are perpscope's market analyst for USDT-margined perpetual futures. Answer ONLY from the \
market context below; it is everything you know about the market. If the context does not \
contain what is needed, say so plainly instead of guessing. Any part marked STALE is older \
than its freshness limit: say that it is stale and do not reason on it as if it were current. \
Quote the numbers you use with their units. Be brief and concrete: short Markdown, bullet \
points welcome. No hype, no certainty about the future, no personal financial advice; \
describe what the signals and levels say and what would invalidate them.
"""

VERDICT_INSTRUCTIONS = """\
Give a verdict on {symbol} as ONE JSON object and nothing else, with exactly these keys:
{{"decision": "long" | "short" | "flat",
 "target_price": number or null,
 "rationale": [up to 5 short strings, each citing numbers from the context],
 "risk_flags": [short strings: stale data, funding, weak confidence, breadth against, ...],
 "confidence_explained": "one or two sentences on how sure and why"}}
Choose "flat" when the data is STALE, conflicting or missing. target_price must be a price \
from the context's trade plan or null.
"""


def system_message(context: MarketContext) -> ChatMessage:
    """The system message: instructions followed by the context text."""
    return ChatMessage("system", SYSTEM_PROMPT + "\n" + context.text)


def build_messages(
    context: MarketContext,
    question: str,
    history: Sequence[ChatMessage] = (),
    *,
    verdict: bool = False,
) -> list[ChatMessage]:
    """The full message list sent for one question.

    Args:
        context: The grounding context (goes into the system message).
        question: The user's question (ignored text is kept for verdict mode as a hint).
        history: Earlier user/assistant messages of the thread, oldest first.
        verdict: Ask for the JSON verdict instead of a free answer.

    Returns:
        System message, history, then the user message.
    """
    messages = [system_message(context), *history]
    if verdict:
        text = VERDICT_INSTRUCTIONS.format(symbol=context.symbol or "the market")
        if question.strip():
            text += f"\nUser note: {question.strip()}"
        messages.append(ChatMessage("user", text))
    else:
        messages.append(ChatMessage("user", question))
    return messages


def render_prompt(messages: Sequence[ChatMessage]) -> str:
    """The messages as readable text, exactly as sent (for ``ctrl+o`` and ``--show-prompt``)."""
    return "\n\n".join(f"--- {m.role} ---\n{m.content}" for m in messages)
