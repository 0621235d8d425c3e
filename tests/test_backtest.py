"""Backtest: causality against the live path over loopback, workers, report figures."""

from __future__ import annotations

import asyncio

from engine.backtest import (
    BacktestOptions,
    BarReplay,
    build_report,
    max_drawdown,
    profit_factor,
    record_live,
    run_backtest,
)
from engine.config import EngineConfig
from engine.models import Direction, Signal
from engine.runner import MarketRunner, ReplayOptions
from engine.signal_log import MemorySignalSink, SignalLog
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from feeds.replay.klines import load_kline_history
from tests.conftest import KLINES_55

START = 1689811200000
"""2023-07-20 00:00 UTC: 16 days into the set, so 5m/15m/1h are warm (4h is not)."""
BAR = 300_000
# BTC sorts first: the replay server sends one instant's klines in symbol order, so live
# BTC's bar is in before the alts' (the backtest puts BTC first by rule).
CAUSAL_SYMBOLS = ("BTCUSDT", "ETHUSDT", "LTCUSDT")


async def test_backtest_signals_equal_live_replay_signals() -> None:
    """Causality: the signals the live pipeline computes from klines replayed over loopback
    REST + WebSocket are exactly the backtest's, bar for bar, and so are the recorded ones."""
    bars = 36
    until = START + bars * BAR
    cfg = EngineConfig()
    runner = MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=list(CAUSAL_SYMBOLS)),
        feed=FeedConfig(),
        engine_config=cfg,
        data_dir=None,
        replay=ReplayOptions(path=KLINES_55, speed=1500.0, start_ms=START),
    )
    live: dict[tuple[str, int], Signal] = {}
    live_sink = MemorySignalSink()
    live_log = SignalLog(live_sink, source="causality", timeframes=cfg.timeframes.timeframes)

    def keep(signal: Signal) -> None:
        live[(signal.symbol, signal.as_of)] = signal

    async with asyncio.timeout(60):
        await record_live(runner, live_log, until_ms=until, on_signal=keep)

    run = await asyncio.to_thread(
        run_backtest, KLINES_55, cfg,
        BacktestOptions(start_ms=START, end_ms=until, symbols=CAUSAL_SYMBOLS, record_all=True,
                        source="causality"),
    )
    # Every bar of the slice was evaluated live (bars arrive 0.2 s apart), plus the backfill.
    expected = {(s, START - 1 + k * BAR) for s in CAUSAL_SYMBOLS for k in range(bars + 1)}
    assert set(run.all_signals) == expected
    compared = [key for key in live if key in expected]
    assert len(compared) >= 0.9 * len(expected), f"live evaluated only {len(compared)} bars"
    for key in compared:
        assert live[key] == run.all_signals[key], f"signal differs at {key}"
    directional = [k for k in compared if live[k].direction is not Direction.NEUTRAL]
    assert directional, "the slice must hold LONG/SHORT signals to compare"
    # The recorder's emissions: equal wherever the live side saw every bar up to them.
    full_until = max(
        (t for t in range(START - 1, until, BAR)
         if all((s, u) in live for s in CAUSAL_SYMBOLS for u in range(START - 1, t + 1, BAR))),
        default=START - 1,
    )
    live_records = [r for r in live_sink.records if r.as_of <= full_until]
    backtest_records = [s.record for s in run.signals if s.record.as_of <= full_until]
    assert live_records == backtest_records
    assert live_records, "no signal was recorded in the slice"


def test_two_workers_equal_one_process() -> None:
    """The process pool (BTC run in each worker for the BTC gate) changes nothing."""
    symbols = ("BTCUSDT", "ETHUSDT", "ADAUSDT", "DOGEUSDT")
    cfg = EngineConfig()
    options = BacktestOptions(start_ms=START, end_ms=START + 400 * BAR, symbols=symbols)
    single = run_backtest(KLINES_55, cfg, options)
    pooled = run_backtest(
        KLINES_55, cfg,
        BacktestOptions(start_ms=START, end_ms=START + 400 * BAR, symbols=symbols, workers=2),
    )
    key = lambda s: (s.record.as_of, s.record.symbol)  # noqa: E731
    assert sorted(pooled.signals, key=key) == sorted(single.signals, key=key)
    assert single.signals, "the slice must emit signals"
    assert pooled.bars == single.bars == 400 * len(symbols)


def test_bar_replay_feeds_every_bar_in_order_with_btc_first() -> None:
    history = load_kline_history(KLINES_55, ["ETHUSDT", "BTCUSDT"])
    replay = BarReplay(
        history, EngineConfig(), ["ETHUSDT", "BTCUSDT"], start_ms=START, end_ms=START + 6 * BAR
    )
    schedule = replay._schedule()
    assert [t for t, _ in schedule] == [START + k * BAR for k in range(1, 7)]
    assert all([s for s, _ in batch] == ["BTCUSDT", "ETHUSDT"] for _, batch in schedule)
    # Wire values: the first streamed BTC candle is the recorded one.
    btc = history.candles("BTCUSDT", "5m")
    assert btc is not None
    idx = btc.index_of(START)
    assert idx is not None
    assert replay.bars["BTCUSDT"].close[0] == float(btc.close[idx])


def test_report_groups_and_figures_match_the_outcomes() -> None:
    cfg = EngineConfig()
    options = BacktestOptions(
        start_ms=START, end_ms=START + 600 * BAR, symbols=("BTCUSDT", "ETHUSDT", "ADAUSDT"),
    )
    run = run_backtest(KLINES_55, cfg, options)
    report = build_report(run, source="test", outcomes=options.outcomes, folds=2)
    total = report.groups[-1]
    assert (total.signal_type, total.timeframe, total.regime) == ("ALL", "ALL", "ALL")
    assert total.signals == len(run.signals) == sum(g.signals for g in report.groups[:-1])
    resolved = sorted(
        (s.outcome for s in run.signals if s.outcome is not None), key=lambda o: o.exit_time
    )
    assert total.resolved == len(resolved) > 0
    wins = sum(1 for o in resolved if o.win)
    assert total.hit_rate == wins / len(resolved)
    assert total.hit_low <= total.hit_rate <= total.hit_high
    r = [o.realized_r for o in resolved]
    assert abs(total.expectancy_r - sum(r) / len(r)) < 1e-12
    assert total.max_drawdown_r == max_drawdown(r)
    assert sum(b.count for b in report.reliability) in (report.oof_samples, report.resolved)
    assert report.bars == 600 * 3 and report.bars_per_s > 0


def test_drawdown_and_profit_factor() -> None:
    assert max_drawdown([1.0, -2.0, 0.5, -3.0, 4.0]) == 4.5
    assert max_drawdown([1.0, 2.0]) == 0.0
    assert profit_factor([2.0, -1.0, 1.0, -1.0]) == 1.5
    assert profit_factor([-1.0]) == 0.0
    assert profit_factor([1.0]) == float("inf")
