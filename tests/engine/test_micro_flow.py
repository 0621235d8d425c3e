"""Taker flow (volumes, CVD, trade rate, sweeps) on real recorded trades."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from micro_data import BTC_2023, CRYPTOFEED_WS, HFT, events

from engine.micro import MicroConfig, TradeFlow
from engine.models import Sweep
from feeds.events import Trade

CFG = MicroConfig()
WINDOWS = {"1m": 60_000, "5m": 300_000, "15m": 900_000}


def _trades(*paths: Path) -> list[Trade]:
    return [e for _, e in events(*paths) if isinstance(e, Trade)]


def _reference(
    trades: list[Trade], now: int, bucket: int = 1000
) -> dict[str, tuple[float, float, int]]:
    """Window sums over the raw trade list with the documented bucket rule."""
    now_start = now - now % bucket
    out: dict[str, tuple[float, float, int]] = {}
    for code, length in WINDOWS.items():
        lowest = now_start - length + bucket
        picked = [t for t in trades if lowest <= t.trade_time - t.trade_time % bucket <= now_start]
        buy = sum(t.price * t.quantity for t in picked if not t.buyer_is_maker)
        sell = sum(t.price * t.quantity for t in picked if t.buyer_is_maker)
        out[code] = (buy, sell, len(picked))
    return out


def _reference_sweeps(trades: list[Trade], cfg: MicroConfig) -> list[tuple[int, str, int, int]]:
    """Bursts of same-side trades within the sweep window of their first trade."""
    out = []
    burst: list[Trade] = []

    def close() -> None:
        if not burst:
            return
        levels = len({t.price for t in burst})
        quote = sum(t.price * t.quantity for t in burst)
        if levels >= cfg.sweep_min_levels or quote >= cfg.sweep_min_quote:
            side = "sell" if burst[0].buyer_is_maker else "buy"
            out.append((burst[-1].trade_time, side, levels, len(burst)))

    for t in trades:
        if burst and (
            t.buyer_is_maker != burst[0].buyer_is_maker
            or t.trade_time - burst[0].trade_time > cfg.sweep_window_ms
        ):
            close()
            burst = []
        burst.append(t)
    close()
    return out


def test_windows_cvd_and_rate_match_reference_on_btc_session() -> None:
    trades = _trades(*BTC_2023)
    assert len(trades) == 12935
    flow = TradeFlow(CFG)
    assert flow.features(trades[0].trade_time) is None  # nothing before the first trade
    checked = 0
    for i, trade in enumerate(trades):
        flow.on_trade(trade)
        if i % 1200 != 1199:
            continue
        for now in (trade.trade_time, trade.trade_time + 700):
            f = flow.features(now)
            assert f is not None and f.time == trade.trade_time
            ref = _reference(trades[: i + 1], now)
            for code in WINDOWS:
                buy, sell, _ = ref[code]
                assert f.taker_buy[code] == pytest.approx(buy, rel=1e-9)
                assert f.taker_sell[code] == pytest.approx(sell, rel=1e-9)
                assert f.cvd[code] == pytest.approx(buy - sell, rel=1e-9, abs=1e-6)
            covered = min(60_000, max(now - trades[0].trade_time, 1000)) / 1000
            assert f.trade_rate == pytest.approx(ref["1m"][2] / covered)
            checked += 1
    assert checked == 20
    total = sum(t.price * t.quantity * (-1 if t.buyer_is_maker else 1) for t in trades)
    assert flow.cvd_total == pytest.approx(total, rel=1e-9)
    final = flow.features(trades[-1].trade_time)
    assert final is not None
    assert final.cvd_series[-1] == pytest.approx(total, rel=1e-9)
    # One point per 5 s step from the first trade's to the last's (gaps filled forward).
    steps = trades[-1].trade_time // 5000 - trades[0].trade_time // 5000 + 1
    assert len(final.cvd_series) == min(steps, CFG.cvd_points) == 103
    # The session is shorter than 15 min, so the 15m window holds every trade.
    assert final.taker_buy["15m"] + final.taker_sell["15m"] == pytest.approx(
        sum(t.price * t.quantity for t in trades), rel=1e-9
    )
    assert flow.late == 0 and flow.rejected == 0


def test_sweeps_match_reference_bursts() -> None:
    trades = _trades(*BTC_2023)
    flow = TradeFlow(CFG)
    got: list[Sweep] = []
    for trade in trades:
        sweep = flow.on_trade(trade)
        if sweep is not None:
            got.append(sweep)
    tail = flow.poll(trades[-1].trade_time + CFG.sweep_window_ms + 1)
    if tail is not None:
        got.append(tail)
    want = _reference_sweeps(trades, CFG)
    assert [(s.time, s.side, s.levels, s.trades) for s in got] == want
    assert len(want) > 50
    assert {s.side for s in got} == {"buy", "sell"}
    for s in got:
        assert s.levels >= CFG.sweep_min_levels or s.notional >= CFG.sweep_min_quote
    # Only the configured number is kept, newest last.
    kept = flow.sweeps(0)
    assert list(kept) == got[-CFG.sweep_keep :]


def test_memory_is_bounded_by_window_over_bucket() -> None:
    trades = _trades(*BTC_2023)
    cfg = MicroConfig(flow_windows=["1m"], cvd_points=10)
    flow = TradeFlow(cfg)
    peak = 0
    for trade in trades:
        flow.on_trade(trade)
        peak = max(peak, flow.bucket_count)
    assert peak <= 60 + 1
    f = flow.features(trades[-1].trade_time)
    assert f is not None and len(f.cvd_series) == 10


def test_agg_trades_of_several_symbols() -> None:
    trades = _trades(CRYPTOFEED_WS)
    by_symbol: dict[str, list[Trade]] = defaultdict(list)
    for t in trades:
        by_symbol[t.symbol].append(t)
    assert len(by_symbol) >= 3
    for symbol, own in by_symbol.items():
        flow = TradeFlow(CFG)
        for t in own:
            flow.on_trade(t)
        now = own[-1].trade_time
        f = flow.features(now)
        assert f is not None, symbol
        ref = _reference(own, now)
        buy, sell, _ = ref["15m"]
        assert f.taker_buy["15m"] == pytest.approx(buy) and f.taker_sell["15m"] == pytest.approx(
            sell
        )


def test_malformed_trade_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    real = _trades(*BTC_2023)[0]
    flow = TradeFlow(CFG)
    bad = msgspec.structs.replace(real, price=math.nan)
    with caplog.at_level(logging.WARNING, logger="engine.micro.flow"):
        assert flow.on_trade(bad) is None
    assert flow.rejected == 1
    assert "BTCUSDT: trade 3535186032 rejected" in caplog.text
    assert flow.features(real.trade_time) is None  # the bad trade did not count


def test_local_clock_behind_exchange_does_not_hide_trades() -> None:
    # 2024 capture: the recorder's clock ran ~1.5 s behind the exchange's trade times.
    trades = _trades(HFT / "btcusdt_20240718.gz")
    flow = TradeFlow(CFG)
    for t in trades:
        flow.on_trade(t)
    behind = flow.features(trades[-1].recv_time)
    ahead = flow.features(trades[-1].trade_time)
    assert trades[-1].recv_time < trades[-1].trade_time - 1000
    assert behind is not None and behind == ahead
