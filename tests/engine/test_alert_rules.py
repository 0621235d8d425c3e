"""Alert rules on a real replay: appearances, cooldown, daily maximum (UTC days), filters,
price levels on real closes and pick status changes."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import msgspec
import pytest
from engine_data import as_kline, frame, rows

from engine.alerts import (
    Alert,
    AlertEngine,
    AlertRule,
    AlertsConfig,
    PickStatusChange,
    PriceAlert,
    render_telegram,
    render_text,
    top_reasons,
)
from engine.alerts.rules import DAY_MS, MICRO_TYPES, utc_day
from engine.config import EngineConfig, IndicatorConfig, TimeframeConfig
from engine.engine import Engine
from engine.models import Direction, Signal, SignalType
from storage.picks import Pick, PickStatus, PickTransition

BASES = ("BTC", "ETH", "DOGE")
BARS = 1000
"""5m bars replayed per symbol: 2023-07-04 12:35 UTC onward, 4 UTC days."""
CFG = EngineConfig(
    timeframes=TimeframeConfig(
        timeframes=["5m", "15m"], history_bars={"5m": 120, "15m": 60}, min_bars=50
    ),
    indicators=IndicatorConfig(ema_periods=[9, 21, 50]),
)
BERLIN = ZoneInfo("Europe/Berlin")

COOLDOWN = AlertRule(name="cooldown", cooldown_s=3 * 3600, daily_max=0, min_score=55)
DAILY = AlertRule(name="daily", cooldown_s=0, daily_max=2, min_score=55)
BOTH = AlertRule(name="both", cooldown_s=2 * 3600, daily_max=3, min_score=55)
RAW = AlertRule(name="raw", cooldown_s=0, daily_max=0, min_score=55)
STRICT = AlertRule(
    name="strict",
    signal_types=["MOMENTUM_LONG", "MOMENTUM_SHORT", "STRONG_LONG", "STRONG_SHORT"],
    min_score=62,
    min_confidence=0.5,
    cooldown_s=0,
    daily_max=0,
)
WATCH = AlertRule(name="watch", watchlist_only=True, cooldown_s=0, daily_max=0, min_score=55)
ONLY_ETH = AlertRule(name="eth", symbols=["ethusdt"], cooldown_s=0, daily_max=0, min_score=55)
AGGRESSIVE = AlertRule(
    name="aggr", risk_profile="aggressive", cooldown_s=0, daily_max=0, min_score=55
)
RULES = [COOLDOWN, DAILY, BOTH, RAW, STRICT, WATCH, ONLY_ETH, AGGRESSIVE]
WATCHLIST = {"DOGEUSDT"}


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@dataclass(frozen=True)
class Replay:
    """What the replay produced: every (symbol, time, signal) handed to the rules, the alerts
    fired, and the engine's counters."""

    steps: list[tuple[str, int, Signal | None]]
    alerts: list[Alert]
    engine: AlertEngine


async def _replay() -> Replay:
    clock = Clock()
    engine = Engine(CFG, clock=clock)
    symbols = [f"{b}USDT" for b in BASES]
    engine.set_universe(symbols)
    data = {b: rows(frame(b, "5m"))[:BARS] for b in BASES}
    alerts_engine = AlertEngine(AlertsConfig(rules=RULES, top_reasons=3), tz=BERLIN)
    steps: list[tuple[str, int, Signal | None]] = []
    alerts: list[Alert] = []
    for i in range(BARS):
        for base in BASES:
            row = data[base][i]
            clock.now = max(clock.now, row[0] + 300_000)
            engine.on_event(as_kline(row, f"{base}USDT", "5m", closed=True))
        await engine.recompute()
        for symbol in symbols:
            signal = engine.signal(symbol)
            steps.append((symbol, clock.now, signal))
            alerts += alerts_engine.on_signal(
                symbol, signal, clock.now, watchlist=WATCHLIST, risk_profile="balanced"
            )
            # A recompute that changed nothing hands the same signal again: no new alert.
            assert not alerts_engine.on_signal(
                symbol, signal, clock.now, watchlist=WATCHLIST, risk_profile="balanced"
            )
    return Replay(steps, alerts, alerts_engine)


@pytest.fixture(scope="module")
def replay() -> Replay:
    return asyncio.run(_replay())


