"""Signal history for a running pipeline: the store, the recorder and the live track record.

:class:`SignalHistory` owns the :class:`storage.signals.SignalStore` (one writer task) on the
pipeline's database and the :class:`engine.signal_log.SignalLog` that decides which signals are
emitted and resolves their outcomes from closed candles. After every engine recompute the runner
hands it the snapshot; it keeps the resolved outcomes of its data source in memory (loaded from
the database at start, then appended as trades resolve) and publishes the track record per signal
type and per symbol as one frozen :class:`TrackRecord` for the UI and the AI context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from engine.models import Direction, EngineSnapshot
from engine.outcomes import Outcome, OutcomeConfig
from engine.signal_log import CandleSource, SignalLog
from engine.track_record import TrackStats, track_stats
from storage.db import Database
from storage.signals import SignalRecord, SignalStore, record_from_signal

log = logging.getLogger(__name__)


class TrackRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved-signal statistics of one data source.

    Attributes:
        source: Data source label (``live:binanceusdm``, ``replay:<file>``).
        version: Increments whenever an outcome was added.
        by_type: Signal type (``MOMENTUM_LONG``, ``MICRO_SHORT``...) → stats.
        by_symbol: Symbol → stats over all its signal types.
        by_symbol_type: ``<symbol>/<signal type>`` → stats.
        overall: Stats over everything (key ``ALL``).
        open_trades: Emitted signals still waiting for an outcome.
    """

    source: str
    version: int = 0
    by_type: dict[str, TrackStats] = msgspec.field(default_factory=dict)
    by_symbol: dict[str, TrackStats] = msgspec.field(default_factory=dict)
    by_symbol_type: dict[str, TrackStats] = msgspec.field(default_factory=dict)
    overall: TrackStats | None = None
    open_trades: int = 0


class SignalHistory:
    """Stores emitted signals and outcomes of one pipeline and keeps its track record.

    Args:
        db: The opened database.
        source: Data source label stored with every signal.
        timeframes: Configured timeframes.
        outcomes: Outcome horizon and costs.
        calibrate: ``(kind, confidence) -> calibrated probability`` or ``None`` per signal.
    """

    def __init__(
        self,
        db: Database,
        *,
        source: str,
        timeframes: list[str],
        outcomes: OutcomeConfig | None = None,
        calibrate: Callable[[str, float], float | None] | None = None,
    ) -> None:
        self.store = SignalStore(db)
        """The signal store (its writer task runs between :meth:`start` and :meth:`stop`)."""
        self.log = SignalLog(
            self.store, source=source, timeframes=timeframes, cfg=outcomes, calibrate=calibrate
        )
        """The recorder (emission rule and outcome tracking)."""
        self._source = source
        self._resolved: list[tuple[SignalRecord, Outcome]] = []
        self._record = TrackRecord(source=source)

    async def start(self) -> None:
        """Start the writer, resume open trades and load the resolved history of the source."""
        self.store.start()
        stored = await self.store.history(source=self._source)
        self.log.resume(s.record for s in stored if s.outcome is None)
        self._resolved = [(s.record, s.outcome) for s in stored if s.outcome is not None]
        self._publish()
        log.info(
            "signal history %s: %d resolved, %d open",
            self._source, len(self._resolved), len(self.log.open_trades()),
        )

    async def stop(self) -> None:
        """Write everything queued and stop the writer."""
        await self.store.stop()

    def observe(self, snapshot: EngineSnapshot, candles: CandleSource) -> None:
        """One recompute: resolve open trades on new candles, emit new signals."""
        before = self.log.resolved
        resolved = self.log.track(candles)
        opened = self.log.emitted
        for symbol, row in snapshot.symbols.items():
            if row.stale:
                continue
            self.log.observe(symbol, row.signal, kind="technical")
            self.log.observe(symbol, row.micro_signal, kind="micro")
        if resolved or self.log.resolved != before or self.log.emitted != opened:
            self._resolved.extend(resolved)
            self._publish()

    def record_verdict(
        self, snapshot: EngineSnapshot, symbol: str, decision: str, target: float | None
    ) -> bool:
        """Track an analyst verdict like any signal source: a ``long``/``short`` verdict on a
        symbol whose current signal has a plan is stored as kind ``verdict`` (type
        ``VERDICT_LONG`` / ``VERDICT_SHORT``) with the plan's entry and stop, and the verdict's
        target as TP1 when it lies on the right side of the entry; its outcome is resolved from
        the following candles. ``flat`` verdicts, symbols without a plan and a second verdict
        while one is open are not stored (returns False)."""
        row = snapshot.symbols.get(symbol)
        signal = row.signal if row is not None else None
        if decision not in ("long", "short") or signal is None or signal.plan is None:
            return False
        plan = signal.plan
        direction = Direction.LONG if decision == "long" else Direction.SHORT
        side = 1 if direction is Direction.LONG else -1
        tp1 = plan.take_profit_1
        stop = plan.stop_loss
        if (stop - plan.entry) * side > 0:
            # The plan was for the other side: mirror its stop and targets around the entry.
            stop = 2 * plan.entry - stop
            tp1 = 2 * plan.entry - tp1
        if target is not None and (target - plan.entry) * side > 0:
            tp1 = target
        tp2 = plan.entry + 2 * (tp1 - plan.entry)
        risk = abs(plan.entry - stop)
        judged = msgspec.structs.replace(
            signal,
            direction=direction,
            plan=msgspec.structs.replace(
                plan, stop_loss=stop, take_profit_1=tp1, take_profit_2=tp2,
                risk_reward=abs(tp1 - plan.entry) / risk if risk else 0.0,
            ),
        )
        record = record_from_signal(judged, kind="verdict", source=self._source)
        record = msgspec.structs.replace(record, signal_type=f"VERDICT_{direction.value}")
        emitted = self.log.emit(record)
        if emitted:
            self._publish()
        return emitted

    @property
    def track_record(self) -> TrackRecord:
        """The current track record (a new object whenever it changed)."""
        return self._record

    def _publish(self) -> None:
        by_type: dict[str, list[Outcome]] = {}
        by_symbol: dict[str, list[Outcome]] = {}
        by_pair: dict[str, list[Outcome]] = {}
        for record, outcome in self._resolved:
            by_type.setdefault(record.signal_type, []).append(outcome)
            by_symbol.setdefault(record.symbol, []).append(outcome)
            by_pair.setdefault(f"{record.symbol}/{record.signal_type}", []).append(outcome)
        self._record = TrackRecord(
            source=self._source,
            version=self._record.version + 1,
            by_type={k: track_stats(v, k) for k, v in by_type.items()},
            by_symbol={k: track_stats(v, k) for k, v in by_symbol.items()},
            by_symbol_type={k: track_stats(v, k) for k, v in by_pair.items()},
            overall=(
                track_stats([o for _, o in self._resolved], "ALL") if self._resolved else None
            ),
            open_trades=len(self.log.open_trades()),
        )
