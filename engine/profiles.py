"""Risk profiles: the thresholds a signal must pass and which risk filters block it.

``balanced`` takes its score and confidence thresholds from :class:`~engine.config.SignalConfig`
(so the configured ``long_threshold`` / ``short_threshold`` / ``min_confidence`` keep their
meaning); ``conservative`` and ``aggressive`` tighten or loosen them. A filter in ``blocking``
forces the signal NEUTRAL; any other fired filter only downgrades it to ``WEAK_*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import RISK_PROFILE_NAMES, SignalConfig

ALL_FILTERS = (
    "overextension",
    "trap_wick",
    "oversized_candle",
    "into_resistance",
    "into_support",
    "min_risk_reward",
    "stale_data",
    "btc_gate",
)
"""Every risk filter name, in evaluation order."""


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """Thresholds of one risk profile.

    Attributes:
        name: ``conservative``, ``balanced`` or ``aggressive``.
        long_threshold: Score (0-100) at or above which a signal may be LONG.
        short_threshold: Score at or below which a signal may be SHORT.
        min_confidence: Confidence (0-1) needed for LONG/SHORT.
        min_risk_reward: Smallest acceptable R:R of the plan.
        blocking: Filters that block (force NEUTRAL); the others downgrade.
    """

    name: str
    long_threshold: float
    short_threshold: float
    min_confidence: float
    min_risk_reward: float
    blocking: frozenset[str]


def risk_profile(cfg: SignalConfig, name: str | None = None) -> RiskProfile:
    """The risk profile ``name`` (default: ``cfg.risk_profile``) resolved against ``cfg``.

    Raises:
        ValueError: if ``name`` is not one of :data:`engine.config.RISK_PROFILE_NAMES`.
    """
    name = name or cfg.risk_profile
    if name == "balanced":
        return RiskProfile(
            name=name,
            long_threshold=cfg.long_threshold,
            short_threshold=cfg.short_threshold,
            min_confidence=cfg.min_confidence,
            min_risk_reward=1.0,
            blocking=frozenset({"overextension", "stale_data", "min_risk_reward"}),
        )
    if name == "conservative":
        return RiskProfile(
            name=name,
            long_threshold=max(cfg.long_threshold, 65.0),
            short_threshold=min(cfg.short_threshold, 35.0),
            min_confidence=max(cfg.min_confidence, 0.45),
            min_risk_reward=1.3,
            blocking=frozenset(ALL_FILTERS),
        )
    if name == "aggressive":
        return RiskProfile(
            name=name,
            long_threshold=min(cfg.long_threshold, 55.0),
            short_threshold=max(cfg.short_threshold, 45.0),
            min_confidence=min(cfg.min_confidence, 0.2),
            min_risk_reward=0.8,
            blocking=frozenset({"stale_data"}),
        )
    raise ValueError(f"unknown risk profile {name!r}; allowed: {', '.join(RISK_PROFILE_NAMES)}")
