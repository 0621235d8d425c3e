"""Walk-forward backtest: the live engine, bar by bar, over kline history.

No vectorised shortcut: an :class:`~engine.engine.Engine` is warmed up exactly as the live
pipeline warms it up (REST backfill rows as the replay server would answer them at the start
time, tick sizes from its ``exchangeInfo``), then fed the closed klines of the base timeframe
in time order, BTC first at each instant, with one :meth:`Engine.recompute` per bar close batch.
Prices go through the same fixed-decimal wire text the replay server sends
(:func:`feeds.replay.wire.fmt`), so the engine sees the very numbers it sees live.

Signals are emitted and resolved by the live recorder itself (:class:`engine.signal_log.
SignalLog` with an in-memory sink): after every recompute it walks open trades through
:func:`engine.outcomes.triple_barrier` on the engine's closed candles, then sees each
non-stale symbol's signal. Results are grouped per signal type × plan timeframe × regime
(:func:`results_by_group`) and the confidence is calibrated on purged walk-forward folds
(:mod:`engine.calibration`). :func:`record_live` is the same recorder loop on a live/replay
:class:`~engine.runner.MarketRunner` (the causality test compares the two).

Warm-up note: the backfill rows are loaded timeframe by timeframe, smallest first; the live
backfill loads them concurrently. With a start on a boundary of every timeframe (no forming
candle in the backfill) the order cannot matter; otherwise built timeframes' forming candles
could in principle be continued differently.

Parallelism: ``workers > 1`` splits the alts over processes. The only coupling between
symbols is the BTC gate (an alt reads BTC's base-timeframe vote of the same bar), so every
worker also runs BTC: its vote is recomputed from the same candles in each worker, and the
result equals the single-process run (tested).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engine.breadth import BTC_SYMBOL
from engine.calibration import (
    CalibrationModel,
    ReliabilityBin,
    WalkForward,
    fit_calibration,
    reliability_table,
)
from engine.config import EngineConfig
from engine.engine import Engine
from engine.models import Signal
from engine.outcomes import Outcome, OutcomeConfig
from engine.runner import MarketRunner
from engine.signal_log import MemorySignalSink, SignalLog
from engine.track_record import track_stats
from engine.version import ENGINE_VERSION
from feeds.events import Kline
from feeds.intervals import interval_ms
from feeds.replay.kline_source import KlineSource
from feeds.replay.klines import KlineHistory, load_kline_history
from feeds.replay.wire import fmt
from feeds.rest import mark_closed, parse_kline_rows
from storage.signals import SignalRecord

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""``progress(bars_done, bars_total)``; bars are symbol × base-timeframe candles."""


class BacktestSignal(msgspec.Struct, frozen=True, kw_only=True):
    """One emitted signal of the backtest and its outcome.

    Attributes:
        record: The signal as the live recorder stores it (``storage.signals.SignalRecord``:
            type, plan, plan timeframe, regime, factors, source, engine version).
        outcome: Triple-barrier outcome, ``None`` while unresolved at the end of the data.
    """

    record: SignalRecord
    outcome: Outcome | None


@dataclass(frozen=True)
class BacktestOptions:
    """What to backtest.

    Attributes:
        start_ms: First streamed bar: candles opening at or after it (less one base interval)
            are fed bar by bar; earlier ones are the warm-up backfill. ``None``: leave the
            smallest timeframe's ``history_bars`` for warm-up (the replay's default start).
        end_ms: Last bar close considered, ms UTC (``None``: the end of the data).
        symbols: Symbols to run (``None``: every symbol with klines).
        outcomes: Horizon, fees and slippage of the triple barrier.
        workers: Processes (1 = in this process). BTC runs in every worker (BTC gate).
        record_all: Keep every per-bar signal (causality checks; memory heavy on big sets).
        source: Data source label stored with the signals (``replay:<name>``).
    """

    start_ms: int | None = None
    end_ms: int | None = None
    symbols: tuple[str, ...] | None = None
    outcomes: OutcomeConfig = field(default_factory=OutcomeConfig)
    workers: int = 1
    record_all: bool = False
    source: str = "backtest"


