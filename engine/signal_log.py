"""Live/replay signal recorder: decides which signals are emitted, stores them, tracks outcomes.

The runner (or the backtest) calls :meth:`SignalLog.observe_snapshot` after each engine
recompute. Emission rule (one open trade per symbol and kind):

* a signal is *actionable* when it is LONG/SHORT, has a plan and is not blocked;
* it is *emitted* when it is actionable, its symbol has no open trade of that kind (technical or
  micro), its ``as_of`` is newer than the last emitted one of that symbol and kind, and not
  before the previous trade's exit. So a signal that keeps its direction for many bars is
  stored once; once its trade resolved, the next actionable bar is a new signal.

Because signals are computed from closed candles, ``as_of`` changes only when a candle closes:
each signal is stored once, at its bar's close, and the store dedupes re-emission of a bar.

Outcomes: after each recompute every open trade is walked with :func:`engine.outcomes.
triple_barrier` over the closed candles of its plan timeframe (micro plans without one: the
smallest timeframe), the smallest timeframe ordering ambiguous candles. Resolved trades are
written through the sink and freed. Nothing here does IO itself; the sink's writes are queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from engine.models import Direction, EngineSnapshot, Signal
from engine.outcomes import BarArrays, Outcome, OutcomeConfig, triple_barrier
from engine.version import ENGINE_VERSION
from feeds.intervals import interval_ms
from storage.signals import SignalRecord, record_from_signal

log = logging.getLogger(__name__)

CandleSource = Callable[[str, str], BarArrays | None]
"""``(symbol, timeframe)`` → closed candles, oldest first (e.g. ``CandleStore.arrays``)."""


class SignalSink(Protocol):
    """Where emitted signals and outcomes go (:class:`storage.signals.SignalStore` fits)."""

    def submit(self, record: SignalRecord) -> object:
        """Store a signal (a duplicate is a no-op); may return a future of its id."""
        ...

    def submit_outcome(self, record: SignalRecord, outcome: Outcome) -> object:
        """Store the outcome of a submitted signal."""
        ...


class MemorySignalSink:
    """In-memory sink (backtests, tools): keeps records and outcomes in submission order.

    Attributes:
        records: Emitted records, in order (duplicates by key are dropped).
        outcomes: Signal key → outcome.
    """

    def __init__(self) -> None:
        self.records: list[SignalRecord] = []
        self.outcomes: dict[tuple[str, str, int, str], Outcome] = {}
        self._keys: dict[tuple[str, str, int, str], int] = {}

    def submit(self, record: SignalRecord) -> int:
        """Keep ``record``; returns its 1-based index (the existing one for a duplicate)."""
        index = self._keys.get(record.key)
        if index is None:
            self.records.append(record)
            index = self._keys[record.key] = len(self.records)
        return index

    def submit_outcome(self, record: SignalRecord, outcome: Outcome) -> int:
        """Keep the first outcome of ``record``; returns its index.

        Raises:
            KeyError: if ``record`` was never submitted.
        """
        index = self._keys[record.key]
        self.outcomes.setdefault(record.key, outcome)
        return index


class SignalLog:
    """Emits signals to a sink and tracks their outcomes (see the module rule).

    Args:
        sink: Store or in-memory sink.
        source: Data source label stored with every signal (``live:binanceusdm``,
            ``replay:<file>``).
        timeframes: Configured timeframes (the smallest orders ambiguous candles and carries
            micro trades).
        cfg: Outcome horizon and costs.
        engine_version: Stored with every signal.
        calibrate: Optional ``(kind, confidence) -> calibrated`` mapping stored alongside.

    Raises:
        ValueError: if ``timeframes`` is empty or has an unknown code.
    """

    def __init__(
        self,
        sink: SignalSink,
        *,
        source: str,
        timeframes: Sequence[str],
        cfg: OutcomeConfig | None = None,
        engine_version: str = ENGINE_VERSION,
        calibrate: Callable[[str, float], float | None] | None = None,
    ) -> None:
        if not timeframes:
            raise ValueError("SignalLog needs at least one timeframe")
        self._sink = sink
        self._source = source
        self._cfg = cfg or OutcomeConfig()
        self._smallest = min(timeframes, key=interval_ms)
        self._version = engine_version
        self._calibrate = calibrate
        self._open: dict[tuple[str, str], SignalRecord] = {}
        self._last_as_of: dict[tuple[str, str], int] = {}
        self._last_exit: dict[tuple[str, str], int] = {}
        self._checked: dict[tuple[str, str], tuple[int, int]] = {}
        """(as_of, last candle open) of the last walk per open trade."""
        self.emitted = 0
        """Signals emitted since start."""
        self.resolved = 0
        """Outcomes written since start."""

    @property
    def source(self) -> str:
        """Data source label."""
        return self._source

    def open_trades(self) -> dict[tuple[str, str], SignalRecord]:
        """Open trades by ``(symbol, kind)`` (a copy)."""
        return dict(self._open)

    def resume(self, records: Iterable[SignalRecord]) -> None:
        """Track stored signals that have no outcome yet (after a restart); the newest per
        symbol and kind wins."""
        for record in sorted(records, key=lambda r: r.as_of):
            key = (record.symbol, record.kind)
            self._open[key] = record
            self._last_as_of[key] = max(self._last_as_of.get(key, 0), record.as_of)

    def observe(
        self, symbol: str, signal: Signal | None, *, kind: str = "technical"
    ) -> SignalRecord | None:
        """Emit ``signal`` if the rule allows; returns the emitted record or ``None``."""
        if (
            signal is None
            or signal.direction is Direction.NEUTRAL
            or signal.plan is None
            or signal.blocked
        ):
            return None
        key = (symbol, kind)
        if key in self._open:
            return None
        if signal.as_of <= self._last_as_of.get(key, -1) or signal.as_of < self._last_exit.get(
            key, -1
        ):
            return None
        calibrated = self._calibrate(kind, signal.confidence) if self._calibrate else None
        record = record_from_signal(
            signal,
            kind=kind,
            source=self._source,
            calibrated=calibrated,
            engine_version=self._version,
        )
        self._open[key] = record
        self._last_as_of[key] = signal.as_of
        self.emitted += 1
        _watch(self._sink.submit(record), f"signal {record.key}")
        return record

    def emit(self, record: SignalRecord) -> bool:
        """Emit a record built elsewhere (an analyst verdict on a signal's plan) under the same
        one-open-trade rule as :meth:`observe`; returns True when it was emitted."""
        key = (record.symbol, record.kind)
        if key in self._open or record.as_of <= self._last_as_of.get(key, -1):
            return False
        self._open[key] = record
        self._last_as_of[key] = record.as_of
        self.emitted += 1
        _watch(self._sink.submit(record), f"signal {record.key}")
        return True

    def track(self, candles: CandleSource) -> list[tuple[SignalRecord, Outcome]]:
        """Walk every open trade over its newly closed candles; write and free resolved ones.

        Returns:
            The ``(record, outcome)`` pairs resolved by this call.
        """
        resolved: list[tuple[SignalRecord, Outcome]] = []
        for key, record in list(self._open.items()):
            timeframe = record.plan_timeframe or self._smallest
            bars = candles(record.symbol, timeframe)
            if bars is None or len(bars.open_time) == 0:
                continue
            last = int(bars.open_time[-1])
            if self._checked.get(key) == (record.as_of, last):
                continue  # no new closed candle since the last walk
            self._checked[key] = (record.as_of, last)
            lower = None
            lower_interval = None
            if interval_ms(self._smallest) < interval_ms(timeframe):
                lower = candles(record.symbol, self._smallest)
                lower_interval = self._smallest if lower is not None else None
            direction = Direction(record.direction)
            outcome = triple_barrier(
                direction,
                record.entry,
                record.stop_loss,
                record.take_profit_1,
                record.take_profit_2,
                record.as_of,
                bars,
                interval=timeframe,
                cfg=self._cfg,
                lower=lower,
                lower_interval=lower_interval,
            )
            if outcome is None:
                continue
            del self._open[key]
            self._last_exit[key] = outcome.exit_time
            self.resolved += 1
            _watch(self._sink.submit_outcome(record, outcome), f"outcome of {record.key}")
            resolved.append((record, outcome))
        return resolved

    def observe_snapshot(
        self, snapshot: EngineSnapshot, candles: CandleSource
    ) -> list[SignalRecord]:
        """One engine recompute: resolve open trades with the new candles, then emit the
        snapshot's technical and micro signals. Returns the records emitted."""
        self.track(candles)
        emitted: list[SignalRecord] = []
        for symbol, row in snapshot.symbols.items():
            if row.stale:
                continue
            for kind, signal in (("technical", row.signal), ("micro", row.micro_signal)):
                record = self.observe(symbol, signal, kind=kind)
                if record is not None:
                    emitted.append(record)
        return emitted


def _watch(result: object, what: str) -> None:
    """Log a failed store write (the store counts it too) instead of leaving it unretrieved."""
    if isinstance(result, asyncio.Future):

        def done(future: asyncio.Future[object]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.error("could not store %s: %s", what, future.exception())

        result.add_done_callback(done)
