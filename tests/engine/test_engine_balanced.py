"""Balanced score, signal types, risk filters, risk profiles, trade plan ETA/invalidation and the
factor breakdown, on signals of the recorded symbols (each checked by a direct recomputation)."""

from __future__ import annotations

import math

import pytest
from engine_data import ALL_BASES, aggregate, arrays, frame

from engine.candles import ClosedArrays
from engine.config import EngineConfig
from engine.engine import Engine
from engine.models import Direction, Signal, SignalType
from engine.profiles import ALL_FILTERS, risk_profile
from engine.signals import evaluate
from feeds.events import Kline

CFG = EngineConfig()
PROFILES = ("conservative", "balanced", "aggressive")


def symbol_arrays(base: str, stop: int) -> dict[str, ClosedArrays]:
    five = frame(base, "5m").head(stop)
    out = {"5m": arrays(five.tail(500))}
    for tf in ("15m", "1h", "4h"):
        out[tf] = arrays(aggregate(five, tf, "5m").tail(CFG.timeframes.bars_for(tf)))
    return out


Case = tuple[str, dict[str, ClosedArrays], dict[str, Signal]]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    out: list[Case] = []
    for base in ALL_BASES:
        for stop in (3000, 5200, 7800):
            a = symbol_arrays(base, stop)
            out.append((base, a, {p: evaluate(f"{base}USDT", a, CFG, profile=p) for p in PROFILES}))
    return out


def test_blend_is_the_weighted_mix_of_boosted_momentum_and_reversion(cases: list[Case]) -> None:
    sc = CFG.signals
    for _, _, by_profile in cases:
        sig = by_profile["balanced"]
        ready = [t for t in sig.timeframes if t.vote is not None]
        w = {t.timeframe: sc.timeframe_weights[t.timeframe] for t in ready}
        total = sum(w.values())
        mom = rev = 0.0
        for t in ready:
            s = t.cluster.strength if t.cluster else 0.0
            vote = t.vote or 0.0
            if vote and s and (vote > 0) == (s > 0):
                vote = max(-1.0, min(1.0, vote * (1 + sc.cluster_boost * abs(s))))
            mom += w[t.timeframe] / total * vote
            assert t.reversion is not None
            rev += w[t.timeframe] / total * t.reversion.direction * t.reversion.score / 100
        assert sig.momentum_score == pytest.approx(50 + 50 * mom)
        assert sig.reversion_score == pytest.approx(100 * abs(rev))
        assert sig.balanced_score == pytest.approx(50 + 50 * (0.6 * mom + 0.4 * rev))


def direct_filters(sig: Signal, side: int) -> set[str]:
    """The filters that should fire, recomputed from the entry timeframe's readings."""
    sc = CFG.signals
    entry = next(t for t in sig.timeframes if t.vote is not None)
    v, atr = entry.values, entry.atr
    assert atr is not None
    fired = set()
    if side * (v["close"] - v["ema_21"]) / atr > sc.overextension_atr:
        fired.add("overextension")
    body = abs(v["close"] - v["open"])
    wick = (
        v["high"] - max(v["close"], v["open"])
        if side > 0
        else min(v["close"], v["open"]) - v["low"]
    )
    rejection = body == 0 or wick / body >= sc.trap_wick_body
    if wick > 0 and wick >= sc.trap_wick_atr * atr and rejection:
        fired.add("trap_wick")
    if (v["high"] - v["low"]) / atr >= sc.oversized_atr:
        fired.add("oversized_candle")
    plan_tf = next(t for t in sig.timeframes if t.timeframe == "1h")
    key = "resistance" if side > 0 else "support"
    near = [
        side * (t.values[key] - t.values["close"]) / (t.atr or math.nan)
        for t in {entry.timeframe: entry, "1h": plan_tf}.values()
    ]
    if min(near) <= sc.sr_atr:
        fired.add("into_resistance" if side > 0 else "into_support")
    return fired


