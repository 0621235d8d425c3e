"""The BTC gate: alt signals against BTC's microtrend (its smallest-timeframe vote) are blocked
or downgraded per risk profile; the engine evaluates BTC first and hands its vote to the alts."""

from __future__ import annotations

import pytest
from engine_data import arrays, frame, klines

from engine.config import EngineConfig, SignalConfig, TimeframeConfig
from engine.engine import Engine
from engine.models import Direction, Signal
from engine.signals import combine, evaluate_timeframe
from engine.signals import evaluate as evaluate_signal

CFG = EngineConfig(timeframes=TimeframeConfig(timeframes=["5m"], history_bars={"5m": 600}))


def _first_directional(base: str, direction: Direction, start: int = 300) -> tuple[int, Signal]:
    """The first bar count from ``start`` on where ``base`` alone gives ``direction``."""
    df = frame(base, "5m")
    for end in range(start, len(df), 10):
        sig = evaluate_signal(f"{base}USDT", {"5m": arrays(df.head(end))}, CFG)
        if sig.direction is direction and not sig.blocked:
            return end, sig
    raise AssertionError(f"no {direction} signal for {base}")


def _btc_votes() -> tuple[float, float]:
    """A strongly bearish and a strongly bullish real BTC 5m vote."""
    df = frame("BTC", "5m")
    votes = [
        v
        for end in range(300, len(df), 25)
        if (v := evaluate_timeframe("5m", arrays(df.head(end)), CFG).vote) is not None
    ]
    return min(votes), max(votes)


def _gate(signal: Signal) -> str:
    factor = next(f for f in signal.factors if f.name == "filter.btc_gate")
    return factor.note


@pytest.mark.parametrize("profile", ["conservative", "balanced"])
def test_alt_long_against_falling_btc_is_gated(profile: str) -> None:
    bearish, bullish = _btc_votes()
    assert bearish <= -CFG.signals.btc_gate_vote <= CFG.signals.btc_gate_vote <= bullish
    end, _ = _first_directional("ETC", Direction.LONG)
    data = {"5m": arrays(frame("ETC", "5m").head(end))}

    tfs = [evaluate_timeframe("5m", data["5m"], CFG)]
    against = combine("ETCUSDT", tfs, CFG, profile=profile, btc_microtrend=bearish)
    along = combine("ETCUSDT", tfs, CFG, profile=profile, btc_microtrend=bullish)
    assert "btc_gate" in against.filters
    assert _gate(against).startswith("blocks" if profile == "conservative" else "downgrades")
    assert "btc_gate" not in along.filters and _gate(along).startswith("passed")
    if profile == "conservative":  # every filter blocks there
        assert against.blocked and against.direction is Direction.NEUTRAL
    else:  # balanced downgrades it to a WEAK_LONG
        assert not against.blocked and against.signal_type.value == "WEAK_LONG"
    off = CFG.model_copy(update={"signals": SignalConfig(btc_gate=False)})
    assert "btc_gate" not in combine("ETCUSDT", tfs, off, btc_microtrend=bearish).filters


async def test_engine_hands_btc_vote_to_alts_and_not_to_btc() -> None:
    # BTC's recording starts 157 bars after ETC's: start late enough for both to vote.
    end, _ = _first_directional("ETC", Direction.LONG, start=600)
    etc = frame("ETC", "5m").head(end)
    last = int(etc["open_time"][-1])
    btc = frame("BTC", "5m").filter(frame("BTC", "5m")["open_time"] <= last)
    engine = Engine(CFG, clock=lambda: last + 300_000)
    engine.set_universe(["ETCUSDT", "BTCUSDT"])
    engine.load_history("ETCUSDT", "5m", klines(etc, "ETCUSDT", "5m"))
    engine.load_history("BTCUSDT", "5m", klines(btc, "BTCUSDT", "5m"))
    await engine.recompute()
    btc_vote = evaluate_timeframe("5m", arrays(btc), CFG).vote
    alt = engine.signal("ETCUSDT")
    assert alt is not None and btc_vote is not None
    gate = [f for f in alt.factors if f.name == "filter.btc_gate"]
    assert gate and gate[0].value == pytest.approx(btc_vote)
    btc_signal = engine.signal("BTCUSDT")
    assert btc_signal is not None
    assert not [f for f in btc_signal.factors if f.name == "filter.btc_gate"]
