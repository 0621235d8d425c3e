"""engine.picks: pick lifecycle on real recorded klines and trades, views, totals, sizing.

Every pick is taken on a real bar: entry = the bar's real close, SL/TPs from the engine's
ATR trade plan (``engine.signals.trade_plan`` with TA-Lib's ATR of the real bars). The
expected status comes from a direct walk over the following real bars in the test.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
import talib
from pydantic import ValidationError

from engine.config import SignalConfig
from engine.models import Direction, EngineSnapshot, FeedHealth, SymbolState
from engine.picks import (
    PaperConfig,
    PicksConfig,
    PickTracker,
    new_pick,
    pick_view,
    position_size,
    totals,
)
from engine.signals import trade_plan
from feeds.binance_futures import BinanceFrameDecoder
from feeds.events import Kline, Trade
from storage.picks import Pick, PickStatus
from tests.engine import engine_data

WS_CAPTURE = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-usdm" / "ws"
    / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
)
BAR_MS = 300_000


def _bars(base: str, start: int, count: int) -> list[Kline]:
    df = engine_data.frame(base, "5m").slice(start, count)
    return engine_data.klines(df, f"{base}USDT", "5m")


def _plan_pick(
    bars: list[Kline], i: int, side: Direction, cfg: PicksConfig, signals: SignalConfig,
    pick_id: int,
) -> Pick:
    """A pick on bar ``i``: entry = its close, levels from ATR(14) of bars ≤ i."""
    high = np.array([b.high for b in bars[: i + 1]])
    low = np.array([b.low for b in bars[: i + 1]])
    close = np.array([b.close for b in bars[: i + 1]])
    atr = float(talib.ATR(high, low, close, timeperiod=14)[-1])
    plan = trade_plan(side, bars[i].close, atr, "5m", signals)
    assert plan is not None
    pick = new_pick(
        bars[i].symbol, side, plan.entry, plan.stop_loss, plan.take_profit_1,
        plan.take_profit_2, opened_ms=bars[i].close_time + 1, cfg=cfg,
    )
    return msgspec.structs.replace(pick, id=pick_id)


FRACTION = 0.5
"""Part taken at TP1 (the default ``tp1_fraction``)."""


def _expected(
    pick: Pick, later: list[tuple[float, float, float, float, int, int]]
) -> tuple[str, float | None, int]:
    """Direct walk of the rule over ``(open, high, low, close, start_ms, time_ms)`` bars:
    (final status, realised R, time) — independent of the tracker."""
    s = 1 if pick.side is Direction.LONG else -1

    def r(price: float) -> float:
        return (price - pick.entry) * s / abs(pick.entry - pick.stop_loss)

    part = FRACTION * r(pick.take_profit_1)
    tp1_bar: int | None = None
    assert pick.expires_ms is not None and pick.take_profit_2 is not None
    for o, h, lo, _c, start, at in later:
        if start >= pick.expires_ms:
            if tp1_bar is not None:
                return "TP1", part + (1 - FRACTION) * r(o), pick.expires_ms
            return "EXPIRED", r(o), pick.expires_ms
        up, down = (h, lo) if s > 0 else (-lo, -h)
        if tp1_bar is None:
            stop = s * pick.stop_loss
            if down <= stop:
                return "SL", r(s * min(stop, s * o)), at
            if up >= s * pick.take_profit_1:
                tp1_bar = start
                if up >= s * pick.take_profit_2:
                    return "TP2", part + (1 - FRACTION) * r(pick.take_profit_2), at
            continue
        if start > tp1_bar and down <= s * pick.entry:
            return "TP1", part + (1 - FRACTION) * r(s * min(s * pick.entry, s * o)), at
        if up >= s * pick.take_profit_2:
            return "TP2", part + (1 - FRACTION) * r(pick.take_profit_2), at
    return ("TP1" if tp1_bar is not None else "OPEN"), None, 0


def _kline_bars(bars: list[Kline]) -> list[tuple[float, float, float, float, int, int]]:
    return [(k.open, k.high, k.low, k.close, k.open_time, k.close_time) for k in bars]


def test_picks_on_real_bars_reach_the_status_the_klines_dictate() -> None:
    bars = _bars("BTC", 0, 1200)
    cfg = PicksConfig(expire_hours=3)
    signals = SignalConfig()
    starts = range(20, 900, 22)
    picks = [
        _plan_pick(bars, i, side, cfg, signals, pick_id=n)
        for n, (i, side) in enumerate(
            (i, side) for i in starts for side in (Direction.LONG, Direction.SHORT)
        )
    ]
    tracker = PickTracker(picks)
    by_id: dict[int, list[tuple[PickStatus, int]]] = {p.id: [] for p in picks}
    final: dict[int, Pick] = {}
    for k in bars:
        for change in tracker.on_kline(k):
            by_id[change.pick.id].append((change.pick.status, change.time_ms))
            if change.final:
                final[change.pick.id] = change.pick
    seen: set[str] = set()
    for pick in picks:
        opened_bar = next(j for j, b in enumerate(bars) if b.open_time >= pick.opened_ms)
        status, r, at = _expected(pick, _kline_bars(bars[opened_bar:]))
        seen.add(status)
        if status == "OPEN":
            assert pick.id not in final and not by_id[pick.id]
            continue
        got = final[pick.id]
        assert got.status.value == status, (pick, by_id[pick.id])
        assert got.closed_ms == at
        assert got.realized_r == pytest.approx(r)
        # TP1 first, as its own stored step, whenever the result is TP1 or TP2.
        if status in ("TP1", "TP2"):
            assert by_id[pick.id][0][0] is PickStatus.TP1
    # The real bars exercise every ending (the test is not vacuous).
    assert {"SL", "TP1", "TP2", "EXPIRED"} <= seen, seen
    assert not tracker.picks() or all(p.live for p in tracker.picks())


def test_same_bar_stop_and_target_resolves_as_stop() -> None:
    bars = _bars("ETH", 0, 800)
    # Tight ATR multiples so that one real 5m bar can span the stop and TP1.
    signals = SignalConfig(stop_atr=0.5, tp1_atr=0.5, tp2_atr=1.0)
    cfg = PicksConfig(expire_hours=24)
    found = None
    for i in range(20, 780):
        pick = _plan_pick(bars, i, Direction.LONG, cfg, signals, pick_id=1)
        for k in bars[i + 1:]:
            stop = k.low <= pick.stop_loss
            tp1 = k.high >= pick.take_profit_1
            if stop or tp1:
                if stop and tp1:
                    found = (pick, k)
                break
        if found:
            break
    assert found is not None, "no real ETH 5m bar spans stop and TP1 first"
    pick, both = found
    tracker = PickTracker([pick])
    changes = [c for k in bars if k.open_time <= both.open_time for c in tracker.on_kline(k)]
    assert len(changes) == 1
    change = changes[0]
    assert change.pick.status is PickStatus.SL and change.final
    assert change.time_ms == both.close_time
    assert change.pick.close_price == pick.stop_loss
    assert change.pick.realized_r == pytest.approx(-1.0)
    assert "stop counted first" in change.note
    assert tracker.picks() == []


def _trades(stream: str) -> list[Trade]:
    decoder = BinanceFrameDecoder()
    out: list[Trade] = []
    for line in WS_CAPTURE.read_text().splitlines():
        _, sep, payload = line.partition(": ")
        if sep and f'"{stream}"' in payload:
            _, events = decoder.decode_frame(payload, 0)
            out.extend(e for e in events if isinstance(e, Trade))
    assert out, f"no {stream} frames in {WS_CAPTURE}"
    return out


def test_real_trades_drive_tp1_then_tp2_or_the_break_even_stop() -> None:
    trades = _trades("sushiusdt@aggTrade")
    entry = trades[0].price
    later = trades[1:]
    top = max(t.price for t in later)
    bottom = min(t.price for t in later)
    assert bottom < entry < top
    cfg = PicksConfig()
    tick = 0.001
    specs = [
        # LONG, TP1 one tick up, TP2 four ticks up, stop below every trade.
        (Direction.LONG, round(bottom - 5 * tick, 3), round(entry + tick, 3),
         round(entry + 4 * tick, 3)),
        # LONG, TP1 halfway to the top trade, TP2 at it.
        (Direction.LONG, round(bottom - 5 * tick, 3), round((entry + top) / 2, 3), top),
        # SHORT, TP1 at the lowest trade, stop at the top trade, TP2 beyond every trade.
        (Direction.SHORT, top, bottom, round(bottom - 5 * tick, 3)),
    ]
    picks = [
        msgspec.structs.replace(
            new_pick("SUSHIUSDT", side, entry, sl, tp1, tp2, opened_ms=trades[0].trade_time,
                     cfg=cfg), id=n)
        for n, (side, sl, tp1, tp2) in enumerate(specs, start=1)
    ]
    tracker = PickTracker(picks, tp1_fraction=FRACTION)
    changes = [c for t in later for c in tracker.on_trade(t)]
    as_bars = [(t.price, t.price, t.price, t.price, t.trade_time, t.trade_time) for t in later]
    statuses = []
    for pick in picks:
        status, r, at = _expected(pick, as_bars)
        mine = [c for c in changes if c.pick.id == pick.id]
        assert mine[0].pick.status is PickStatus.TP1 and not mine[0].final
        assert mine[-1].final and mine[-1].pick.status.value == status
        assert mine[-1].time_ms == at
        assert mine[-1].pick.realized_r == pytest.approx(r)
        statuses.append(status)
    # Real trades give both endings after TP1: TP2, and the break-even stop.
    assert statuses == ["TP2", "TP1", "TP1"]
    short_end = [c for c in changes if c.pick.id == 3][-1]
    assert "break-even" in short_end.note and short_end.pick.close_price == entry
    assert tracker.picks() == []
    assert tracker.last_price("SUSHIUSDT") == (later[-1].price, later[-1].trade_time)


def test_a_bar_forming_before_the_pick_counts_with_its_close_only() -> None:
    bars = _bars("BTC", 0, 60)
    # A real bar whose low lies well below its close: a LONG taken mid-bar with the stop
    # inside that earlier range must not be stopped by it.
    k = max(bars, key=lambda b: b.close - b.low)
    assert k.close > k.low
    stop = (k.low + k.close) / 2
    pick = msgspec.structs.replace(
        new_pick("BTCUSDT", Direction.LONG, k.close, stop, k.close + (k.close - stop), None,
                 opened_ms=k.open_time + 60_000, cfg=PicksConfig()), id=7)
    tracker = PickTracker([pick])
    assert tracker.on_kline(k) == []
    assert tracker.picks() == [pick]
    # The same bar taken as opened after the pick stops it.
    later = msgspec.structs.replace(k, open_time=pick.opened_ms,
                                    close_time=pick.opened_ms + BAR_MS - 1, exchange_time=0)
    (change,) = tracker.on_kline(later)
    assert change.pick.status is PickStatus.SL


def test_expire_at_last_price_and_views_follow_the_snapshot() -> None:
    bars = _bars("DOT", 100, 40)
    cfg = PicksConfig(expire_hours=1)
    pick = _plan_pick(bars, 20, Direction.LONG, cfg, SignalConfig(stop_atr=20, tp1_atr=25,
                                                                  tp2_atr=30), pick_id=3)
    tracker = PickTracker([pick])
    for k in bars[21:30]:
        assert tracker.on_kline(k) == []
    last = bars[29]
    assert pick.expires_ms is not None
    assert tracker.expire(pick.expires_ms - 1) == []
    health = FeedHealth(mode="replay", exchange="binanceusdm")
    row = SymbolState(symbol="DOTUSDT", last_price=last.close, change_24h_pct=None,
                      quote_volume_24h=None, funding_rate=None, mark_price=None,
                      next_funding_time=0, signal=None, last_update=last.close_time,
                      age_ms=0, stale=True)
    snapshot = EngineSnapshot(time=last.close_time, version=1, timeframes=("5m",),
                              symbols={"DOTUSDT": row}, health=health)
    (view,) = tracker.views(snapshot, last.close_time)
    assert view.stale and view.price == last.close
    assert view.pnl_pct == pytest.approx((last.close - pick.entry) / pick.entry * 100)
    assert view.to_sl_pct == pytest.approx((last.close - pick.stop_loss) / last.close * 100)
    assert view.open_ms == last.close_time - pick.opened_ms
    (change,) = tracker.expire(pick.expires_ms)
    assert change.pick.status is PickStatus.EXPIRED and change.final
    assert change.pick.close_price == last.close
    assert change.pick.realized_r == pytest.approx(pick.r_multiple(last.close))
    assert tracker.picks() == [] and tracker.views(None, 0) == []


def test_totals_and_ended_pick_view() -> None:
    bars = _bars("BTC", 0, 40)
    entry = bars[30].close
    base = Pick(symbol="BTCUSDT", side=Direction.LONG, entry=entry, stop_loss=bars[30].low,
                take_profit_1=bars[30].high + 1, opened_ms=bars[30].close_time)
    ended = [
        msgspec.structs.replace(base, id=1, status=PickStatus.SL, closed_ms=1, realized_r=-1.0,
                                close_price=base.stop_loss),
        msgspec.structs.replace(base, id=2, status=PickStatus.TP2, closed_ms=2, realized_r=2.5),
        msgspec.structs.replace(base, id=3, status=PickStatus.CLOSED, closed_ms=3,
                                realized_r=0.5),
        msgspec.structs.replace(base, id=4, status=PickStatus.EXPIRED, closed_ms=4),
    ]
    t = totals([*ended, base])
    assert (t.count, t.wins, t.losses) == (3, 2, 1)
    assert t.win_rate == pytest.approx(2 / 3)
    assert t.total_r == pytest.approx(2.0) and t.avg_r == pytest.approx(2.0 / 3)
    assert totals([base]).win_rate is None
    view = pick_view(ended[0], price=123.0, now_ms=10**13, stale=False)
    assert view.price == base.stop_loss and view.pnl_r == -1.0 and view.open_ms == 0


def test_position_size_fixed_fractional_and_capped() -> None:
    k = _bars("BTC", 0, 40)[30]
    entry, stop = k.close, k.low
    cfg = PaperConfig(account_equity=10_000.0, risk_pct=1.0, max_leverage=100.0)
    size = position_size(entry, stop, cfg)
    distance = (entry - stop) / entry
    assert size.risk_quote == pytest.approx(100.0)
    assert size.size_quote == pytest.approx(100.0 / distance)
    assert size.size_base == pytest.approx(size.size_quote / entry)
    assert size.leverage == pytest.approx(size.leverage_needed)
    assert not size.capped
    capped = position_size(entry, stop, msgspec.structs.replace(cfg, max_leverage=1.0))
    assert capped.capped and capped.leverage == pytest.approx(1.0)
    assert capped.size_quote == pytest.approx(10_000.0)
    assert capped.risk_quote == pytest.approx(10_000.0 * distance)
    assert capped.leverage_needed == pytest.approx(size.leverage_needed)
    with pytest.raises(ValueError, match="stop away from the entry"):
        position_size(entry, entry, cfg)
    # new_pick sizes from the paper account when the user gave no size.
    picks_cfg = PicksConfig(account_equity=10_000.0, risk_pct=1.0, max_leverage=100.0)
    pick = new_pick("BTCUSDT", Direction.LONG, entry, stop, entry + 2 * (entry - stop), None,
                    opened_ms=k.close_time, cfg=picks_cfg)
    assert pick.size_quote == pytest.approx(size.size_quote)
    assert pick.risk_pct == pytest.approx(1.0)
    assert pick.expires_ms == k.close_time + 72 * 3_600_000
    assert PicksConfig().paper() is None


def test_picks_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="expire_hours"):
        PicksConfig(expire_hours=0)
    with pytest.raises(ValidationError, match="max_leverage"):
        PicksConfig(max_leverage=0.5)
    with pytest.raises(ValidationError, match="unknown_key"):
        PicksConfig.model_validate({"unknown_key": 1})