def _passes(rule: AlertRule, symbol: str, s: Signal | None, profile: str) -> bool:
    """Direct reading of a rule's filters (the documented semantics, independently coded)."""
    if s is None or s.blocked or s.direction is Direction.NEUTRAL:
        return False
    strength_ok = (
        s.score >= rule.min_score if s.direction is Direction.LONG
        else s.score <= 100 - rule.min_score
    )
    return (
        strength_ok
        and s.confidence >= rule.min_confidence
        and (not rule.signal_types or s.signal_type.value in rule.signal_types)
        and (not rule.symbols or symbol in rule.symbols)
        and (not rule.watchlist_only or symbol in WATCHLIST)
        and (rule.risk_profile is None or rule.risk_profile == profile)
    )


def _appearances(replay: Replay, rule: AlertRule) -> list[tuple[str, int, Signal]]:
    """Times a passing signal starts, or changes direction or type while passing."""
    prev: dict[str, tuple[Direction, SignalType] | None] = {}
    out: list[tuple[str, int, Signal]] = []
    for symbol, now, s in replay.steps:
        key = (s.direction, s.signal_type) if s and _passes(rule, symbol, s, "balanced") else None
        if key is not None and key != prev.get(symbol):
            assert s is not None
            out.append((symbol, now, s))
        prev[symbol] = key
    return out


