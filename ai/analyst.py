"""Rule-based analyst: a deterministic summary and verdict from the same context inputs.

Used when no model answers (no Ollama, model missing, errors) and offered beside model answers.
It reads only the engine's own numbers: the fused signal, the factor breakdown, the trade plan,
the freshness of the data and the market breadth of the snapshot.

Rules (thresholds are conventional rather than fitted):

* ``flat`` when the data is stale, the signal is NEUTRAL or missing, or confidence < 0.3;
  otherwise the signal's direction, with the plan's take profit 1 as target.
* Risk flags: stale data; funding against the position beyond ±0.05 % per 8 h (crowded side
  pays); R:R below 1.5; breadth against the direction (more decliners than advancers for a
  long, and vice versa); timeframes still warming up; timeframes voting against the signal;
  from the order book, when the symbol has one: imbalance against the position beyond
  ±0.3, a microstructure score leaning the other way (beyond 60 / 40) and a spread wider
  than 10 bps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ai.context import MarketContext, fmt_num
from ai.verdict import MAX_RATIONALE, Verdict
from engine.models import Direction, EngineSnapshot, Signal, SymbolState

MIN_CONFIDENCE = 0.3
"""Below this confidence the analyst stays flat."""
FUNDING_CROWDED = 0.0005
"""|funding rate| per 8 h (fraction) above which the paying side is flagged as crowded."""
MIN_RR = 1.5
"""R:R under which the plan is flagged."""
IMBALANCE_AGAINST = 0.3
"""Book imbalance against the position beyond which it is flagged."""
MICRO_AGAINST = 10.0
"""Microstructure score this far from 50 on the other side is flagged."""
WIDE_SPREAD_BPS = 10.0
"""Spread (bps) above which entries are flagged as costly."""

SOURCE = "rules"
"""Source name stored with rule-based verdicts."""


@dataclass(frozen=True)
class Breadth:
    """Market breadth of a snapshot (stale symbols excluded).

    Attributes:
        advancers: Symbols up over 24 h.
        decliners: Symbols down over 24 h.
        longs: LONG signals.
        shorts: SHORT signals.
    """

    advancers: int
    decliners: int
    longs: int
    shorts: int


def breadth(snapshot: EngineSnapshot) -> Breadth:
    """Advancers/decliners and long/short counts of the fresh symbols in ``snapshot``."""
    fresh = [s for s in snapshot.symbols.values() if not s.stale]
    return Breadth(
        advancers=sum(1 for s in fresh if (s.change_24h_pct or 0.0) > 0),
        decliners=sum(1 for s in fresh if (s.change_24h_pct or 0.0) < 0),
        longs=sum(1 for s in fresh if s.signal and s.signal.direction is Direction.LONG),
        shorts=sum(1 for s in fresh if s.signal and s.signal.direction is Direction.SHORT),
    )


def rule_verdict(context: MarketContext) -> Verdict:
    """The deterministic verdict for the context's symbol (see the module docstring)."""
    state, snapshot = context.state, context.snapshot
    if state is None or snapshot is None or state.signal is None:
        what = context.symbol or "the market"
        return Verdict(
            decision="flat",
            rationale=[f"no signal for {what} in the snapshot"],
            risk_flags=["no data"],
            confidence_explained="No signal to judge, so no position.",
        )
    signal = state.signal
    flags = _risk_flags(context, state, signal, breadth(snapshot))
    stale = bool(context.stale_parts)
    decision: Literal["long", "short", "flat"] = "flat"
    if not stale and signal.direction is not Direction.NEUTRAL and (
        signal.confidence >= MIN_CONFIDENCE
    ):
        decision = "long" if signal.direction is Direction.LONG else "short"
    target = signal.plan.take_profit_1 if signal.plan is not None and decision != "flat" else None
    rationale = _rationale(signal)[:MAX_RATIONALE]
    if stale:
        why = f"Data is stale ({', '.join(context.stale_parts)}), so no call is made on it."
    elif decision == "flat":
        why = (
            f"Signal {signal.direction.value} with score {signal.score:.1f} and confidence "
            f"{signal.confidence:.2f} is not decisive enough for a position."
        )
    else:
        why = (
            f"Confidence {signal.confidence:.2f} reflects how far the timeframes and indicators "
            f"agree; {len(flags)} risk flag(s) noted."
        )
    return Verdict(
        decision=decision,
        target_price=target,
        rationale=rationale,
        risk_flags=flags,
        confidence_explained=why,
    )