@dataclass
class BacktestRun:
    """Raw result of a bar-by-bar run.

    Attributes:
        signals: Emitted signals with outcomes, ordered by (as_of, symbol).
        all_signals: Every evaluated signal keyed by ``(symbol, as_of)`` (only with
            ``record_all``).
        start_ms: First streamed bar's open time floor (the warm-up ends here), ms UTC.
        end_ms: Last bar close fed, ms UTC.
        bars: Symbol × base-timeframe candles fed.
        seconds: Wall time of the run.
        symbols: Symbols run.
        btc_bars: Of ``bars``, BTC's (workers each run BTC; the merge counts them once).
    """

    signals: list[BacktestSignal]
    all_signals: dict[tuple[str, int], Signal]
    start_ms: int
    end_ms: int
    bars: int
    seconds: float
    symbols: list[str]
    btc_bars: int = 0

    @property
    def bars_per_s(self) -> float:
        """Throughput, symbol-bars per wall second."""
        return self.bars / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- wire values


def _wire(values: np.ndarray[Any, np.dtype[np.float64]], decimals: int) -> list[float]:
    """Values as the engine receives them: fixed-decimal wire text parsed back to float."""
    return [float(fmt(v, decimals)) for v in values.tolist()]


@dataclass
class _Bars:
    """Base-timeframe candles of one symbol as wire floats (streamed part only)."""

    open_time: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]


def _tick_sizes(source: KlineSource) -> dict[str, float]:
    """``PRICE_FILTER.tickSize`` per symbol from the replay's exchangeInfo (as live)."""
    ticks: dict[str, float] = {}
    for record in source.exchange_info().get("symbols", ()):
        for flt in record.get("filters", ()):
            if flt.get("filterType") == "PRICE_FILTER":
                try:
                    tick = float(flt.get("tickSize", 0))
                except (TypeError, ValueError):
                    continue
                if tick > 0:
                    ticks[str(record["symbol"])] = tick
    return ticks


def _backfill_rows(
    source: KlineSource, symbol: str, timeframe: str, bars: int, now_ms: int
) -> list[Kline]:
    """The rows the live backfill hands the engine at ``now_ms``: the last ``bars`` closed
    candles (the replay server's ``GET /fapi/v1/klines`` answer), plus the forming one."""
    rows = source.klines(symbol, timeframe, None, None, bars + 1, now_ms) or []
    # Parsed and flagged by the live REST client's own functions, as live.
    klines = mark_closed(
        parse_kline_rows(rows, symbol, timeframe, f"backfill {symbol} {timeframe}"), now_ms
    )
    closed = [k for k in klines if k.closed][-bars:] if bars else []
    forming = [k for k in klines if not k.closed][-1:]
    return closed + forming


# --------------------------------------------------------------------------- the bar loop


