"""The context builder and rule-based analyst on a real replayed snapshot (MarketRunner)."""

from __future__ import annotations

from ai.analyst import breadth, rule_summary, rule_verdict
from ai.config import AiConfig
from ai.context import STALE, build_context, estimate_tokens, fmt_num
from engine.models import Direction, EngineSnapshot
from engine.runner import MarketRunner

Replayed = tuple[MarketRunner, EngineSnapshot]


def test_context_carries_the_snapshot_numbers(replayed: Replayed) -> None:
    runner, snapshot = replayed
    # The fresh symbol with the strongest signal that has a trade plan.
    state = max(
        (s for s in snapshot.symbols.values() if not s.stale and s.signal and s.signal.plan),
        key=lambda s: abs(s.signal.score - 50) if s.signal else 0.0,
    )
    signal = state.signal
    assert signal is not None and signal.plan is not None
    symbol = state.symbol
    context = build_context(snapshot, symbol, AiConfig(), runner.candles(symbol, "5m"))
    text = context.text
    assert context.as_of == signal.as_of == 1691065799999
    assert f"last price: {fmt_num(state.last_price)}" in text
    assert f"mark price: {fmt_num(state.mark_price)}" in text
    assert state.funding_rate is not None
    assert f"funding rate: {state.funding_rate * 100:+.4f}%" in text
    assert f"24h change: {state.change_24h_pct:+.2f}%" in text
    assert f"direction: {signal.direction.value}" in text
    assert f"score: {signal.score:.1f}" in text and f"confidence: {signal.confidence:.2f}" in text
    plan = signal.plan
    assert (
        f"entry {fmt_num(plan.entry)}, stop loss {fmt_num(plan.stop_loss)}, take profit 1 "
        f"{fmt_num(plan.take_profit_1)}, take profit 2 {fmt_num(plan.take_profit_2)}, "
        f"R:R {plan.risk_reward:.2f}" in text
    )
    for tf in signal.timeframes:
        if tf.vote is None:
            assert f"{tf.timeframe}: warming up ({tf.bars}/{tf.bars_needed} bars)" in text
            continue
        assert f"{tf.timeframe}: vote {tf.vote:+.2f}" in text
        for vote in tf.indicators:
            assert f"{vote.name} {vote.vote:+.2f} (w {vote.weight:.2f}" in text
        assert f"rsi {fmt_num(tf.values['rsi'])}" in text
    # Breadth counted from the snapshot itself.
    market = breadth(snapshot)
    assert f"24h advancers / decliners: {market.advancers} / {market.decliners}" in text
    fresh = [s for s in snapshot.symbols.values() if not s.stale and s.signal is not None]
    shorts = sum(1 for s in fresh if s.signal and s.signal.direction is Direction.SHORT)
    assert market.shorts == shorts and f"/ {shorts} /" in text
    assert STALE not in text and context.stale_parts == () and context.dropped == ()
    # The engine's market-state summary goes along when the snapshot carries one.
    engine_breadth = getattr(snapshot, "breadth", None)
    assert engine_breadth is not None
    assert f"median 24h change {engine_breadth.median_change_pct:+.2f}%" in text


def test_symbol_whose_data_ended_is_marked_stale(replayed: Replayed) -> None:
    runner, snapshot = replayed
    trx = snapshot.symbols["TRXUSDT"]
    assert trx.stale and trx.signal is not None
    assert trx.signal.as_of == 1691018699999  # 2023-08-02 23:24:59.999, 13 h before the end
    context = build_context(snapshot, "TRXUSDT", AiConfig(), runner.candles("TRXUSDT", "5m"))
    assert set(context.stale_parts) >= {"symbol", "signal", "factors"}
    assert "## symbol TRXUSDT (market data age 13h05m STALE)" in context.text
    assert "## signal (last closed bar 2023-08-02 23:25 UTC, age 13h05m STALE)" in context.text
    # The rule-based analyst refuses to call a direction on stale data.
    verdict = rule_verdict(context)
    assert verdict.decision == "flat" and verdict.target_price is None
    assert any(flag.startswith("stale data") for flag in verdict.risk_flags)
    # Stale symbols are left out of the breadth counts, and the market part says so.
    assert "2 stale and excluded" in context.text


def test_token_budget_drops_lowest_priority_first(replayed: Replayed) -> None:
    runner, snapshot = replayed
    candles = runner.candles("ETHUSDT", "5m")
    full = build_context(snapshot, "ETHUSDT", AiConfig(context_tokens=4000), candles)
    assert full.dropped == () and full.tokens == estimate_tokens(full.text)
    for budget in (900, 600, 300):
        small = build_context(snapshot, "ETHUSDT", AiConfig(context_tokens=budget), candles)
        assert small.tokens <= budget < full.tokens
        assert small.dropped and small.dropped[0] == "candles"
        assert f"omitted to fit the context budget: {', '.join(small.dropped)}" in small.text
        kept = [p.name for p in small.parts]
        assert "symbol" in kept and not set(kept) & set(small.dropped)
    tiny = build_context(snapshot, "ETHUSDT", AiConfig(context_tokens=300), candles)
    assert [p.name for p in tiny.parts] == ["symbol", "signal"]


def test_general_thread_has_market_only(replayed: Replayed) -> None:
    _, snapshot = replayed
    context = build_context(snapshot, None, AiConfig())
    assert context.symbol == "" and context.as_of == 0
    assert [p.name for p in context.parts] == ["market"]
    assert "strongest shorts: ADAUSDT" in context.text
    unknown = build_context(snapshot, "SOLUSDT", AiConfig())
    assert "symbol SOLUSDT: not in the scanned universe" in unknown.text


def test_rule_verdict_follows_a_fresh_signal(replayed: Replayed) -> None:
    runner, snapshot = replayed
    ada = snapshot.symbols["ADAUSDT"]
    assert ada.signal is not None and ada.signal.direction is Direction.SHORT
    assert ada.signal.plan is not None
    context = build_context(snapshot, "ADAUSDT", AiConfig(), runner.candles("ADAUSDT", "5m"))
    verdict = rule_verdict(context)
    assert verdict.decision == "short"
    assert verdict.target_price == ada.signal.plan.take_profit_1
    assert 1 <= len(verdict.rationale) <= 5
    assert verdict.rationale[0].startswith(f"fused signal SHORT: score {ada.signal.score:.1f}")
    assert any(flag.startswith("warming up: 4h") for flag in verdict.risk_flags)
    summary = rule_summary(context)
    assert "**Verdict on ADAUSDT: SHORT**" in summary and "by rules" in summary
    # Deterministic: the same context gives the same text.
    assert rule_summary(context) == summary