def _expected(replay: Replay, rule: AlertRule) -> list[tuple[str, int]]:
    """Appearances kept by the cooldown (since the last *sent* alert) and the daily maximum."""
    last: dict[str, int] = {}
    per_day: Counter[tuple[str, int]] = Counter()
    kept = []
    for symbol, now, _ in _appearances(replay, rule):
        if symbol in last and now - last[symbol] < rule.cooldown_s * 1000:
            continue
        if rule.daily_max and per_day[symbol, now // 86_400_000] >= rule.daily_max:
            continue
        last[symbol] = now
        per_day[symbol, now // 86_400_000] += 1
        kept.append((symbol, now))
    return kept


def _fired(replay: Replay, rule: AlertRule) -> list[tuple[str, int]]:
    return [(a.symbol, a.time) for a in replay.alerts if a.rule == rule.name]


def test_replay_fires_many_signals(replay: Replay) -> None:
    raw = _fired(replay, RAW)
    assert raw == [(sym, t) for sym, t, _ in _appearances(replay, RAW)]
    assert len(raw) > 100  # a replay that really fires many signals
    assert {sym for sym, _ in raw} == {f"{b}USDT" for b in BASES}
    days = {utc_day(t) for _, t in raw}
    assert len(days) >= 4


@pytest.mark.parametrize("rule", [COOLDOWN, DAILY, BOTH], ids=lambda r: r.name)
def test_cooldown_and_daily_maximum_honoured(replay: Replay, rule: AlertRule) -> None:
    fired = _fired(replay, rule)
    assert fired == _expected(replay, rule)
    # The limits bit: fewer alerts than appearances.
    assert len(fired) < len(_appearances(replay, rule))
    per_day = Counter((sym, t // DAY_MS) for sym, t in fired)
    if rule.daily_max:
        assert max(per_day.values()) == rule.daily_max
    gaps: dict[str, int] = {}
    for sym, t in fired:
        if sym in gaps:
            assert t - gaps[sym] >= rule.cooldown_s * 1000
        gaps[sym] = t


def test_held_back_appearances_are_counted(replay: Replay) -> None:
    stats = replay.engine.stats
    assert stats.fired == len(replay.alerts)
    assert stats.suppressed_cooldown > 0 and stats.suppressed_daily_max > 0
    total_held = sum(
        len(_appearances(replay, r)) - len(_fired(replay, r)) for r in RULES
    )
    assert stats.suppressed_cooldown + stats.suppressed_daily_max == total_held


@pytest.mark.parametrize("rule", [STRICT, WATCH, ONLY_ETH, AGGRESSIVE], ids=lambda r: r.name)
def test_rule_filters(replay: Replay, rule: AlertRule) -> None:
    fired = _fired(replay, rule)
    assert fired == [(sym, t) for sym, t, _ in _appearances(replay, rule)]
    for alert in (a for a in replay.alerts if a.rule == rule.name):
        assert alert.score is not None and alert.confidence is not None
        assert alert.confidence >= rule.min_confidence
        if alert.side == "LONG":
            assert alert.score >= rule.min_score
        else:
            assert alert.score <= 100 - rule.min_score
    if rule is WATCH:
        assert fired and {s for s, _ in fired} == WATCHLIST
    if rule is ONLY_ETH:
        assert fired and {s for s, _ in fired} == {"ETHUSDT"}
    if rule is STRICT:
        assert 0 < len(fired) < len(_fired(replay, RAW))
        assert {a.type for a in replay.alerts if a.rule == "strict"} <= set(STRICT.signal_types)
    if rule is AGGRESSIVE:
        assert fired == []  # the replay ran with the balanced profile active


def test_signal_alert_content(replay: Replay) -> None:
    alert = next(a for a in replay.alerts if a.rule == "raw" and a.entry is not None)
    _, _, signal = next(
        (sym, t, s) for sym, t, s in _appearances(replay, RAW)
        if (sym, t) == (alert.symbol, alert.time)
    )
    plan = signal.plan
    assert plan is not None
    assert (alert.side, alert.type) == (signal.direction.value, signal.signal_type.value)
    assert (alert.entry, alert.stop_loss, alert.take_profit_2) == (
        plan.entry, plan.stop_loss, plan.take_profit_2
    )
    assert alert.take_profit_1_pct == pytest.approx(
        (plan.take_profit_1 - plan.entry) / plan.entry * 100
    )
    assert alert.stop_loss_pct is not None and alert.take_profit_1_pct is not None
    sign = 1 if alert.side == "LONG" else -1
    assert sign * alert.stop_loss_pct < 0 < sign * alert.take_profit_1_pct
    assert alert.reasons == top_reasons(signal, 3) and len(alert.reasons) == 3
    assert alert.time_utc.endswith("UTC") and alert.time_local.endswith(("CEST", "CET"))
    # July in Berlin is UTC+2.
    assert alert.time_utc[11:13] != alert.time_local[11:13]
    text = render_text(alert)
    for part in (alert.symbol, alert.side, alert.type, "score", "confidence", "TP2",
                 alert.time_utc, alert.time_local, alert.reasons[0]):
        assert part in text


def test_top_reasons_agree_with_direction(replay: Replay) -> None:
    checked = 0
    for _, _, s in _appearances(replay, RAW)[:50]:
        reasons = top_reasons(s, 3)
        names = {r.split(":")[0] for r in reasons}
        sign = 1 if s.direction is Direction.LONG else -1
        for f in s.factors:
            if f.category == "indicator" and f"{f.name} {f.timeframe}" in names:
                assert sign * f.contribution > 0
                checked += 1
    assert checked > 50


def test_real_factor_notes_are_escaped_for_telegram(replay: Replay) -> None:
    # Real reversion notes read "RSI > 70 or < 30": raw '<' would break Telegram's HTML.
    alert = next(a for a in replay.alerts if a.rule == "raw" and a.note)
    _, _, signal = next(
        x for x in _appearances(replay, RAW) if (x[0], x[1]) == (alert.symbol, alert.time)
    )
    assert signal.filters and signal.filters[0] in alert.note
    notes = tuple(f"{f.name} {f.timeframe}: {f.note}" for f in signal.factors if "<" in f.note)
    assert notes
    html = render_telegram(msgspec.structs.replace(alert, reasons=notes))
    assert "&lt; 30" in html and "< 30" not in html and "&gt; 70" in html
    assert html.startswith("<b>") and html.count("<") == 2


def test_restore_keeps_daily_maximum_across_restart(replay: Replay) -> None:
    fired = _fired(replay, DAILY)
    sym, t = fired[0]
    day_start = t // DAY_MS * DAY_MS
    same_day = [(DAILY.name, s, x) for s, x in fired if s == sym and x // DAY_MS == t // DAY_MS]
    assert len(same_day) == DAILY.daily_max
    # A fresh engine restored from the log refuses the next appearance that day.
    later = next(
        (s_, now, sig) for s_, now, sig in _appearances(replay, DAILY)
        if s_ == sym and now // DAY_MS == t // DAY_MS and now > same_day[-1][2]
    )
    fresh = AlertEngine(AlertsConfig(rules=[DAILY]))
    fresh.restore(same_day)
    assert fresh.on_signal(sym, later[2], later[1]) == []
    assert fresh.stats.suppressed_daily_max == 1
    unrestored = AlertEngine(AlertsConfig(rules=[DAILY]))
    assert len(unrestored.on_signal(sym, later[2], later[1])) == 1
    assert day_start <= later[1] < day_start + DAY_MS


def test_disabled_rule_and_master_switch(replay: Replay) -> None:
    _, now, signal = _appearances(replay, RAW)[0]
    off_rule = AlertEngine(AlertsConfig(rules=[RAW.model_copy(update={"enabled": False})]))
    off_all = AlertEngine(AlertsConfig(rules=[RAW], enabled=False))
    assert off_rule.on_signal(signal.symbol, signal, now) == []
    assert off_all.on_signal(signal.symbol, signal, now) == []
    on = AlertEngine(AlertsConfig(rules=[RAW]))
    assert len(on.on_signal(signal.symbol, signal, now)) == 1
    # The signal going away and coming back is a new appearance.
    assert on.on_signal(signal.symbol, None, now + 1) == []
    assert len(on.on_signal(signal.symbol, signal, now + 2)) == 1


def test_blocked_signal_never_alerts(replay: Replay) -> None:
    _, now, signal = _appearances(replay, RAW)[0]
    blocked = msgspec.structs.replace(signal, blocked=True, filters=("btc_gate",))
    assert AlertEngine(AlertsConfig(rules=[RAW])).on_signal(signal.symbol, blocked, now) == []


def test_micro_signals_alert_per_new_signal(replay: Replay) -> None:
    # Microstructure signals are discrete: each new as_of is a new appearance.
    _, now, signal = _appearances(replay, RAW)[0]
    micro_type = (
        SignalType.MICRO_LONG if signal.direction is Direction.LONG else SignalType.MICRO_SHORT
    )
    assert micro_type in MICRO_TYPES
    micro = msgspec.structs.replace(signal, signal_type=micro_type)
    rule = AlertRule(name="micro", signal_types=[micro_type.value], cooldown_s=0, daily_max=0,
                     min_score=55)
    engine = AlertEngine(AlertsConfig(rules=[rule]))
    assert len(engine.on_signal(micro.symbol, micro, now)) == 1
    assert engine.on_signal(micro.symbol, micro, now + 1) == []
    newer = msgspec.structs.replace(micro, as_of=micro.as_of + 60_000)
    assert len(engine.on_signal(micro.symbol, newer, now + 60_000)) == 1
    # The technical signal of the same symbol is tracked apart (and this rule ignores it).
    assert engine.on_signal(signal.symbol, signal, now + 60_001) == []


def test_price_levels_on_real_closes() -> None:
    closes = [r[4] for r in rows(frame("ETH", "5m"))[:2000]]
    times = [r[0] + 300_000 for r in rows(frame("ETH", "5m"))[:2000]]
    above = sorted(closes)[len(closes) * 3 // 4]
    below = sorted(closes)[len(closes) // 4]
    repeat = PriceAlert(symbol="ETHUSDT", above=above, below=below, once=False, name="eth-band")
    once = PriceAlert(symbol="ETHUSDT", above=above)
    engine = AlertEngine(AlertsConfig(rules=[], price_alerts=[repeat, once]))
    fired: list[Alert] = []
    for t, c in zip(times, closes, strict=True):
        fired += engine.on_price("ETHUSDT", c, t)
        assert engine.on_price("BTCUSDT", c, t) == []
    # Direct computation: a level fires when the price reaches it from the near side.
    want_above, want_below = [], []
    armed_a = armed_b = True
    for t, c in zip(times, closes, strict=True):
        if c >= above and armed_a:
            want_above.append(t)
        armed_a = c < above
        if c <= below and armed_b:
            want_below.append(t)
        armed_b = c > below
    got_above = [a.time for a in fired if a.rule == "eth-band" and a.type == "PRICE_ABOVE"]
    got_below = [a.time for a in fired if a.rule == "eth-band" and a.type == "PRICE_BELOW"]
    assert got_above == want_above and len(want_above) > 3
    assert got_below == want_below and len(want_below) > 3
    once_fired = [a for a in fired if a.rule == "price"]
    assert [a.time for a in once_fired] == want_above[:1]
    assert once_fired[0].level == above and once_fired[0].price is not None
    assert once_fired[0].price >= above


def test_restore_keeps_fired_once_levels_disarmed() -> None:
    """A restart (a new engine restored with the levels already hit) does not fire a ``once``
    level again, whatever the day or its name; other levels arm as usual."""
    data = rows(frame("ETH", "5m"))[:2000]
    closes = [r[4] for r in data]
    times = [r[0] + 300_000 for r in data]
    above = sorted(closes)[len(closes) * 3 // 4]
    below = sorted(closes)[len(closes) // 4]
    once = PriceAlert(symbol="ETHUSDT", above=above, below=below, name="eth-once")
    repeat = PriceAlert(symbol="ETHUSDT", above=above, once=False, name="eth-repeat")
    config = AlertsConfig(rules=[], price_alerts=[once, repeat])
    first = AlertEngine(config)
    fired: list[Alert] = []
    for t, c in zip(times, closes, strict=True):
        fired += first.on_price("ETHUSDT", c, t)
    once_fired = [a for a in fired if a.rule == "eth-once"]
    assert sorted(a.type for a in once_fired) == ["PRICE_ABOVE", "PRICE_BELOW"]
    last = max(a.time for a in fired)
    hit_above = next(c for c in closes if c >= above)
    hit_below = next(c for c in closes if c <= below)
    assert hit_above != above, "the moved level below must differ from the fired one"
    # What the alert log holds of them: (symbol, side, level).
    levels = sorted(
        {(a.symbol, a.type.removeprefix("PRICE_").lower(), a.level) for a in fired if a.level}
    )
    assert levels == [("ETHUSDT", "above", above), ("ETHUSDT", "below", below)]

    restarted = AlertEngine(config)
    restarted.restore([], price_levels=levels)
    days_later = last + 3 * DAY_MS
    # The once level stays quiet on both sides; the repeating one fires as before a restart.
    again = restarted.on_price("ETHUSDT", hit_above, days_later)
    assert [(a.rule, a.type, a.level, a.time) for a in again] == [
        ("eth-repeat", "PRICE_ABOVE", above, days_later)
    ]
    assert restarted.on_price("ETHUSDT", hit_below, days_later + 1) == []
    # Renamed (rules editor, or config edit) but the same symbol, side and level: still spent.
    renamed = once.model_copy(update={"name": "eth-once-v2"})
    restarted.set_config(AlertsConfig(rules=[], price_alerts=[renamed]))
    assert restarted.on_price("ETHUSDT", hit_above, days_later + 2) == []
    # Another level is not: a once level a tick further fires, once.
    moved = once.model_copy(update={"above": hit_above, "below": None, "name": "moved"})
    restarted.set_config(AlertsConfig(rules=[], price_alerts=[moved]))
    assert [a.rule for a in restarted.on_price("ETHUSDT", hit_above, days_later + 3)] == ["moved"]
    assert restarted.on_price("ETHUSDT", hit_above, days_later + 4) == []

    # Without the restored levels (today's restart) the once level fires again.
    unrestored = AlertEngine(config)
    assert {a.rule for a in unrestored.on_price("ETHUSDT", hit_above, days_later)} == {
        "eth-once",
        "eth-repeat",
    }


def test_pick_status_change_alert() -> None:
    bars = rows(frame("BTC", "5m"))[300:302]
    entry = bars[0][4]
    pick = Pick(
        id=7,
        symbol="BTCUSDT",
        side=Direction.LONG,
        entry=entry,
        stop_loss=entry * 0.99,
        take_profit_1=bars[1][2],  # the next bar's real high
        take_profit_2=entry * 1.02,
        status=PickStatus.TP1,
        opened_ms=bars[0][0] + 300_000,
    )
    transition = PickTransition(
        pick=pick, previous=PickStatus.OPEN, time_ms=bars[1][0] + 300_000,
        price=bars[1][2], note="high reached TP1",
    )
    engine = AlertEngine(AlertsConfig(rules=[]), tz=BERLIN)
    (alert,) = engine.on_pick_status(transition)
    assert (alert.kind, alert.rule, alert.side, alert.type) == ("pick", "picks", "LONG", "TP1")
    assert alert.time == transition.time_ms and alert.as_of == 7
    assert alert.stop_loss_pct == pytest.approx(-1.0)
    assert alert.take_profit_2_pct == pytest.approx(2.0)
    assert "OPEN → TP1" in alert.note and "high reached TP1" in alert.note
    # Same status, not final: nothing; pick alerts off: nothing.
    same = PickStatusChange.from_transition(transition)
    assert engine.on_pick_status(msgspec.structs.replace(same, old_status="TP1")) == []
    off = AlertEngine(AlertsConfig(rules=[], pick_status=False))
    assert off.on_pick_status(transition) == []


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown signal type 'LONGISH'"):
        AlertRule(name="x", signal_types=["longish"])
    with pytest.raises(ValueError, match="repeated: a"):
        AlertsConfig(rules=[AlertRule(name="a"), AlertRule(name="a")])
    with pytest.raises(ValueError, match="set `above` and/or `below`"):
        PriceAlert(symbol="BTCUSDT")
    with pytest.raises(ValueError, match="unknown risk profile"):
        AlertRule(name="x", risk_profile="yolo")
    assert AlertRule(name="x", symbols=["btcusdt"]).symbols == ["BTCUSDT"]
