"""The verdict contract: a structured call on one symbol, from a model or the rule-based analyst.

Model output is parsed and validated with pydantic; anything that does not match the contract
raises :class:`VerdictError` and is never shown as a verdict.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ai.client import AiError

MAX_RATIONALE = 5
"""Most rationale bullets a verdict may carry."""


class Verdict(BaseModel):
    """A decision on one symbol with its reasons.

    Attributes:
        decision: ``long``, ``short`` or ``flat``.
        target_price: Target in quote currency, or ``None``.
        rationale: At most 5 short bullets.
        risk_flags: What could make it wrong (stale data, funding, breadth, ...).
        confidence_explained: How sure, and why, in words.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["long", "short", "flat"]
    target_price: float | None = Field(default=None, gt=0)
    rationale: list[str] = Field(min_length=1, max_length=MAX_RATIONALE)
    risk_flags: list[str] = Field(default_factory=list)
    confidence_explained: str = Field(min_length=1)

    @field_validator("decision", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def to_markdown(self, symbol: str, source: str) -> str:
        """The verdict as Markdown for the chat pane (``source``: model name or ``rules``)."""
        target = "none" if self.target_price is None else f"{self.target_price:g}"
        lines = [
            f"**Verdict on {symbol or 'the market'}: {self.decision.upper()}** "
            f"(target {target}; by {source})",
            "",
            *[f"- {item}" for item in self.rationale],
        ]
        if self.risk_flags:
            lines += ["", "Risk flags: " + "; ".join(self.risk_flags)]
        lines += ["", f"Confidence: {self.confidence_explained}"]
        return "\n".join(lines)


class VerdictError(AiError):
    """Model output that is not a valid verdict; the message says what is wrong."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_verdict(text: str) -> Verdict:
    """Parse and validate a model's verdict output.

    Accepts the bare JSON object, optionally inside a Markdown code fence.

    Raises:
        VerdictError: on non-JSON output, a non-object, or fields that break the contract
            (each problem named with its field).
    """
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    if not body:
        raise VerdictError("the model returned an empty verdict")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VerdictError(
            f"the model's verdict is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): {_clip(body)}"
        ) from None
    if not isinstance(data, dict):
        raise VerdictError(f"the model's verdict is not a JSON object: {_clip(body)}")
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise VerdictError(f"the model's verdict breaks the contract: {problems}") from None


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