class BarReplay:
    """Drives one :class:`Engine` bar by bar over a :class:`KlineHistory`.

    Args:
        history: Loaded kline history.
        config: Engine configuration (the same as live).
        symbols: Universe, in order (BTC, when present, is evaluated first anyway).
        start_ms: See :attr:`BacktestOptions.start_ms`.
        end_ms: See :attr:`BacktestOptions.end_ms`.

    Raises:
        ValueError: no symbol has base-timeframe candles, or ``start_ms >= end_ms``.
    """

    def __init__(
        self,
        history: KlineHistory,
        config: EngineConfig,
        symbols: Sequence[str],
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> None:
        tf = config.timeframes
        self.config = config
        self.base = tf.timeframes[0]
        self.base_ms = interval_ms(self.base)
        self.history = history
        self.source = KlineSource(
            history, list(tf.timeframes), {c: tf.bars_for(c) for c in tf.timeframes}, start_ms
        )
        self.start_ms = self.source.start_ms
        self.symbols = [s for s in symbols if history.candles(s, self.base) is not None]
        if not self.symbols:
            raise ValueError(f"no symbol has {self.base} klines to backtest")
        data_end = self.source.end_ms
        self.end_ms = min(end_ms, data_end) if end_ms is not None else data_end
        if self.end_ms <= self.start_ms:
            raise ValueError(
                f"backtest range is empty: start {self.start_ms} is not before end {self.end_ms}"
            )
        self._now = self.start_ms
        self._last_fed: dict[str, int] = {}
        # The runner's replay staleness: a symbol missing bars for this long is stale and its
        # row's signal is not recorded (MarketRunner scales stale_after_s for replays).
        self._stale_ms = int(max(config.stale_after_s, 2.5 * self.base_ms / 1000) * 1000)
        self.engine = Engine(
            config, clock=lambda: self._now, streamed_timeframes=[self.base], offload=False
        )
        self.bars = self._streamed_bars()
        self.total_bars = sum(len(b.open_time) for b in self.bars.values())

    def _streamed_bars(self) -> dict[str, _Bars]:
        out: dict[str, _Bars] = {}
        for symbol in self.symbols:
            series = self.history.candles(symbol, self.base)
            assert series is not None
            price_dec, qty_dec = self.history.decimals(symbol)
            # The replay streams the candle containing start_ms onwards (see KlineSource).
            lo = int(np.searchsorted(series.open_ms, self.start_ms - self.base_ms, side="right"))
            hi = int(np.searchsorted(series.open_ms, self.end_ms - self.base_ms, side="right"))
            out[symbol] = _Bars(
                series.open_ms[lo:hi].tolist(),
                _wire(series.open[lo:hi], price_dec),
                _wire(series.high[lo:hi], price_dec),
                _wire(series.low[lo:hi], price_dec),
                _wire(series.close[lo:hi], price_dec),
                _wire(series.volume[lo:hi], qty_dec),
            )
        return out

    def _warm_up(self) -> None:
        tf = self.config.timeframes
        self.engine.set_universe(self.symbols)
        self.engine.set_tick_sizes(_tick_sizes(self.source))
        for symbol in self.symbols:
            for code in tf.timeframes:
                rows = _backfill_rows(self.source, symbol, code, tf.bars_for(code), self.start_ms)
                if rows:
                    self.engine.load_history(symbol, code, rows, as_of=self.start_ms)

    def _schedule(self) -> list[tuple[int, list[tuple[str, int]]]]:
        """Bar close batches: (close time + 1 ms, [(symbol, row)]), BTC first, then in order."""
        order = sorted(self.symbols, key=lambda s: (s != BTC_SYMBOL, self.symbols.index(s)))
        batches: dict[int, list[tuple[str, int]]] = {}
        for symbol in order:
            for i, t in enumerate(self.bars[symbol].open_time):
                batches.setdefault(t + self.base_ms, []).append((symbol, i))
        return sorted(batches.items())

    async def run(
        self,
        signal_log: SignalLog,
        on_signal: Callable[[Signal], None] | None = None,
        progress: ProgressFn | None = None,
    ) -> int:
        """Warm up, then feed every bar; after each recompute, ``signal_log`` resolves open
        trades on the engine's candles and sees every symbol's signal, as live.

        Args:
            signal_log: The live recorder (emission rule and outcome tracking).
            on_signal: Gets each newly evaluated signal (causality checks).
            progress: Progress callback.

        Returns:
            Symbol-bars fed.
        """
        self._warm_up()
        await self._collect(self.symbols, signal_log, on_signal)
        done = 0
        last_report = 0.0
        for close_ms, batch in self._schedule():
            self._now = close_ms
            for symbol, i in batch:
                b = self.bars[symbol]
                t = b.open_time[i]
                self.engine.on_event(Kline(
                    symbol=symbol, interval=self.base, open_time=t, close_time=t + self.base_ms - 1,
                    open=b.open[i], high=b.high[i], low=b.low[i], close=b.close[i],
                    volume=b.volume[i], closed=True, exchange_time=close_ms, recv_time=close_ms,
                ))
                self._last_fed[symbol] = close_ms
            await self._collect([s for s, _ in batch], signal_log, on_signal)
            done += len(batch)
            if progress is not None:
                now = time.monotonic()
                if now - last_report >= 0.2:
                    last_report = now
                    progress(done, self.total_bars)
        if progress is not None:
            progress(done, self.total_bars)
        return done

    async def _collect(
        self,
        evaluated: Iterable[str],
        signal_log: SignalLog,
        on_signal: Callable[[Signal], None] | None,
    ) -> None:
        await self.engine.recompute()
        if on_signal is not None:
            for symbol in evaluated:
                signal = self.engine.signal(symbol)
                if signal is not None:
                    on_signal(signal)
        # What SignalLog.observe_snapshot does with a snapshot, without building one per bar:
        # track open trades, then offer every non-stale row's signal in universe order.
        signal_log.track(self.engine.store.view)
        for symbol in self.symbols:
            if self._now - self._last_fed.get(symbol, self.start_ms) > self._stale_ms:
                continue
            signal_log.observe(symbol, self.engine.signal(symbol))


# --------------------------------------------------------------------------- runs


def _run_symbols(
    path: Path,
    config: EngineConfig,
    symbols: Sequence[str],
    options: BacktestOptions,
    progress: ProgressFn | None,
    keep: Callable[[str], bool],
) -> BacktestRun:
    """One bar-by-bar run in this process (a worker, or the whole backtest)."""
    history = load_kline_history(path, symbols)
    started = time.perf_counter()
    replay = BarReplay(
        history, config, list(symbols), start_ms=options.start_ms, end_ms=options.end_ms
    )
    sink = MemorySignalSink()
    signal_log = SignalLog(
        sink, source=options.source, timeframes=config.timeframes.timeframes,
        cfg=options.outcomes,
    )
    all_signals: dict[tuple[str, int], Signal] = {}

    def on_signal(signal: Signal) -> None:
        if keep(signal.symbol):
            all_signals[(signal.symbol, signal.as_of)] = signal

    bars = asyncio.run(replay.run(signal_log, on_signal if options.record_all else None, progress))
    results = [
        BacktestSignal(record=r, outcome=sink.outcomes.get(r.key))
        for r in sink.records
        if keep(r.symbol)
    ]
    return BacktestRun(
        signals=results, all_signals=all_signals, start_ms=replay.start_ms, end_ms=replay.end_ms,
        bars=bars, seconds=time.perf_counter() - started, symbols=list(replay.symbols),
        btc_bars=len(replay.bars[BTC_SYMBOL].open_time) if BTC_SYMBOL in replay.bars else 0,
    )


def _worker(
    path: str,
    config_json: str,
    symbols: list[str],
    options: BacktestOptions,
    owned: list[str],
    progress_queue: Any,
    worker_id: int,
) -> BacktestRun:
    """Process-pool entry point: run ``symbols``, keep results of ``owned`` only."""
    config = EngineConfig.model_validate_json(config_json)
    owned_set = set(owned)

    def report(done: int, total: int) -> None:
        progress_queue.put((worker_id, done, total))

    return _run_symbols(Path(path), config, symbols, options, report, owned_set.__contains__)


def available_symbols(path: Path, base: str) -> list[str]:
    """Symbols of a kline folder/file with ``base`` candles (file or aggregated), sorted.

    Raises:
        feeds.replay.errors.ReplayDataError: unusable path or no kline file.
    """
    history = load_kline_history(path)
    return [s for s in history.symbols if history.candles(s, base) is not None]


def run_backtest(
    path: Path,
    config: EngineConfig,
    options: BacktestOptions,
    progress: ProgressFn | None = None,
) -> BacktestRun:
    """Bar-by-bar backtest of the kline history at ``path`` (blocking; CPU heavy).

    Args:
        path: Kline folder or file (formats of :mod:`feeds.replay.klines`).
        config: Engine configuration.
        options: Range, symbols, outcome costs, workers.
        progress: Called with (symbol-bars done, total) now and then.

    Returns:
        The emitted signals with outcomes and throughput figures.

    Raises:
        feeds.replay.errors.ReplayDataError: unusable data.
        ValueError: an empty range or no symbol with base-timeframe klines.
    """
    base = config.timeframes.timeframes[0]
    symbols = list(options.symbols) if options.symbols else available_symbols(path, base)
    if options.workers <= 1 or len(symbols) < 3:
        return _run_symbols(path, config, symbols, options, progress, lambda _s: True)
    started = time.perf_counter()
    alts = [s for s in symbols if s != BTC_SYMBOL]
    has_btc = BTC_SYMBOL in symbols
    workers = min(options.workers, len(alts))
    shares = [alts[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    progress_queue = manager.Queue()
    totals: dict[int, tuple[int, int]] = {}
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                wid, done, total = progress_queue.get(timeout=0.1)
            except queue.Empty:
                continue
            totals[wid] = (done, total)
            if progress is not None and len(totals) == workers:
                progress(sum(d for d, _ in totals.values()), sum(t for _, t in totals.values()))

    reader = threading.Thread(target=pump, name="backtest-progress", daemon=True)
    reader.start()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = []
            for wid, share in enumerate(shares):
                run_symbols = ([BTC_SYMBOL] if has_btc else []) + share
                owned = share + ([BTC_SYMBOL] if has_btc and wid == 0 else [])
                futures.append(pool.submit(
                    _worker, str(path), config.model_dump_json(), run_symbols, options, owned,
                    progress_queue, wid,
                ))
            runs = [f.result() for f in futures]
    finally:
        stop.set()
        reader.join(timeout=2)
        manager.shutdown()
    merged = sorted(
        (s for r in runs for s in r.signals), key=lambda s: (s.record.as_of, s.record.symbol)
    )
    all_signals: dict[tuple[str, int], Signal] = {}
    for r in runs:
        all_signals.update(r.all_signals)
    # BTC ran in every worker; count its bars once.
    btc_dupes = sum(r.btc_bars for r in runs[1:]) if has_btc else 0
    return BacktestRun(
        signals=merged, all_signals=all_signals, start_ms=runs[0].start_ms,
        end_ms=max(r.end_ms for r in runs), bars=sum(r.bars for r in runs) - btc_dupes,
        seconds=time.perf_counter() - started, symbols=symbols,
    )


# --------------------------------------------------------------------------- report


class GroupStats(msgspec.Struct, frozen=True, kw_only=True):
    """Results of one signal type × plan timeframe × regime group (``ALL`` = any).

    Attributes:
        signal_type: Signal type value or ``ALL``.
        timeframe: Plan timeframe or ``ALL``.
        regime: Plan-timeframe regime or ``ALL``.
        signals: Emitted signals.
        resolved: Of them, with an outcome.
        hit_rate: TP1-before-SL rate of the resolved ones (fraction).
        hit_low: Wilson 95 % lower bound.
        hit_high: Wilson 95 % upper bound.
        expectancy_r: Mean realised R per trade after fees and slippage.
        profit_factor: Gross won R / gross lost R (``inf`` without losses, 0 without wins).
        max_drawdown_r: Largest peak-to-trough fall of cumulative R, trades in exit order.
        avg_minutes: Mean time in trade, minutes.
    """

    signal_type: str
    timeframe: str
    regime: str
    signals: int
    resolved: int
    hit_rate: float
    hit_low: float
    hit_high: float
    expectancy_r: float
    profit_factor: float
    max_drawdown_r: float
    avg_minutes: float


def max_drawdown(r_values: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the cumulative sum of ``r_values`` (R, >= 0)."""
    peak = 0.0
    total = 0.0
    worst = 0.0
    for r in r_values:
        total += r
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst


def profit_factor(r_values: Sequence[float]) -> float:
    """Sum of positive R over the magnitude of the sum of negative R (``inf`` if no loss)."""
    won = sum(r for r in r_values if r > 0)
    lost = -sum(r for r in r_values if r < 0)
    if lost == 0:
        return math.inf if won > 0 else 0.0
    return won / lost


def group_stats(
    signals: Sequence[BacktestSignal], signal_type: str, timeframe: str, regime: str
) -> GroupStats:
    """:class:`GroupStats` of ``signals`` (already filtered) under the given labels."""
    resolved = sorted(
        (s.outcome for s in signals if s.outcome is not None), key=lambda o: o.exit_time
    )
    stats = track_stats(resolved, signal_type)
    r_values = [o.realized_r for o in resolved]
    return GroupStats(
        signal_type=signal_type, timeframe=timeframe, regime=regime, signals=len(signals),
        resolved=stats.count, hit_rate=stats.hit_rate, hit_low=stats.hit_low,
        hit_high=stats.hit_high, expectancy_r=stats.avg_r,
        profit_factor=profit_factor(r_values), max_drawdown_r=max_drawdown(r_values),
        avg_minutes=stats.avg_time_ms / 60_000.0,
    )


def results_by_group(signals: Sequence[BacktestSignal]) -> list[GroupStats]:
    """Stats per signal type × plan timeframe × regime, then the ``ALL`` total row."""
    groups: dict[tuple[str, str, str], list[BacktestSignal]] = {}
    for s in signals:
        key = (s.record.signal_type, s.record.plan_timeframe, s.record.regime or "-")
        groups.setdefault(key, []).append(s)
    rows = [group_stats(items, *key) for key, items in sorted(groups.items())]
    rows.append(group_stats(signals, "ALL", "ALL", "ALL"))
    return rows


class BacktestReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``perpscope backtest`` prints (JSON-serialisable).

    Attributes:
        source: The kline path.
        engine_version: Engine version that produced the signals.
        start_ms: First streamed bar (after the warm-up), ms UTC.
        end_ms: Last bar close, ms UTC.
        symbols: Symbols run.
        bars: Symbol-bars fed.
        seconds: Wall time of the bar-by-bar run.
        bars_per_s: Throughput.
        fees_bps: Taker fee per side used for realised R, bps.
        slippage_bps: Slippage per side, bps.
        signals: Emitted signals.
        resolved: Of them, resolved.
        groups: Per-group results (last row: ``ALL``).
        folds: Walk-forward test folds used for calibration.
        oof_samples: Out-of-fold samples.
        ece_before: Out-of-fold ECE of raw confidence (``None`` without folds).
        ece_after: Out-of-fold ECE of calibrated confidence.
        reliability: Confidence deciles: predicted vs observed TP1-before-SL rate (out-of-fold
            samples when there are any, else all resolved ones).
        calibration: The model fitted on all resolved signals (``None`` without any).
    """

    source: str
    engine_version: str
    start_ms: int
    end_ms: int
    symbols: list[str]
    bars: int
    seconds: float
    bars_per_s: float
    fees_bps: float
    slippage_bps: float
    signals: int
    resolved: int
    groups: list[GroupStats]
    folds: int
    oof_samples: int
    ece_before: float | None
    ece_after: float | None
    reliability: list[ReliabilityBin]
    calibration: CalibrationModel | None


def build_report(
    run: BacktestRun,
    *,
    source: str,
    outcomes: OutcomeConfig,
    folds: int = 5,
    fitted_ms: int | None = None,
) -> BacktestReport:
    """Group stats, walk-forward calibration and reliability table of a run.

    Args:
        run: The bar-by-bar run.
        source: Data source label stored with the calibration model.
        outcomes: The outcome costs used (for the report header).
        folds: Walk-forward test folds.
        fitted_ms: Fit time for the model's provenance (default: now).
    """
    resolved = [s for s in run.signals if s.outcome is not None]
    model: CalibrationModel | None = None
    wf: WalkForward | None = None
    if resolved:
        outs = [s.outcome for s in resolved if s.outcome is not None]
        model, wf = fit_calibration(
            [s.record.confidence for s in resolved],
            [1.0 if o.win else 0.0 for o in outs],
            [s.record.as_of for s in resolved],
            [o.exit_time for o in outs],
            source=source, engine_version=ENGINE_VERSION,
            fitted_ms=fitted_ms if fitted_ms is not None else int(time.time() * 1000),
            folds=folds,
        )
    if wf is not None and wf.oof_index:
        table = reliability_table(wf.oof_raw, wf.oof_observed, wf.oof_calibrated)
    else:
        table = reliability_table(
            [s.record.confidence for s in resolved],
            [1.0 if s.outcome is not None and s.outcome.win else 0.0 for s in resolved],
        )
    has_oof = wf is not None and bool(wf.oof_index)
    return BacktestReport(
        source=source, engine_version=ENGINE_VERSION, start_ms=run.start_ms, end_ms=run.end_ms,
        symbols=run.symbols, bars=run.bars, seconds=round(run.seconds, 3),
        bars_per_s=round(run.bars_per_s, 1), fees_bps=outcomes.fees_bps,
        slippage_bps=outcomes.slippage_bps, signals=len(run.signals), resolved=len(resolved),
        groups=results_by_group(run.signals), folds=wf.folds if wf is not None else 0,
        oof_samples=len(wf.oof_index) if wf is not None else 0,
        ece_before=wf.ece_before if has_oof and wf is not None else None,
        ece_after=wf.ece_after if has_oof and wf is not None else None,
        reliability=table, calibration=model,
    )


# --------------------------------------------------------------------------- live side


async def record_live(
    runner: MarketRunner,
    signal_log: SignalLog,
    *,
    until_ms: int,
    on_signal: Callable[[Signal], None] | None = None,
    poll_s: float = 0.005,
) -> int:
    """Run ``runner`` (a replay) and record what its engine emits, recompute by recompute.

    This is the live path's recorder loop (what the runner's signal hook does): recompute
    whenever something is dirty, then :meth:`SignalLog.observe_snapshot` on the snapshot. It
    runs :meth:`MarketRunner.run_to_completion` meanwhile (backfill over loopback REST, klines
    over the loopback WebSocket) and stops once the engine has seen a kline at or after
    ``until_ms``. Used to check that the backtest equals the live path (causality).

    Args:
        runner: A runner with ``replay`` set (finite speed, so bars arrive apart).
        signal_log: Recorder receiving the snapshots.
        until_ms: Stop after the first recompute that covers this exchange time, ms UTC.
        on_signal: Gets each symbol's signal after every recompute that evaluated it.
        poll_s: Pause between recompute attempts.

    Returns:
        Recomputes that evaluated something.

    Raises:
        Exception: whatever the runner raised (e.g. the replay ended before ``until_ms``).
    """
    task = asyncio.create_task(runner.run_to_completion())
    rounds = 0
    try:
        ready = asyncio.create_task(runner.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            await task
            raise RuntimeError("the runner finished before it was ready")
        engine = runner.engine
        while True:
            seen = engine.last_event_time
            if await engine.recompute():
                rounds += 1
                snapshot = runner.snapshot()
                if on_signal is not None:
                    for row in snapshot.symbols.values():
                        if row.signal is not None:
                            on_signal(row.signal)
                signal_log.observe_snapshot(snapshot, engine.store.view)
                if seen >= until_ms:
                    return rounds
            if task.done():
                await task
                return rounds
            await asyncio.sleep(poll_s)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
