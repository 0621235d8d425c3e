"""Signal invariants on the 55 recorded symbols, vote formulas, fusion and trade plans."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from engine_data import ALL_BASES, aggregate, arrays, frame

from engine.candles import ClosedArrays
from engine.config import EngineConfig, SignalConfig, TimeframeConfig
from engine.indicators import compute_indicators
from engine.models import Direction, IndicatorVote, Signal, TimeframeSignal
from engine.signals import (
    evaluate,
    evaluate_timeframe,
    fuse,
    timeframe_signal,
    trade_plan,
)

CFG = EngineConfig()


def symbol_arrays(base: str, stop: int | None = None) -> dict[str, ClosedArrays]:
    """5m/15m/1h/4h closed candles of a recorded symbol (15m/1h/4h aggregated from 5m),
    cut after 5m row ``stop`` and limited to each timeframe's history length."""
    five = frame(base, "5m")
    if stop is not None:
        five = five.head(stop)
    out = {"5m": arrays(five.tail(CFG.timeframes.bars_for("5m")))}
    for tf in ("15m", "1h", "4h"):
        out[tf] = arrays(aggregate(five, tf, "5m").tail(CFG.timeframes.bars_for(tf)))
    return out


Evaluated = list[tuple[str, dict[str, ClosedArrays], Signal]]


@pytest.fixture(scope="module")
def signals() -> Evaluated:
    out: Evaluated = []
    for base in ALL_BASES:
        for stop in (4000, 6500, None):
            a = symbol_arrays(base, stop)
            out.append((base, a, evaluate(f"{base}USDT", a, CFG)))
    return out


def test_signal_invariants_on_all_recorded_symbols(signals: Evaluated) -> None:
    directions = {d: 0 for d in Direction}
    for base, a, sig in signals:
        directions[sig.direction] += 1
        assert sig.symbol == f"{base}USDT"
        assert 0.0 <= sig.score <= 100.0
        assert 0.0 <= sig.confidence <= 1.0
        assert [t.timeframe for t in sig.timeframes] == ["5m", "15m", "1h", "4h"]
        four_h = sig.timeframes[3]
        # 30 days of 5m data give < 210 closed 4h candles: warming up, no vote.
        assert len(a["4h"]) < CFG.timeframes.min_bars
        assert four_h.vote is None and four_h.warming_up and four_h.indicators == ()
        assert four_h.bars == len(a["4h"]) and four_h.bars_needed == 210
        for t in sig.timeframes[:3]:
            assert t.vote is not None and -1.0 <= t.vote <= 1.0
            assert math.isclose(sum(v.weight for v in t.indicators), 1.0, rel_tol=1e-12)
            assert all(-1.0 <= v.vote <= 1.0 for v in t.indicators)
            assert t.as_of == int(a[t.timeframe].open_time[-1]) + {
                "5m": 300_000, "15m": 900_000, "1h": 3_600_000
            }[t.timeframe] - 1
        assert sig.as_of == max(t.as_of for t in sig.timeframes)
        plan = sig.plan
        if sig.direction is Direction.NEUTRAL:
            assert plan is None
            continue
        assert plan is not None
        assert sig.confidence >= CFG.signals.min_confidence
        assert plan.entry == a["5m"].close[-1]  # smallest ready timeframe's last close
        assert plan.timeframe == "1h" and plan.atr == sig.timeframes[2].atr
        assert plan.risk_reward == pytest.approx(2.0 / 1.5)
        if sig.direction is Direction.LONG:
            assert sig.score >= 60.0
            assert plan.stop_loss < plan.entry < plan.take_profit_1 < plan.take_profit_2
        else:
            assert sig.score <= 40.0
            assert plan.stop_loss > plan.entry > plan.take_profit_1 > plan.take_profit_2
        assert plan.entry - plan.stop_loss == pytest.approx(
            (1 if sig.direction is Direction.LONG else -1) * 1.5 * plan.atr
        )
    # Real month of data: all three outcomes occur.
    assert min(directions.values()) > 0, directions


def test_score_is_the_weighted_mean_of_ready_timeframes(signals: Evaluated) -> None:
    weights = CFG.signals.timeframe_weights
    for _, _, sig in signals[:40]:
        ready = [t for t in sig.timeframes if t.vote is not None]
        fused = sum(weights[t.timeframe] * (t.vote or 0.0) for t in ready) / sum(
            weights[t.timeframe] for t in ready
        )
        assert sig.score == pytest.approx(50 + 50 * fused, abs=1e-9)
        side = np.sign(fused)
        agreement = sum(
            weights[t.timeframe] * sum(v.weight for v in t.indicators if np.sign(v.vote) == side)
            for t in ready
        ) / sum(weights[t.timeframe] for t in ready)
        coverage = sum(weights[t.timeframe] for t in ready) / sum(
            weights[t.timeframe] for t in sig.timeframes
        )
        assert sig.confidence == pytest.approx(agreement * coverage, abs=1e-12)


def test_warming_up_timeframe_is_excluded() -> None:
    a = symbol_arrays("SAND")
    base = evaluate("SANDUSDT", a, CFG)
    # Different (still warming-up) 4h data, or none at all, leaves the signal unchanged.
    for four_h in (a["4h"].window(0, 50), ClosedArrays.empty()):
        other = evaluate("SANDUSDT", {**a, "4h": four_h}, CFG)
        assert (other.score, other.confidence, other.direction) == (
            base.score, base.confidence, base.direction
        )
    # Making 1h warm up too changes the fused vote to the 5m/15m mean only.
    short = evaluate("SANDUSDT", {**a, "1h": a["1h"].window(-100)}, CFG)
    t5, t15 = short.timeframes[0].vote, short.timeframes[1].vote
    assert short.timeframes[2].vote is None and short.timeframes[2].bars == 100
    assert t5 is not None and t15 is not None
    assert short.score == pytest.approx(50 + 50 * (1.0 * t5 + 1.5 * t15) / 2.5)
    # Plan ATR falls back to the largest ready timeframe (15m) when 1h warms up.
    if short.plan is not None:
        assert short.plan.timeframe == "15m"


