"""Alert rendering: plain text (toast, desktop), Telegram HTML and webhook JSON.

Every format carries the same content: symbol, side, type, score, confidence, entry / SL / TP1
/ TP2 with their percent distances from the entry, the top reasons, and the time in UTC and
local time. Telegram messages use ``parse_mode=HTML``, whose only special characters are
``<``, ``>`` and ``&`` (Bot API "Formatting options"), escaped with :func:`html.escape`.
"""

from __future__ import annotations

import html
import math

import msgspec

from engine.alerts.rules import Alert

TELEGRAM_MAX_CHARS = 4096
"""Longest Telegram message text (Bot API ``sendMessage``)."""


def fmt_price(value: float) -> str:
    """A price with about 6 significant digits (``30123.4``, ``0.347812``), no exponent."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = 6 - math.floor(math.log10(abs(value))) - 1
    text = f"{value:.{max(0, min(digits, 10))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _level(label: str, value: float | None, pct: float | None) -> str | None:
    if value is None:
        return None
    return f"{label} {fmt_price(value)}" + (f" ({pct:+.2f}%)" if pct is not None else "")


def title(alert: Alert) -> str:
    """One-line headline (``BTCUSDT LONG STRONG_LONG``, ``ETHUSDT PRICE_ABOVE 2000``)."""
    if alert.kind == "price":
        level = fmt_price(alert.level) if alert.level is not None else ""
        return f"{alert.symbol} {alert.type} {level}".strip()
    if alert.kind == "pick":
        return f"{alert.symbol} {alert.side} pick {alert.type}"
    return f"{alert.symbol} {alert.side} {alert.type}"


def body_lines(alert: Alert) -> list[str]:
    """Content lines under the title, plain text."""
    lines: list[str] = []
    if alert.score is not None or alert.confidence is not None:
        parts = []
        if alert.score is not None:
            parts.append(f"score {alert.score:.1f}")
        if alert.confidence is not None:
            parts.append(f"confidence {alert.confidence:.2f}")
        lines.append("  ".join(parts))
    if alert.kind != "signal" and alert.price is not None:
        lines.append(f"price {fmt_price(alert.price)}")
    if alert.entry is not None:
        lines.append(f"entry {fmt_price(alert.entry)}")
    levels = [
        _level("SL", alert.stop_loss, alert.stop_loss_pct),
        _level("TP1", alert.take_profit_1, alert.take_profit_1_pct),
        _level("TP2", alert.take_profit_2, alert.take_profit_2_pct),
    ]
    shown = [x for x in levels if x is not None]
    if shown:
        tail = ""
        if alert.risk_reward is not None:
            tail = f"  R:R {alert.risk_reward:.2f}" + (
                f" ({alert.timeframe})" if alert.timeframe else ""
            )
        lines.append("  ".join(shown) + tail)
    if alert.reasons:
        lines.append("reasons: " + "; ".join(alert.reasons))
    if alert.note:
        lines.append(alert.note)
    lines.append(f"{alert.time_utc} / {alert.time_local}  [{alert.rule}]")
    return lines


def render_text(alert: Alert) -> str:
    """Plain text: the title, then the content lines (toast, desktop, alert log)."""
    return "\n".join([title(alert), *body_lines(alert)])


def render_telegram(alert: Alert) -> str:
    """Telegram ``parse_mode=HTML`` text: bold title, escaped content, cut to 4096 chars."""
    head = f"<b>{html.escape(title(alert), quote=False)}</b>"
    body = [html.escape(line, quote=False) for line in body_lines(alert)]
    text = "\n".join([head, *body])
    if len(text) > TELEGRAM_MAX_CHARS:
        # Drop whole lines from the reasons upward so no entity is cut in half.
        while body and len("\n".join([head, *body])) > TELEGRAM_MAX_CHARS - 2:
            body.pop(-2 if len(body) > 1 else -1)
        text = "\n".join([head, *body, "…"])
    return text


def render_json(alert: Alert) -> bytes:
    """Webhook body: every :class:`Alert` field plus ``title`` and ``text``, as JSON bytes."""
    payload = msgspec.structs.asdict(alert)
    payload["title"] = title(alert)
    payload["text"] = render_text(alert)
    return msgspec.json.encode(payload)
