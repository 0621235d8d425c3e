"""Verdict JSON validation: malformed model output is an error, never a verdict."""

from __future__ import annotations

import json

import pytest

from ai.verdict import Verdict, VerdictError, parse_verdict

GOOD = {
    "decision": "short",
    "target_price": 28886.0,
    "rationale": ["1h supertrend -1.00", "5m vote -0.34"],
    "risk_flags": ["R:R 1.33"],
    "confidence_explained": "two timeframes agree",
}


def test_valid_json_and_fenced_json() -> None:
    verdict = parse_verdict(json.dumps(GOOD))
    assert verdict == Verdict.model_validate(GOOD)
    fenced = parse_verdict("```json\n" + json.dumps({**GOOD, "decision": "LONG"}) + "\n```")
    assert fenced.decision == "long"
    flat = parse_verdict(json.dumps({**GOOD, "decision": "flat", "target_price": None}))
    assert flat.target_price is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty verdict"),
        ("The trend is down, I would short.", "not valid JSON"),
        ('{"decision": "short", "rationale": ["a"]', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**GOOD, "decision": "buy"}), "decision"),
        (json.dumps({**GOOD, "rationale": ["a", "b", "c", "d", "e", "f"]}), "rationale"),
        (json.dumps({**GOOD, "rationale": []}), "rationale"),
        (json.dumps({**GOOD, "target_price": -5}), "target_price"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "confidence_explained"}),
         "confidence_explained"),
        (json.dumps({**GOOD, "leverage": 20}), "leverage"),
    ],
)
def test_malformed_output_is_a_clear_error(text: str, expected: str) -> None:
    with pytest.raises(VerdictError) as info:
        parse_verdict(text)
    assert expected in str(info.value)


def test_markdown_rendering() -> None:
    text = Verdict.model_validate(GOOD).to_markdown("BTCUSDT", "qwen2.5:7b")
    assert "**Verdict on BTCUSDT: SHORT** (target 28886; by qwen2.5:7b)" in text
    assert "- 1h supertrend -1.00" in text and "Risk flags: R:R 1.33" in text
