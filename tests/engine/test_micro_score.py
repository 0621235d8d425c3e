"""Micro score, entry conditions, signal gate and scalp plans on a real BTCUSDT session
(hftbacktest capture 2023-04-04 23:58 .. 2023-04-05 00:07 UTC) evaluated every 100 ms."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import talib
from engine_data import frame
from micro_data import BTC_2023, BTC_TICK, replay

from engine.micro import (
    FACTOR_NAMES,
    MicroConfig,
    MicroReading,
    MicroSignalGate,
    MicroTracker,
    micro_plan,
)
from engine.models import Direction, Signal, SignalType
from feeds.events import BookTicker, MarkPrice, Trade

CFG = MicroConfig(long_threshold=58, short_threshold=42, cooldown_s=30, daily_max_signals=3)
"""Lower thresholds than the defaults so the 8.5 min session emits enough signals to hit
the cooldown and the daily maximum (the session crosses 00:00 UTC)."""
DAY = 86_400_000


@pytest.fixture(scope="module")
def session() -> list[MicroReading]:
    tracker = MicroTracker("BTCUSDT", CFG)
    readings: list[MicroReading] = []
    nxt: int | None = None
    for recv, event, synced in replay(*BTC_2023, symbol="BTCUSDT"):
        if isinstance(event, Trade):
            tracker.on_trade(event)
        elif isinstance(event, BookTicker):
            tracker.on_book_ticker(event)
        elif isinstance(event, MarkPrice):
            tracker.on_mark(event)
        if not synced.synced:
            continue
        nxt = recv if nxt is None else nxt
        while recv >= nxt:
            readings.append(
                tracker.evaluate(
                    synced.book, nxt, atr=None, tick_size=BTC_TICK, btc_microtrend=0.0
                )
            )
            nxt += 100
    return readings


def _signals(session: list[MicroReading]) -> list[Signal]:
    return [r.signal for r in session if r.signal is not None]


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def test_score_bounds_and_factor_breakdown(session: list[MicroReading]) -> None:
    assert len(session) > 5000
    lo = hi = 50.0
    with_funding = 0
    for r in session:
        s = r.score
        assert s is not None and r.features is not None and r.flow is not None
        assert 0.0 <= s.score <= 100.0
        lo, hi = min(lo, s.score), max(hi, s.score)
        assert [f.name for f in s.factors] == list(FACTOR_NAMES)
        assert all(f.category == "micro" and -1.0 <= f.value <= 1.0 for f in s.factors)
        assert sum(f.weight for f in s.factors) == pytest.approx(1.0)
        assert s.score == pytest.approx(50.0 + sum(f.contribution for f in s.factors))
        by = {f.name: f for f in s.factors}
        # Readings recomputed from the reading's own inputs (module docstring formulas).
        assert by["liquidity_pressure"].value == pytest.approx(_clip(r.features.imbalance / 0.3))
        buy, sell = r.flow.taker_buy["1m"], r.flow.taker_sell["1m"]
        assert by["orderflow_imbalance"].value == pytest.approx((buy - sell) / (buy + sell))
        rate = r.derivatives.funding_rate
        funding = 0.0 if rate is None else _clip(-(rate - 0.0001) / 0.0005)
        assert by["funding"].value == pytest.approx(funding)
        with_funding += rate is not None
        momentum = r.momentum if r.momentum is not None else 0.0
        assert by["momentum"].value == pytest.approx(_clip(momentum / 0.002))
        assert by["btc_microtrend"].value == 0.0 and by["oi_divergence"].value == 0.0
        expected_dir = 1 if s.score >= 58 else -1 if s.score <= 42 else 0
        assert s.direction == expected_dir
    assert lo < 45 and hi > 60  # the score actually moves on this session
    assert with_funding > 5000


def test_entry_conditions_are_the_documented_ones(session: list[MicroReading]) -> None:
    reasons: Counter[str] = Counter()
    for r in session:
        s, f, flow = r.score, r.features, r.flow
        assert s is not None and f is not None and flow is not None
        lean = s.direction or (1 if s.score > 50 else -1 if s.score < 50 else 0)
        want = []
        if s.direction == 0:
            want.append("score")
        if lean == 0 or lean * f.imbalance < CFG.entry_min_imbalance:
            want.append("imbalance")
        side = "buy" if lean > 0 else "sell"
        if not any(sw.side == side and sw.time >= r.time - 30_000 for sw in flow.sweeps):
            want.append("sweep")
        if f.spread_bps > CFG.max_spread_bps:
            want.append("spread")
        gate = [u for u in s.unmet if u in ("cooldown", "daily_max")]
        assert [u for u in s.unmet if u not in gate] == want
        assert s.entry_ok == (not s.unmet) == (r.signal is not None)
        reasons.update(s.unmet)
    assert {"score", "imbalance", "sweep", "cooldown", "daily_max"} <= set(reasons)


def test_cooldown_and_daily_maximum_are_honoured(session: list[MicroReading]) -> None:
    signals = _signals(session)
    assert len(signals) >= 4
    times = [s.as_of for s in signals]
    assert all(b - a >= 30_000 for a, b in itertools.pairwise(times))
    per_day = Counter(t // DAY for t in times)
    assert max(per_day.values()) == 3 and len(per_day) == 2  # both UTC days signalled
    for r in session:
        assert r.score is not None
        earlier = [t for t in times if t <= r.time]
        if "cooldown" in r.score.unmet:
            assert earlier and r.time - earlier[-1] < 30_000
        if "daily_max" in r.score.unmet:
            assert sum(1 for t in earlier if t // DAY == r.time // DAY) == 3


def test_signal_fields_plan_and_confidence(session: list[MicroReading]) -> None:
    by_time = {r.time: r for r in session}
    for sig in _signals(session):
        r = by_time[sig.as_of]
        assert r.score is not None and r.features is not None
        long = sig.direction is Direction.LONG
        assert sig.signal_type is (SignalType.MICRO_LONG if long else SignalType.MICRO_SHORT)
        assert sig.timeframes == () and sig.symbol == "BTCUSDT"
        assert sig.score == r.score.score and sig.factors == r.score.factors
        # Confidence: agreeing weight share of the non-zero factors x distance from 50.
        side = 1 if long else -1
        voting = [f for f in sig.factors if f.value != 0]
        agree = sum(f.weight for f in voting if f.value * side > 0) / sum(
            f.weight for f in voting
        )
        strength = min(1.0, abs(sig.score - 50) / 25)
        assert sig.confidence == pytest.approx(agree * strength)
        plan = sig.plan
        assert plan is not None and plan.timeframe == ""
        touch = r.features.best_ask if long else r.features.best_bid
        assert plan.entry == pytest.approx(touch)
        prices = (plan.entry, plan.stop_loss, plan.take_profit_1, plan.take_profit_2)
        for p in prices:
            assert abs(p / BTC_TICK - round(p / BTC_TICK)) < 1e-6
        if long:
            assert plan.stop_loss < plan.entry < plan.take_profit_1 < plan.take_profit_2
            assert plan.stop_loss == pytest.approx(
                math.floor(touch * (1 - 0.0025) / BTC_TICK) * BTC_TICK
            )
        else:
            assert plan.stop_loss > plan.entry > plan.take_profit_1 > plan.take_profit_2
        assert plan.risk_reward == pytest.approx(
            abs(plan.take_profit_1 - plan.entry) / abs(plan.entry - plan.stop_loss)
        )


def test_atr_and_short_plans_on_real_prices(session: list[MicroReading]) -> None:
    bars = frame("BTC", "5m").tail(100)
    atr = float(
        talib.ATR(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), 14)[
            -1
        ]
    )
    assert atr > 0
    f = session[-1].features
    assert f is not None
    cfg = MicroConfig(plan_mode="atr")
    short = micro_plan(-1, f.best_bid, cfg, atr=atr, tick_size=BTC_TICK)
    assert short is not None and short.timeframe == "5m" and short.atr == atr
    assert short.stop_loss > short.entry > short.take_profit_1 > short.take_profit_2
    assert short.stop_loss == pytest.approx(
        math.ceil((f.best_bid + atr) / BTC_TICK) * BTC_TICK
    )
    assert short.take_profit_1 == pytest.approx(
        math.ceil((f.best_bid - 1.5 * atr) / BTC_TICK) * BTC_TICK
    )
    # ATR mode falls back to percent while the ATR is unknown.
    fallback = micro_plan(1, f.best_ask, cfg, atr=None, tick_size=BTC_TICK)
    assert fallback is not None and fallback.timeframe == "" and fallback.atr == 0.0
    assert micro_plan(0, f.best_ask, cfg, atr=atr, tick_size=BTC_TICK) is None
    # Distances below one tick collapse onto the entry: no plan.
    tiny = MicroConfig(stop_pct=0.0001, tp1_pct=0.0002, tp2_pct=0.0003)
    assert micro_plan(1, f.best_ask, tiny, atr=None, tick_size=BTC_TICK) is None


def test_gate_is_per_symbol_and_reports_the_active_signal(session: list[MicroReading]) -> None:
    first = next(r for r in session if r.signal is not None)
    assert first.score is not None and first.features is not None
    gate = MicroSignalGate(CFG)
    now = first.time
    sig, _ = gate.offer("BTCUSDT", first.score, first.features, now, atr=None, tick_size=0.1)
    assert sig is not None and gate.active("BTCUSDT", now + 29_999) is sig
    assert gate.active("BTCUSDT", now + 30_000) is None
    blocked, score = gate.offer(
        "BTCUSDT", first.score, first.features, now + 1_000, atr=None, tick_size=0.1
    )
    assert blocked is None and score.unmet == ("cooldown",) and not score.entry_ok
    # Another symbol sharing the gate is not affected by BTCUSDT's cooldown.
    other, _ = gate.offer("ETHUSDT", first.score, first.features, now, atr=None, tick_size=0.1)
    assert other is not None and gate.signals_today("ETHUSDT", now) == 1