def test_filters_types_and_profiles(cases: list[Case]) -> None:
    seen_filters: set[str] = set()
    seen_types: set[SignalType] = set()
    counts = {p: 0 for p in PROFILES}
    for _, _, by_profile in cases:
        for name, sig in by_profile.items():
            rp = risk_profile(CFG.signals, name)
            seen_types.add(sig.signal_type)
            counts[name] += sig.direction is not Direction.NEUTRAL
            raw_side = (
                1
                if sig.score >= rp.long_threshold
                else -1
                if sig.score <= rp.short_threshold
                else 0
            )
            if sig.confidence < rp.min_confidence:
                raw_side = 0
            if raw_side == 0:
                assert sig.filters == () and sig.direction is Direction.NEUTRAL
            else:
                expected = direct_filters(sig, raw_side)
                assert set(sig.filters) - {"min_risk_reward"} == expected
                seen_filters |= expected
                assert sig.blocked == any(f in rp.blocking for f in sig.filters)
                if sig.blocked:
                    assert sig.direction is Direction.NEUTRAL and sig.plan is None
                else:
                    assert sig.direction is (Direction.LONG if raw_side > 0 else Direction.SHORT)
                    if sig.filters:
                        assert sig.signal_type.value.startswith("WEAK_")
            # The type's side always agrees with the direction when there is one.
            if sig.direction is Direction.LONG:
                assert sig.signal_type.value.endswith("_LONG")
            elif sig.direction is Direction.SHORT:
                assert sig.signal_type.value.endswith("_SHORT")
            elif sig.signal_type.value.startswith("REVERSION_"):
                assert sig.reversion_score >= CFG.signals.reversion_threshold
                assert sig.signal_type.value.endswith("_LONG") == (sig.reversion_direction > 0)
    # Looser profile, at least as many actionable signals.
    assert counts["conservative"] <= counts["balanced"] <= counts["aggressive"], counts
    assert counts["conservative"] < counts["aggressive"]
    assert len(seen_filters) >= 4, seen_filters
    assert {SignalType.NEUTRAL} < seen_types and len(seen_types) >= 5, seen_types


def test_plan_eta_and_invalidation(cases: list[Case]) -> None:
    checked = 0
    for _, a, by_profile in cases:
        sig = by_profile["aggressive"]
        if sig.plan is None:
            continue
        plan = sig.plan
        entry_atr = sig.timeframes[0].atr
        assert entry_atr is not None and plan.eta_minutes is not None
        assert plan.eta_minutes == pytest.approx(
            abs(plan.take_profit_1 - plan.entry) / entry_atr * 5
        )
        one_h = a["1h"]
        if sig.direction is Direction.LONG:
            assert plan.invalidation == pytest.approx(float(one_h.low[-20:].min()))
        else:
            assert plan.invalidation == pytest.approx(float(one_h.high[-20:].max()))
        checked += 1
    assert checked > 10


def test_every_signal_carries_its_factor_breakdown(cases: list[Case]) -> None:
    for _, _, by_profile in cases:
        sig = by_profile["balanced"]
        names = {(f.category, f.timeframe, f.name) for f in sig.factors}
        for t in sig.timeframes:
            if t.vote is None:
                assert not any(f.timeframe == t.timeframe for f in sig.factors)
                continue
            for v in t.indicators:
                assert ("indicator", t.timeframe, v.name) in names
            assert ("regime", t.timeframe, "regime") in names
            for r in ("exhaustion", "volume_exhaustion", "excessive_move", "rsi_extreme"):
                assert ("reversion", t.timeframe, r) in names
            assert ("cluster", t.timeframe, "cluster") in names
        for blend in ("momentum", "reversion", "balanced"):
            assert ("blend", "", blend) in names
        filters = [f for f in sig.factors if f.category == "filter"]
        assert sorted(f.name.removeprefix("filter.") for f in filters if f.contribution) == sorted(
            sig.filters
        )
        assert all(f.name.removeprefix("filter.") in ALL_FILTERS for f in filters)


def test_stale_data_filter_uses_the_evaluation_time() -> None:
    a = symbol_arrays("BTC", 7800)
    sig = evaluate("BTCUSDT", a, CFG, profile="aggressive")
    if sig.direction is Direction.NEUTRAL:
        a = symbol_arrays("BTC", 5200)
        sig = evaluate("BTCUSDT", a, CFG, profile="aggressive")
    assert sig.direction is not Direction.NEUTRAL
    fresh_now = sig.timeframes[0].as_of + 1
    late_now = sig.timeframes[0].as_of + 3 * 300_000
    fresh = evaluate("BTCUSDT", a, CFG, profile="aggressive", now=fresh_now)
    late = evaluate("BTCUSDT", a, CFG, profile="aggressive", now=late_now)
    assert "stale_data" not in fresh.filters and fresh.direction is sig.direction
    assert "stale_data" in late.filters and late.blocked and late.direction is Direction.NEUTRAL


async def test_engine_switches_risk_profile_at_runtime() -> None:
    five = frame("CRV", "5m").head(3000)
    engine = Engine(CFG, clock=lambda: 0)
    engine.set_universe(["CRVUSDT"])
    for t, o, h, lo, c, v in five.iter_rows():
        engine.on_event(
            Kline(
                symbol="CRVUSDT",
                interval="5m",
                open_time=t,
                close_time=t + 299_999,
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                closed=True,
                exchange_time=t + 299_999,
            )
        )
    await engine.recompute()
    first = engine.signal("CRVUSDT")
    assert first is not None and first.risk_profile == "balanced"
    engine.set_risk_profile("conservative")
    assert await engine.recompute() == 1
    switched = engine.signal("CRVUSDT")
    assert switched is not None and switched.risk_profile == "conservative"
    with pytest.raises(ValueError, match="unknown risk profile"):
        engine.set_risk_profile("yolo")
