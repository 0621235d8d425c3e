"""MicroTracker on real events: spread fallback, flashes, momentum, and unusable books."""

from __future__ import annotations

import pytest
from micro_data import BTC_2023, BTC_TICK, CRYPTOFEED_WS, doc_liquidation, events, replay

from engine.micro import MicroConfig, MicroTracker
from feeds.events import BookTicker, MarkPrice, Trade
from feeds.orderbook import OrderBook


def test_spread_falls_back_to_book_ticker_without_a_book() -> None:
    tracker = MicroTracker("SUSHIUSDT")
    empty = tracker.evaluate(None, 0, atr=None, tick_size=None, btc_microtrend=0.0)
    assert empty.spread_bps is None
    checked = 0
    for recv, event in events(CRYPTOFEED_WS):
        if isinstance(event, BookTicker) and event.symbol == "SUSHIUSDT":
            tracker.on_book_ticker(event)
            r = tracker.evaluate(None, recv, atr=None, tick_size=0.001, btc_microtrend=0.0)
            mid = (event.bid_price + event.ask_price) / 2
            assert r.spread_bps == pytest.approx((event.ask_price - event.bid_price) / mid * 1e4)
            assert r.features is None and r.score is None and r.signal is None
            checked += 1
    assert checked > 50


def test_crossed_or_empty_book_gives_no_features() -> None:
    tracker = MicroTracker("BTCUSDT")
    book = OrderBook("BTCUSDT")
    r = tracker.evaluate(book, 1, atr=None, tick_size=BTC_TICK, btc_microtrend=0.0)
    assert r.features is None and r.score is None
    book.reset([(28145.2, 1.0)], [(28145.1, 1.0)], 1)  # crossed
    r = tracker.evaluate(book, 2, atr=None, tick_size=BTC_TICK, btc_microtrend=0.0)
    assert r.features is None and r.score is None


def test_sweep_and_liquidation_flash_once() -> None:
    tracker = MicroTracker("BTCUSDT")
    trades = [e for _, e in events(*BTC_2023) if isinstance(e, Trade)]
    flashes = []
    last = trades[0].trade_time
    for trade in trades[:3000]:
        tracker.on_trade(trade)
        if trade.trade_time - last >= 1000:
            last = trade.trade_time
            r = tracker.evaluate(None, last, atr=None, tick_size=None, btc_microtrend=0.0)
            flashes.append(r.flash)
    assert "sweep" in flashes and "" in flashes
    # Each sweep flashes on one evaluation only.
    r = tracker.evaluate(None, last + 5000, atr=None, tick_size=None, btc_microtrend=0.0)
    r = tracker.evaluate(None, last + 5001, atr=None, tick_size=None, btc_microtrend=0.0)
    assert r.flash == ""
    # Liquidation (wire-format example from the Binance docs, micro_data) wins.
    tracker.on_liquidation(doc_liquidation("SELL", 0))
    r = tracker.evaluate(None, last + 5002, atr=None, tick_size=None, btc_microtrend=0.0)
    assert r.flash == "liquidation"
    assert r.derivatives.liquidations[-1].side == "long"


def test_momentum_matches_reference_return() -> None:
    cfg = MicroConfig()
    tracker = MicroTracker("BTCUSDT", cfg)
    trades: list[Trade] = []
    first_mark: MarkPrice | None = None
    checked = 0
    for _, event, _synced in replay(*BTC_2023, symbol="BTCUSDT"):
        if isinstance(event, MarkPrice):
            tracker.on_mark(event)
            first_mark = first_mark or event
        if not isinstance(event, Trade):
            continue
        tracker.on_trade(event)
        trades.append(event)
        if len(trades) % 700:
            continue
        now = event.trade_time + 50
        # Reference: latest 100 ms step ending at or before now - 30 s, its last price.
        last_step = (now - 30_000) // 100 - 1
        before = [t for t in trades if t.trade_time // 100 <= last_step]
        got = tracker.momentum(now)
        if not before:
            assert got is None or first_mark is not None
            continue
        assert got == pytest.approx(trades[-1].price / before[-1].price - 1)
        checked += 1
    assert checked >= 15
    # Before any trade covers the window, marks are used; with neither, None.
    assert MicroTracker("X").momentum(0) is None
