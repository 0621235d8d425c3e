"""Engine on recorded klines: causality of streamed signals, off-loop recompute, snapshots,
staleness, derivatives fields and universe changes."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import numpy as np
import pytest
from engine_data import aggregate, arrays, as_kline, frame, klines, raw_frame, rows

from engine.candles import ClosedArrays
from engine.config import EngineConfig, IndicatorConfig, TimeframeConfig
from engine.engine import Engine
from engine.models import FeedHealth, Signal
from engine.signals import evaluate
from feeds.events import BookTicker, FeedState, FeedStatus, MarkPrice, Ticker, Trade

HEALTH = FeedHealth(mode="REPLAY", exchange="binanceusdm")

CAUSAL_CFG = EngineConfig(
    timeframes=TimeframeConfig(
        timeframes=["5m", "15m", "1h"],
        history_bars={"5m": 600, "15m": 300, "1h": 200},
        min_bars=60,
    ),
    indicators=IndicatorConfig(ema_periods=[9, 21, 50]),
)


class Clock:
    """Engine clock under test control (ms UTC)."""

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def assert_signals_close(got: Signal | None, want: Signal) -> None:
    """Equal up to float summation order (volume sums of aggregated candles)."""
    assert got is not None
    assert got.direction == want.direction and got.as_of == want.as_of
    assert got.score == pytest.approx(want.score, abs=1e-9)
    assert got.confidence == pytest.approx(want.confidence, abs=1e-9)
    for g, w in zip(got.timeframes, want.timeframes, strict=True):
        assert (g.timeframe, g.bars, g.as_of) == (w.timeframe, w.bars, w.as_of)
        assert (g.vote is None) == (w.vote is None)
        if w.vote is not None:
            assert g.vote == pytest.approx(w.vote, abs=1e-9)
            assert [v.name for v in g.indicators] == [v.name for v in w.indicators]
            for gv, wv in zip(g.indicators, w.indicators, strict=True):
                assert gv.vote == pytest.approx(wv.vote, abs=1e-9), gv.name
    assert (got.plan is None) == (want.plan is None)
    if want.plan is not None and got.plan is not None:
        assert got.plan.entry == want.plan.entry
        assert got.plan.stop_loss == pytest.approx(want.plan.stop_loss, rel=1e-12)


def sliced(
    full: dict[str, ClosedArrays], end_ms: int, cfg: EngineConfig
) -> dict[str, ClosedArrays]:
    """Full-history arrays cut to candles closed by ``end_ms``, last ``bars_for`` of each."""
    out = {}
    for tf, a in full.items():
        length = {"5m": 300_000, "15m": 900_000, "1h": 3_600_000}[tf]
        n = int(np.searchsorted(a.open_time + length, end_ms, side="right"))
        out[tf] = a.window(max(0, n - cfg.timeframes.bars_for(tf)), n)
    return out


@pytest.mark.parametrize("base", ["BTC", "DOGE"])
async def test_streamed_signal_equals_evaluate_on_data_up_to_t(base: str) -> None:
    symbol = f"{base}USDT"
    five = frame(base, "5m")
    five_rows = rows(five)
    full = {
        "5m": arrays(five),
        "15m": arrays(aggregate(five, "15m", "5m")),
        "1h": arrays(aggregate(five, "1h", "5m")),
    }
    clock = Clock()
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe([symbol])
    checkpoints = {600, 1300, 1801}
    pending = 0
    for t, row in enumerate(five_rows[:1802]):
        if t in checkpoints:
            # The next candle is already forming (real data from after t): it must not leak in.
            engine.on_event(as_kline(row, symbol, "5m", closed=False))
            pending += await engine.recompute()
            signal = engine.signal(symbol)
            end = row[0]  # closes of every candle before row t
            assert signal is not None and signal.as_of == end - 1
            want = evaluate(symbol, sliced(full, end, CAUSAL_CFG), CAUSAL_CFG)
            assert_signals_close(signal, want)
            # The engine's own closed candles give exactly its signal (pure, repeatable).
            own = {tf: engine.store.arrays(symbol, tf) for tf in CAUSAL_CFG.timeframes.timeframes}
            assert evaluate(symbol, own, CAUSAL_CFG) == signal
            # 600 5m bars hold < 60 full hours: 1h is still warming up there.
            ready = [s.vote is not None for s in signal.timeframes]
            assert ready == [True, True, t > 800]
        clock.now = row[0] + 300_000
        engine.on_event(as_kline(row, symbol, "5m", closed=True))
        if any(0 < c - t <= 25 for c in checkpoints):
            pending += await engine.recompute()  # per-bar recomputes: cached timeframes reused
    assert pending > 70
    assert engine.store.arrays(symbol, "5m").open_time.shape[0] == 600  # ring wrapped


async def test_recompute_runs_off_the_event_loop_thread() -> None:
    symbol = "ETHUSDT"
    clock = Clock()
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe([symbol])
    five = frame("ETH", "5m").head(800)
    clock.now = int(five["open_time"][-1]) + 300_000
    engine.load_history(symbol, "5m", klines(five, symbol, "5m"))
    assert engine.last_recompute_thread is None
    assert await engine.recompute() == 1
    assert engine.last_recompute_thread is not None
    assert engine.last_recompute_thread != threading.get_ident()
    assert await engine.recompute() == 0  # nothing new closed
    # A recompute cancelled while its batch runs leaves the series pending.
    engine.load_history(symbol, "5m", [])
    task = asyncio.create_task(engine.recompute())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(engine.recompute(), 10) == 1


async def test_recompute_without_offload_runs_in_the_calling_thread_with_the_same_signal() -> None:
    symbol = "ETHUSDT"
    five = frame("ETH", "5m").head(800)
    now = int(five["open_time"][-1]) + 300_000
    signals = []
    for offload in (True, False):
        clock = Clock()
        clock.now = now
        engine = Engine(CAUSAL_CFG, clock=clock, offload=offload)
        engine.set_universe([symbol])
        engine.load_history(symbol, "5m", klines(five, symbol, "5m"))
        assert await engine.recompute() == 1
        assert (engine.last_recompute_thread == threading.get_ident()) is not offload
        signals.append(engine.signal(symbol))
    assert signals[0] is not None and signals[0] == signals[1]


async def test_recompute_batches_many_symbols_and_stays_fast() -> None:
    bases = ["ADA", "BTC", "ETH", "DOGE", "TRX", "XMR", "ZEC", "AAVE"]
    cfg = EngineConfig()  # 5m/15m/1h/4h, 500/500/500/300 bars, min 210
    clock = Clock()
    engine = Engine(cfg, clock=clock, batch_size=3)
    symbols = [f"{b}USDT" for b in bases]
    engine.set_universe(symbols)
    clock.now = int(frame("BTC", "5m")["open_time"][-1]) + 300_000
    for base, symbol in zip(bases, symbols, strict=True):
        five = frame(base, "5m")
        for tf in ("5m", "15m", "1h", "4h"):
            df = five if tf == "5m" else aggregate(five, tf, "5m")
            bars = cfg.timeframes.bars_for(tf)
            engine.load_history(symbol, tf, klines(df.tail(bars), symbol, tf))
    assert await engine.recompute() == len(symbols)
    snap = engine.snapshot(HEALTH)
    assert all(snap.symbols[s].signal is not None for s in symbols)
    # One symbol × 4 timeframes × ~500 bars.
    timings = []
    for _ in range(15):
        engine.load_history("BTCUSDT", "5m", [])  # marks all four timeframes for re-evaluation
        started = time.perf_counter()
        assert await engine.recompute() == 1
        timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    assert median < 25.0  # well under 5 ms on an idle machine; lenient for loaded CI


async def test_stale_symbol_is_flagged_and_its_last_bar_still_evaluated() -> None:
    symbol = "BCHUSDT"
    five_rows = rows(frame("BCH", "5m"))
    clock = Clock(five_rows[0][0])
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe([symbol])
    for row in five_rows[:300]:
        clock.now = row[0] + 300_000
        engine.on_event(as_kline(row, symbol, "5m", closed=True))
    assert await engine.recompute() == 1
    old = engine.signal(symbol)
    assert old is not None
    assert not engine.snapshot(HEALTH).symbols[symbol].stale
    # A last closed candle, then 31 s without data (stale_after_s = 30).
    engine.on_event(as_kline(five_rows[300], symbol, "5m", closed=True))
    clock.now = five_rows[300][0] + 300_000 + 31_000
    assert await engine.recompute() == 1
    new = engine.signal(symbol)
    assert new is not None and new is not old
    assert new.as_of == five_rows[300][0] + 300_000 - 1
    state = engine.snapshot(HEALTH).symbols[symbol]
    assert state.stale and state.signal == new and state.age_ms > 30_000
    # Fresh data again: the row is no longer stale.
    engine.on_event(
        Trade(symbol=symbol, trade_id=1, price=five_rows[301][1], quantity=1.0,
              buyer_is_maker=False, trade_time=five_rows[301][0], exchange_time=five_rows[301][0])
    )
    clock.now += 1_000
    assert not engine.snapshot(HEALTH).symbols[symbol].stale


async def test_snapshot_is_cached_until_something_changes() -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "XMRUSDT"]
    btc = rows(frame("BTC", "5m"))
    clock = Clock(btc[0][0])
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe(symbols)
    first = engine.snapshot(HEALTH)
    # Rows for every universe symbol before any data.
    assert list(first.symbols) == symbols
    rows_before = first.symbols.values()
    assert all(r.signal is None and r.last_price is None and r.stale for r in rows_before)
    assert first.timeframes == ("5m", "15m", "1h")
    assert engine.snapshot(HEALTH) is first
    clock.now += 400  # same second: still the same object
    assert engine.snapshot(HEALTH) is first
    other_health = FeedHealth(mode="LIVE", exchange="binanceusdm", streams=3)
    second = engine.snapshot(other_health)
    assert second is not first and second.version == first.version + 1
    assert engine.snapshot(other_health) is second
    engine.on_event(as_kline(btc[0], "BTCUSDT", "5m", closed=False))
    third = engine.snapshot(other_health)
    assert third.version == second.version + 1
    assert third.symbols["BTCUSDT"].last_price == btc[0][4]
    assert third.symbols["ETHUSDT"] is second.symbols["ETHUSDT"]  # unchanged row reused
    # FeedStatus is the runner's business; events of other symbols are counted and skipped.
    engine.on_event(FeedStatus(state=FeedState.LIVE, connection="market-0"))
    engine.on_event(as_kline(btc[0], "NOTINUSDT", "5m", closed=False))
    assert engine.snapshot(other_health) is third and engine.ignored_events == 1
    clock.now += 1000  # ages move: rebuilt
    assert engine.snapshot(other_health).version == third.version + 1


async def test_derivatives_ticker_and_24h_change() -> None:
    symbol = "ZECUSDT"
    df = frame("ZEC", "5m").head(400)
    zec = rows(df)
    clock = Clock(zec[-1][0] + 300_000)
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe([symbol])
    engine.load_history(symbol, "5m", klines(df, symbol, "5m"))
    row = engine.snapshot(HEALTH).symbols[symbol]
    assert row.change_24h_pct == pytest.approx((zec[-1][4] / zec[-1 - 288][4] - 1) * 100)
    assert row.quote_volume_24h is None and row.funding_rate is None
    assert row.last_price == zec[-1][4]
    # Real funding rate and mark price of ZECUSDT at 2023-07-05 00:00 UTC.
    funding = raw_frame("ZEC", "8h-funding_rate")
    mark = raw_frame("ZEC", "8h-mark")
    t_ms = 1_688_515_200_000
    rate = funding.filter(funding["t"] == t_ms)["open"].item()
    mark_price = mark.filter(mark["t"] == t_ms)["open"].item()
    assert isinstance(rate, float) and isinstance(mark_price, float)
    engine.on_event(MarkPrice(symbol=symbol, mark_price=mark_price, index_price=mark_price,
                              funding_rate=rate, next_funding_time=t_ms + 8 * 3_600_000,
                              exchange_time=t_ms))
    # A 24h ticker built from the same recorded candles (the ticker stream's fields).
    last, ref = zec[-1][4], zec[-1 - 288][4]
    window = df.tail(288)
    high, low = window["high"].to_numpy().max(), window["low"].to_numpy().min()
    engine.on_event(Ticker(symbol=symbol, last_price=last, open_price=ref,
                           high_price=float(high), low_price=float(low),
                           price_change_pct=round((last / ref - 1) * 100, 3),
                           volume=float(window["volume"].sum()),
                           quote_volume=float((window["volume"] * window["close"]).sum()),
                           exchange_time=zec[-1][0] + 300_000))
    engine.on_event(BookTicker(symbol=symbol, update_id=1, bid_price=last - 0.01, bid_qty=1.0,
                               ask_price=last + 0.01, ask_qty=1.0, exchange_time=zec[-1][0]))
    row = engine.snapshot(HEALTH).symbols[symbol]
    assert row.funding_rate == rate and row.mark_price == mark_price
    assert row.next_funding_time == t_ms + 8 * 3_600_000
    assert row.change_24h_pct == round((last / ref - 1) * 100, 3)  # the ticker wins
    assert row.quote_volume_24h == pytest.approx(float((window["volume"] * window["close"]).sum()))
    assert row.last_price == last  # book ticker mid does not override a traded price
    assert engine.last_event_time == zec[-1][0] + 300_000


async def test_set_universe_frees_removed_symbols_and_candles_api() -> None:
    clock = Clock()
    engine = Engine(CAUSAL_CFG, clock=clock)
    engine.set_universe(["BTCUSDT", "ETHUSDT"])
    for base in ("BTC", "ETH"):
        symbol = f"{base}USDT"
        engine.load_history(symbol, "5m", klines(frame(base, "5m").head(100), symbol, "5m"))
    series = engine.candles("BTCUSDT", "5m", 20)
    assert series is not None and len(series.close) == 20
    assert series.close[-1] == rows(frame("BTC", "5m"))[99][4]
    built = engine.candles("BTCUSDT", "1h", 20)
    assert built is not None and len(built.close) >= 6  # 1h built from the 5m history
    assert engine.candles("BTCUSDT", "4h") is None  # timeframe not kept
    engine.set_universe(["ETHUSDT", "ADAUSDT"])
    assert engine.universe == ("ETHUSDT", "ADAUSDT")
    assert "BTCUSDT" not in set(engine.store.symbols())
    assert engine.candles("BTCUSDT", "5m") is None
    empty = engine.candles("ADAUSDT", "5m")
    assert empty is not None and empty.close == ()
    assert list(engine.snapshot(HEALTH).symbols) == ["ETHUSDT", "ADAUSDT"]
    engine.load_history("BTCUSDT", "5m", klines(frame("BTC", "5m").head(5), "BTCUSDT", "5m"))
    assert engine.ignored_history == 1 and "BTCUSDT" not in set(engine.store.symbols())
    assert await asyncio.wait_for(engine.recompute(), 10) == 1  # ETH only