def test_evaluate_is_deterministic_and_reads_only_what_it_is_given() -> None:
    a = symbol_arrays("ETH", 5000)
    first = evaluate("ETHUSDT", a, CFG)
    again = evaluate("ETHUSDT", {tf: x.window() for tf, x in a.items()}, CFG)
    assert first == again


def test_indicator_votes_follow_documented_formulas() -> None:
    a = arrays(frame("BTC", "1h").tail(500))
    ind = compute_indicators(a, CFG.indicators)
    t = timeframe_signal("1h", a, ind, CFG)
    votes = {v.name: v for v in t.indicators}
    assert set(votes) == {"ema_stack", "supertrend", "macd", "rsi", "stochrsi", "obv", "adx"}
    rsi = float(ind["rsi"][-1])
    assert votes["rsi"].value == rsi
    assert votes["rsi"].vote == pytest.approx(max(-1, min(1, (rsi - 50) / 20)))
    assert votes["supertrend"].vote == float(ind["supertrend_dir"][-1])
    stack = [a.close[-1]] + [float(ind[f"ema_{p}"][-1]) for p in (9, 21, 50, 200)]
    signs = [np.sign(x - y) for x, y in itertools.pairwise(stack)]
    assert votes["ema_stack"].vote == pytest.approx(np.mean(signs))
    trend = (votes["ema_stack"].vote + votes["supertrend"].vote) / 2
    adx = float(ind["adx"][-1])
    assert votes["adx"].vote == pytest.approx(trend * min(adx / 25, 1))
    w = {v.name: v.weight for v in t.indicators}
    assert w["ema_stack"] == pytest.approx(0.35 / 2) and w["rsi"] == pytest.approx(0.35 / 3)
    assert w["obv"] == pytest.approx(0.15) and w["adx"] == pytest.approx(0.15)
    assert t.vote == pytest.approx(sum(v.vote * v.weight for v in t.indicators))
    assert t.values["rsi"] == rsi and t.atr == float(ind["atr"][-1])


def test_min_bars_boundary() -> None:
    cfg = EngineConfig(timeframes=TimeframeConfig(min_bars=250))
    a = arrays(frame("XTZ", "5m").head(300))
    assert evaluate_timeframe("5m", a.window(0, 249), cfg).vote is None
    assert evaluate_timeframe("5m", a.window(0, 250), cfg).vote is not None
    with pytest.raises(ValueError, match="no indicators"):
        timeframe_signal("5m", a, None, cfg)


def _tf(tf: str, vote: float | None, votes: list[float]) -> TimeframeSignal:
    inds = tuple(
        IndicatorVote(name=f"i{i}", group="trend", value=0.0, vote=v, weight=1 / len(votes))
        for i, v in enumerate(votes)
    )
    return TimeframeSignal(timeframe=tf, vote=vote, bars=300, bars_needed=210, indicators=inds)


def test_fuse_thresholds_and_confidence() -> None:
    cfg = SignalConfig()
    # weights 1, 1.5, 2, 2.5 (total 7); 4h warming up → coverage 4.5/7.
    tfs = [
        _tf("5m", 0.5, [1, 1, -1, 1]),
        _tf("15m", 0.6, [1, 1, 1, 0]),
        _tf("1h", 0.4, [1, -1, 1, 1]),
        TimeframeSignal(timeframe="4h", vote=None, bars=10, bars_needed=210),
    ]
    direction, score, conf = fuse("X", tfs, cfg)
    fused = (0.5 * 1 + 0.6 * 1.5 + 0.4 * 2) / 4.5
    assert score == pytest.approx(50 + 50 * fused)
    assert conf == pytest.approx((1 * 0.75 + 1.5 * 0.75 + 2 * 0.75) / 4.5 * 4.5 / 7)
    assert direction is Direction.LONG
    strict = SignalConfig(min_confidence=0.5)
    assert fuse("X", tfs, strict)[0] is Direction.NEUTRAL
    mirrored = [_tf(t.timeframe, -t.vote, [-v.vote for v in t.indicators]) if t.vote else t
                for t in tfs]
    direction, score2, conf2 = fuse("X", mirrored, cfg)
    assert direction is Direction.SHORT
    assert score2 == pytest.approx(100 - score) and conf2 == pytest.approx(conf)
    assert fuse("X", [tfs[3]], cfg) == (Direction.NEUTRAL, 50.0, 0.0)


def test_trade_plan_long_short_and_neutral() -> None:
    cfg = SignalConfig()
    long = trade_plan(Direction.LONG, 100.0, 2.0, "1h", cfg)
    assert long is not None
    assert (long.stop_loss, long.take_profit_1, long.take_profit_2) == (97.0, 104.0, 107.0)
    assert long.risk_reward == pytest.approx(4 / 3)
    short = trade_plan(Direction.SHORT, 100.0, 2.0, "1h", cfg)
    assert short is not None
    assert (short.stop_loss, short.take_profit_1, short.take_profit_2) == (103.0, 96.0, 93.0)
    assert trade_plan(Direction.NEUTRAL, 100.0, 2.0, "1h", cfg) is None
    assert trade_plan(Direction.LONG, 100.0, float("nan"), "1h", cfg) is None
    assert trade_plan(Direction.LONG, 1.0, 1.0, "1h", cfg) is None  # stop would be below 0
