"""Derivatives view: mark/premium/funding countdown on recorded markPrice@1s frames;
liquidations and open interest on Binance's documented wire-format examples.

There is no recorded ``forceOrder`` or open-interest data in ../shared. Liquidation and open
interest events below are built from the response examples of the Binance USDⓈ-M API docs
("Liquidation Order Streams": ``{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT",
"S":"SELL",...,"q":"0.014","p":"9910","ap":"9910",...}}``; "Open Interest":
``{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}``), as mirrored in the
public repository qiuham/crypto-api-docs (docs/binance/derivatives/usds-margined-futures/
websocket-market-streams/Liquidation-Order-Streams.md). They are WIRE-FORMAT EXAMPLES, not
market data: further readings are that example with a changed side, time or value, labelled.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from micro_data import BTC_2023, doc_liquidation, events

from engine.micro import DerivativesTracker, MicroConfig
from feeds.events import MarkPrice, OpenInterest, Trade
from feeds.replay.captures import Capture, split_envelope

CFG = MicroConfig()

DOC_OPEN_INTEREST = OpenInterest(symbol="BTCUSDT", open_interest=10659.509, time=1589437530011)
"""Binance docs ``GET /fapi/v1/openInterest`` example."""


def test_premium_and_funding_countdown_on_recorded_mark_prices() -> None:
    raw = {}
    for path in BTC_2023:
        for frame in Capture(path).frames():
            if frame.stream.endswith("@markPrice@1s"):
                data = json.loads(split_envelope(frame.raw)[1])
                raw[data["E"]] = data
    marks = [e for _, e in events(*BTC_2023) if isinstance(e, MarkPrice)]
    assert len(marks) == len(raw) == 514
    tracker = DerivativesTracker(CFG)
    assert tracker.view(0).mark_price is None and tracker.view(0).funding_in_ms is None
    for mark in marks:
        tracker.on_mark(mark)
        now = mark.exchange_time + 400
        view = tracker.view(now)
        ref = raw[mark.exchange_time]
        mark_px, index_px = float(ref["p"]), float(ref["i"])
        assert view.mark_price == mark_px and view.index_price == index_px
        assert view.premium_bps == pytest.approx((mark_px - index_px) / index_px * 1e4)
        assert view.funding_rate == float(ref["r"])
        assert view.next_funding_time == ref["T"]
        assert view.funding_in_ms == max(0, ref["T"] - now)
        assert view.time == mark.exchange_time
    # The session spans the 00:00 UTC funding: next funding moves on to 08:00 afterwards.
    assert {m.next_funding_time for m in marks} == {1680652800000, 1680681600000}
    late = tracker.view(1680681600000 + 5)
    assert late.funding_in_ms == 0  # clipped once the funding time has passed


def test_liquidations_by_side_and_window() -> None:
    tracker = DerivativesTracker(CFG)
    base = 1568014460893
    # Wire-format examples: the docs' SELL example at t, a BUY copy 30 s and a SELL copy
    # 4 min later.
    for side, shift in (("SELL", 0), ("BUY", 30_000), ("SELL", 240_000)):
        assert tracker.on_liquidation(doc_liquidation(side, shift)) is not None
    view = tracker.view(base + 240_000)
    notional = 0.014 * 9910
    assert [(p.side, p.time) for p in view.liquidations] == [
        ("long", base), ("short", base + 30_000), ("long", base + 240_000)
    ]
    assert view.liquidations[0].notional == pytest.approx(notional)
    assert view.liquidation_notional == pytest.approx(
        {
            "1m:long": notional, "1m:short": 0.0,
            "5m:long": 2 * notional, "5m:short": notional,
            "15m:long": 2 * notional, "15m:short": notional,
        }
    )
    # Malformed: unknown side is counted, not stored.
    bad = doc_liquidation("SELL", 1)
    assert tracker.on_liquidation(msgspec.structs.replace(bad, side="HOLD")) is None
    assert tracker.rejected == 1 and len(tracker.view(base).liquidations) == 3


def test_open_interest_change_only_for_covered_windows() -> None:
    tracker = DerivativesTracker(CFG)
    assert tracker.view(0).oi_change == {}
    # Wire-format examples: the docs reading, then one poll a minute (+7 ms jitter) with the
    # value rising 0.1 % per poll.
    t0, oi0 = DOC_OPEN_INTEREST.time, DOC_OPEN_INTEREST.open_interest
    for k in range(7):
        tracker.on_open_interest(
            OpenInterest(
                symbol="BTCUSDT", open_interest=oi0 * (1 + 0.001 * k), time=t0 + k * 60_007
            )
        )
    tracker.on_open_interest(DOC_OPEN_INTEREST)  # an old repeat is ignored
    view = tracker.view(t0 + 6 * 60_007)
    assert view.open_interest == pytest.approx(oi0 * 1.006)
    # 5m: the latest poll at least 4.5 min before the last one is poll 1 (k=6 - 5).
    assert view.oi_change == pytest.approx({"5m": 1.006 / 1.001 - 1})


def test_divergence_with_recorded_prices() -> None:
    cfg = MicroConfig(divergence_window="1m", divergence_min_oi=0.001, divergence_min_price=1e-4)
    trades = [e for _, e in events(*BTC_2023) if isinstance(e, Trade)]
    t0 = trades[0].trade_time
    seen = set()
    for direction in (+1, -1):
        tracker = DerivativesTracker(cfg)
        i = 0
        for minute in range(1, 9):
            now = t0 + minute * 60_000
            while i < len(trades) and trades[i].trade_time <= now:
                tracker.on_price(trades[i].price, trades[i].trade_time)
                i += 1
            # Wire-format example open interest: 1 % per minute up (or down).
            for k in (minute - 1, minute):
                tracker.on_open_interest(
                    OpenInterest(
                        symbol="BTCUSDT",
                        open_interest=10659.509 * (1 + direction * 0.01 * k),
                        time=t0 + k * 60_000,
                    )
                )
            # Reference: last price of each 1 s step, stamped at the step's end.
            steps: dict[int, float] = {}
            for t in trades[:i]:
                steps[t.trade_time // 1000 * 1000 + 999] = t.price
            last_end = max(steps)
            then = [p for end, p in sorted(steps.items()) if end <= last_end - 54_000][-1]
            change = steps[last_end] / then - 1
            want = ""
            if direction > 0 and change <= -1e-4:
                want = "oi_up_price_down"
            if direction < 0 and change >= 1e-4:
                want = "oi_down_price_up"
            assert tracker.view(now).oi_divergence == want, (minute, change)
            seen.add(want)
    assert {"oi_up_price_down", "oi_down_price_up"} <= seen