def _rationale(signal: Signal) -> list[str]:
    out = [
        f"fused signal {signal.direction.value}: score {signal.score:.1f}, "
        f"confidence {signal.confidence:.2f}"
    ]
    for tf in signal.timeframes:
        if tf.vote is None:
            continue
        strongest = sorted(tf.indicators, key=lambda v: abs(v.vote * v.weight), reverse=True)[:2]
        drivers = ", ".join(f"{v.name} {v.vote:+.2f}" for v in strongest)
        out.append(f"{tf.timeframe} vote {tf.vote:+.2f} ({drivers})")
    plan = signal.plan
    if plan is not None:
        out.insert(
            1,
            f"plan: entry {fmt_num(plan.entry)}, stop {fmt_num(plan.stop_loss)}, "
            f"TP1 {fmt_num(plan.take_profit_1)}, R:R {plan.risk_reward:.2f}",
        )
    return out


def _risk_flags(
    context: MarketContext, state: SymbolState, signal: Signal, market: Breadth
) -> list[str]:
    flags: list[str] = []
    if context.stale_parts:
        flags.append(f"stale data: {', '.join(context.stale_parts)}")
    sign = {Direction.LONG: 1, Direction.SHORT: -1}.get(signal.direction, 0)
    funding = state.funding_rate
    if funding is not None and sign and sign * funding > FUNDING_CROWDED:
        flags.append(
            f"funding {funding * 100:+.4f}% per 8h: the {signal.direction.value} side pays"
        )
    if signal.plan is not None and signal.plan.risk_reward < MIN_RR:
        flags.append(f"R:R {signal.plan.risk_reward:.2f} below {MIN_RR}")
    if sign * (market.advancers - market.decliners) < 0:
        flags.append(
            f"breadth against: {market.advancers} advancers vs {market.decliners} decliners"
        )
    fired = tuple(getattr(signal, "filters", ()) or ())
    if fired:
        flags.append(f"risk filters fired: {', '.join(fired)}")
    warming = [tf.timeframe for tf in signal.timeframes if tf.vote is None]
    if warming:
        flags.append(f"warming up: {' '.join(warming)}")
    against = [
        tf.timeframe for tf in signal.timeframes if tf.vote is not None and sign * tf.vote < 0
    ]
    if against:
        flags.append(f"timeframes against: {' '.join(against)}")
    if signal.confidence < MIN_CONFIDENCE:
        flags.append(f"low confidence {signal.confidence:.2f}")
    if state.imbalance is not None and sign * state.imbalance < -IMBALANCE_AGAINST:
        flags.append(f"order book imbalance {state.imbalance:+.2f} against the position")
    if state.micro_score is not None and sign * (state.micro_score - 50) < -MICRO_AGAINST:
        flags.append(f"microstructure score {state.micro_score:.0f} leans the other way")
    if state.spread_bps is not None and state.spread_bps > WIDE_SPREAD_BPS:
        flags.append(f"wide spread {state.spread_bps:.1f} bps")
    return flags


def rule_summary(context: MarketContext) -> str:
    """A deterministic Markdown summary of the context's symbol and the market."""
    verdict = rule_verdict(context)
    lines = ["**Rule-based analysis** (perpscope's own numbers, no model)", ""]
    state = context.state
    if state is not None:
        lines.append(
            f"{state.symbol}: last {fmt_num(state.last_price)}, 24h "
            + ("n/a" if state.change_24h_pct is None else f"{state.change_24h_pct:+.2f}%")
            + ", funding "
            + ("n/a" if state.funding_rate is None else f"{state.funding_rate * 100:+.4f}%")
        )
        lines.append("")  # Markdown joins single newlines into one paragraph
        if state.book is not None or state.micro_score is not None:
            book = state.book.state if state.book is not None else "none"
            lines.append(
                f"Order book {book}: spread "
                + ("n/a" if state.spread_bps is None else f"{state.spread_bps:.2f} bps")
                + ", imbalance "
                + ("n/a" if state.imbalance is None else f"{state.imbalance:+.2f}")
                + ", micro score "
                + ("n/a" if state.micro_score is None else f"{state.micro_score:.0f}")
            )
            lines.append("")
    if context.snapshot is not None:
        market = breadth(context.snapshot)
        lines.append(
            f"Market: {market.advancers} advancers / {market.decliners} decliners; "
            f"{market.longs} long / {market.shorts} short signals."
        )
    lines += ["", verdict.to_markdown(context.symbol, SOURCE)]
    return "\n".join(lines)
