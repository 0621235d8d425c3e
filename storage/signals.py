"""Signal history, outcomes and calibration models in the SQLite database (see :mod:`storage.db`).

Every write goes through one writer task (:class:`SignalStore`): callers enqueue without ever
blocking the event loop and get a future resolved once the row is **committed** (so a signal
reported stored survives a crash). The queue is bounded; an overflow fails that submission's
future with :class:`SignalQueueFull`, and is counted and logged.

A stored signal is immutable (a trigger rejects UPDATE: no repainting). Re-submitting the same
signal — same ``(symbol, kind, as_of, source)`` — is a no-op that returns the stored row's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.models import Direction, Factor, Signal
from engine.outcomes import Outcome
from engine.version import ENGINE_VERSION
from storage.db import Database

log = logging.getLogger(__name__)

KINDS = ("technical", "micro", "verdict")
"""Signal kinds stored (``verdict``: an analyst's call, scored like a signal)."""

_factors_encoder = msgspec.json.Encoder()
_factors_decoder = msgspec.json.Decoder(tuple[Factor, ...])


class SignalRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One stored signal, as in the ``signals`` table.

    Attributes:
        symbol: Venue symbol.
        kind: ``technical``, ``micro`` or ``verdict``.
        signal_type: :class:`engine.models.SignalType` value (``STRONG_LONG``, ``MICRO_SHORT``...).
        direction: ``LONG`` or ``SHORT``.
        as_of: Close time of the signal's last closed candle (micro: the signal time), ms UTC.
        timeframes: Timeframes fused into the signal, smallest first.
        score: Score 0-100 (50 neutral).
        confidence: Raw engine confidence 0-1.
        calibrated: Calibrated probability of TP1 before SL (0-1), ``None`` when uncalibrated.
        entry: Plan entry, quote currency.
        stop_loss: Plan stop, quote currency.
        take_profit_1: Plan first target, quote currency.
        take_profit_2: Plan second target, quote currency.
        risk_reward: Reward to TP1 / risk to the stop (R:R).
        plan_timeframe: Timeframe whose ATR sized the plan (empty for a percentage micro plan).
        atr: ATR used, quote currency (0 when none).
        regime: Regime of the plan timeframe (``trending``, ``ranging``, ``high_volatility``).
        risk_profile: Risk profile the thresholds came from.
        factors: Full factor breakdown (stored as JSON).
        source: Data source: ``live:<exchange>`` or ``replay:<file name>`` (any label).
        engine_version: :data:`engine.version.ENGINE_VERSION` that produced it.
    """

    symbol: str
    kind: str
    signal_type: str
    direction: str
    as_of: int
    timeframes: tuple[str, ...]
    score: float
    confidence: float
    calibrated: float | None
    entry: float
    stop_loss: float
    take_profit_1: float
    take_profit_2: float
    risk_reward: float
    plan_timeframe: str
    atr: float
    regime: str
    risk_profile: str
    factors: tuple[Factor, ...]
    source: str
    engine_version: str

    @property
    def key(self) -> tuple[str, str, int, str]:
        """Dedupe key ``(symbol, kind, as_of, source)``."""
        return (self.symbol, self.kind, self.as_of, self.source)


class StoredSignal(msgspec.Struct, frozen=True, kw_only=True):
    """A stored signal with its row id and outcome.

    Attributes:
        id: Row id.
        record: The signal.
        stored_ms: Time it was committed (wall clock, ms UTC).
        outcome: Its outcome, ``None`` while open.
    """

    id: int
    record: SignalRecord
    stored_ms: int
    outcome: Outcome | None = None


class CalibrationRow(msgspec.Struct, frozen=True, kw_only=True):
    """One fitted calibration model with its provenance (``calibration_models`` table).

    Attributes:
        id: Row id (0 before it is stored).
        kind: Signal kind it calibrates (``technical`` / ``micro``).
        fitted_ms: Fit time, ms UTC.
        data_from: First signal time of the training data, ms UTC.
        data_to: Last signal time of the training data, ms UTC.
        source: Data source of the training signals.
        engine_version: Engine version of the training signals.
        samples: Resolved signals used.
        ece_before: Out-of-fold expected calibration error of the raw confidence.
        ece_after: Out-of-fold ECE after calibration.
        model: The model as JSON text (its owner, ``engine.calibration``, defines it).
    """

    kind: str
    fitted_ms: int
    data_from: int
    data_to: int
    source: str
    engine_version: str
    samples: int
    ece_before: float | None
    ece_after: float | None
    model: str
    id: int = 0


class SignalQueueFull(Exception):
    """The writer queue was full; the submission was not stored."""


class SignalStoreClosed(Exception):
    """The store was stopped before the submission was written."""


def record_from_signal(
    signal: Signal,
    *,
    kind: str,
    source: str,
    calibrated: float | None = None,
    engine_version: str = ENGINE_VERSION,
) -> SignalRecord:
    """The record of a LONG/SHORT signal with a plan.

    Args:
        signal: Engine signal (technical or micro).
        kind: ``technical`` or ``micro``.
        source: Data source label (``live:binanceusdm``, ``replay:<file>``).
        calibrated: Calibrated confidence, or ``None``.
        engine_version: Engine version (default: the running one).

    Raises:
        ValueError: for a NEUTRAL signal, one without a plan, or an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown signal kind {kind!r}: expected one of {', '.join(KINDS)}")
    plan = signal.plan
    if signal.direction is Direction.NEUTRAL or plan is None:
        raise ValueError(
            f"{signal.symbol} signal at {signal.as_of} is {signal.direction.value} "
            f"{'without a plan' if plan is None else ''}: only LONG/SHORT with a plan are stored"
        )
    by_tf = {tf.timeframe: tf for tf in signal.timeframes}
    plan_tf = by_tf.get(plan.timeframe)
    regime = plan_tf.regime if plan_tf is not None else ""
    if not regime:
        regime = next((tf.regime for tf in signal.timeframes if tf.regime), "")
    return SignalRecord(
        symbol=signal.symbol,
        kind=kind,
        signal_type=signal.signal_type.value,
        direction=signal.direction.value,
        as_of=signal.as_of,
        timeframes=tuple(tf.timeframe for tf in signal.timeframes),
        score=signal.score,
        confidence=signal.confidence,
        calibrated=calibrated,
        entry=plan.entry,
        stop_loss=plan.stop_loss,
        take_profit_1=plan.take_profit_1,
        take_profit_2=plan.take_profit_2,
        risk_reward=plan.risk_reward,
        plan_timeframe=plan.timeframe,
        atr=plan.atr,
        regime=regime,
        risk_profile=signal.risk_profile,
        factors=signal.factors,
        source=source,
        engine_version=engine_version,
    )


_SIGNAL_COLUMNS = (
    "symbol, kind, signal_type, direction, as_of, timeframes, score, confidence, calibrated, "
    "entry, stop_loss, take_profit_1, take_profit_2, risk_reward, plan_timeframe, atr, regime, "
    "risk_profile, factors, source, engine_version"
)
_OUTCOME_COLUMNS = (
    "result, exit_time, exit_price, bars, time_to_outcome_ms, mfe_r, mae_r, realized_r, resolved_by"
)


def _signal_params(r: SignalRecord) -> tuple[object, ...]:
    return (
        r.symbol,
        r.kind,
        r.signal_type,
        r.direction,
        r.as_of,
        ",".join(r.timeframes),
        r.score,
        r.confidence,
        r.calibrated,
        r.entry,
        r.stop_loss,
        r.take_profit_1,
        r.take_profit_2,
        r.risk_reward,
        r.plan_timeframe,
        r.atr,
        r.regime,
        r.risk_profile,
        _factors_encoder.encode(r.factors).decode(),
        r.source,
        r.engine_version,
    )


def _outcome_params(o: Outcome) -> tuple[object, ...]:
    return (
        o.result,
        o.exit_time,
        o.exit_price,
        o.bars,
        o.time_to_outcome_ms,
        o.mfe_r,
        o.mae_r,
        o.realized_r,
        o.resolved_by,
    )


@dataclass(slots=True)
class _Job:
    """One queued write: ``op`` is ``signal``, ``outcome``, ``outcome_key`` or ``calibration``."""

    op: str
    payload: Any
    future: asyncio.Future[int]


class SignalStore:
    """Signals, outcomes and calibration models over an open :class:`Database`.

    Args:
        db: The database (opened by its owner; migration 2 creates the tables).
        max_queue: Queued writes before submissions fail with :class:`SignalQueueFull`.
        max_batch: Writes committed together (one transaction) at most.
        clock: Wall clock in ms UTC (tests inject one).

    Writes: :meth:`submit`, :meth:`submit_outcome` (no await needed; futures resolve on
    commit), :meth:`add_outcome`, :meth:`save_calibration`. Reads go straight to the database.
    Call :meth:`start` before writes are processed and :meth:`stop` to flush and end.
    """

    def __init__(
        self,
        db: Database,
        *,
        max_queue: int = 10_000,
        max_batch: int = 256,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._db = db
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Submissions refused because the queue was full."""
        self.written = 0
        """New signal rows committed."""
        self.duplicates = 0
        """Submissions that matched a stored signal (no-op)."""
        self.failed = 0
        """Writes that failed (constraint or database errors); each future carries the error."""

    # -- writer --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task (idempotent; needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._writer(), name="signal-store-writer"
            )

    async def stop(self) -> None:
        """Write everything queued, then end the writer task."""
        if self._task is None:
            return
        task, self._task = self._task, None
        if not task.done():
            await self._queue.put(None)
            await task

    @property
    def pending(self) -> int:
        """Writes queued, not yet committed."""
        return self._queue.qsize()

    def _enqueue(self, op: str, payload: Any) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(op, payload, future))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "signal store queue full (%d writes pending): %s write dropped (%d dropped so far)",
                self._queue.qsize(),
                op,
                self.dropped,
            )
            future.set_exception(
                SignalQueueFull(f"signal store queue full ({self._queue.qsize()} pending)")
            )
        return future

    async def _writer(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            await self._write_batch(batch)
        # Anything submitted after stop() began cannot be written any more.
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None and not job.future.done():
                job.future.set_exception(SignalStoreClosed("signal store stopped"))

    async def _write_batch(self, batch: list[_Job]) -> None:
        conn = self._db.conn
        results: list[tuple[_Job, int | BaseException]] = []
        new_rows = 0
        try:
            for job in batch:
                try:
                    value, new = await self._apply(job)
                    new_rows += new
                    results.append((job, value))
                except Exception as exc:  # one bad row must not sink the batch
                    results.append((job, exc))
            await conn.commit()
        except Exception as exc:
            self.failed += len(batch)
            log.error("signal store commit of %d writes failed: %s", len(batch), exc)
            with contextlib.suppress(Exception):
                await conn.rollback()
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.written += new_rows
        for job, outcome in results:
            if job.future.done():  # cancelled by its caller
                continue
            if isinstance(outcome, BaseException):
                self.failed += 1
                log.error("signal store %s write failed: %s", job.op, outcome)
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    async def _apply(self, job: _Job) -> tuple[int, int]:
        """Execute one job inside the open transaction: (result id, new signal rows)."""
        conn = self._db.conn
        now = self._clock()
        if job.op == "signal":
            record: SignalRecord = job.payload
            cursor = await conn.execute(
                f"INSERT INTO signals ({_SIGNAL_COLUMNS}, stored_ms) VALUES "
                f"({', '.join('?' * 22)}) ON CONFLICT (symbol, kind, as_of, source) DO NOTHING",
                (*_signal_params(record), now),
            )
            if cursor.rowcount == 1 and cursor.lastrowid:
                return int(cursor.lastrowid), 1
            self.duplicates += 1
            return await self._id_of(record), 0
        if job.op in ("outcome", "outcome_key"):
            target, outcome = job.payload
            signal_id = int(target) if job.op == "outcome" else await self._id_of(target)
            # An outcome is written once; a replay computing it again is a no-op.
            await conn.execute(
                f"INSERT INTO outcomes (signal_id, {_OUTCOME_COLUMNS}, updated_ms) VALUES "
                f"({', '.join('?' * 11)}) ON CONFLICT (signal_id) DO NOTHING",
                (signal_id, *_outcome_params(outcome), now),
            )
            return signal_id, 0
        row: CalibrationRow = job.payload
        cursor = await conn.execute(
            "INSERT INTO calibration_models (kind, fitted_ms, data_from, data_to, source, "
            "engine_version, samples, ece_before, ece_after, model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.kind,
                row.fitted_ms,
                row.data_from,
                row.data_to,
                row.source,
                row.engine_version,
                row.samples,
                row.ece_before,
                row.ece_after,
                row.model,
            ),
        )
        return int(cursor.lastrowid or 0), 0

    async def _id_of(self, record: SignalRecord) -> int:
        async with self._db.conn.execute(
            "SELECT id FROM signals WHERE symbol = ? AND kind = ? AND as_of = ? AND source = ?",
            record.key,
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"no stored signal {record.key}")
        return int(row[0])

    # -- writes --------------------------------------------------------------------------------

    def submit(self, record: SignalRecord) -> asyncio.Future[int]:
        """Queue a signal; never blocks.

        Returns:
            Future of the row id, resolved once committed (the existing id for a duplicate);
            failed with :class:`SignalQueueFull` on overflow, :class:`SignalStoreClosed` if the
            store stops first, or the database error.
        """
        return self._enqueue("signal", record)

    def submit_outcome(self, record: SignalRecord, outcome: Outcome) -> asyncio.Future[int]:
        """Queue the outcome of a submitted signal, found by its key (it may still be queued:
        the writer keeps order). Future of the signal id, resolved once committed."""
        return self._enqueue("outcome_key", (record, outcome))

    async def add_outcome(self, signal_id: int, outcome: Outcome) -> int:
        """Store the outcome of signal ``signal_id`` (a second outcome is ignored); returns the
        id once committed.

        Raises:
            SignalQueueFull: if the queue is full.
            sqlite3.IntegrityError: if no signal has that id.
        """
        return await self._enqueue("outcome", (signal_id, outcome))

    async def save_calibration(self, row: CalibrationRow) -> int:
        """Store a fitted calibration model; returns its id once committed."""
        return await self._enqueue("calibration", row)

    # -- reads ---------------------------------------------------------------------------------

    async def history(
        self,
        *,
        symbol: str | None = None,
        signal_type: str | None = None,
        source: str | None = None,
        kind: str | None = None,
        since: int | None = None,
        resolved: bool | None = None,
    ) -> list[StoredSignal]:
        """Stored signals, oldest ``as_of`` first, with outcomes.

        Args:
            symbol: Only this symbol.
            signal_type: Only this type (``STRONG_LONG``...).
            source: Only this data source.
            kind: Only this kind.
            since: Only ``as_of >= since`` (ms UTC).
            resolved: True: only with an outcome; False: only open ones; None: all.
        """
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("s.symbol", symbol),
            ("s.signal_type", signal_type),
            ("s.source", source),
            ("s.kind", kind),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("s.as_of >= ?")
            params.append(since)
        if resolved is not None:
            where.append("o.signal_id IS NOT NULL" if resolved else "o.signal_id IS NULL")
        sql = (
            f"SELECT s.id, {', '.join('s.' + c for c in _SIGNAL_COLUMNS.split(', '))}, "
            f"s.stored_ms, {', '.join('o.' + c for c in _OUTCOME_COLUMNS.split(', '))} "
            "FROM signals s LEFT JOIN outcomes o ON o.signal_id = s.id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY s.as_of, s.id"
        )
        async with self._db.conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [_stored(row) for row in rows]

    async def outcomes(self, **filters: Any) -> list[StoredSignal]:
        """Resolved signals (same filters as :meth:`history`)."""
        return await self.history(resolved=True, **filters)

    async def open_signals(self, source: str) -> list[StoredSignal]:
        """Signals of ``source`` without an outcome yet (to resume tracking after a restart)."""
        return await self.history(source=source, resolved=False)

    async def latest_calibration(self, kind: str) -> CalibrationRow | None:
        """The most recently fitted model for ``kind``, or ``None``."""
        async with self._db.conn.execute(
            "SELECT kind, fitted_ms, data_from, data_to, source, engine_version, samples, "
            "ece_before, ece_after, model, id FROM calibration_models WHERE kind = ? "
            "ORDER BY fitted_ms DESC, id DESC LIMIT 1",
            (kind,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return CalibrationRow(
            kind=row[0],
            fitted_ms=row[1],
            data_from=row[2],
            data_to=row[3],
            source=row[4],
            engine_version=row[5],
            samples=row[6],
            ece_before=row[7],
            ece_after=row[8],
            model=row[9],
            id=row[10],
        )


def _stored(row: Any) -> StoredSignal:
    (
        sid,
        symbol,
        kind,
        signal_type,
        direction,
        as_of,
        timeframes,
        score,
        confidence,
        calibrated,
        entry,
        stop,
        tp1,
        tp2,
        rr,
        plan_tf,
        atr,
        regime,
        profile,
        factors,
        source,
        version,
        stored_ms,
        result,
        exit_time,
        exit_price,
        bars,
        tto,
        mfe,
        mae,
        realized,
        resolved_by,
    ) = row
    record = SignalRecord(
        symbol=symbol,
        kind=kind,
        signal_type=signal_type,
        direction=direction,
        as_of=as_of,
        timeframes=tuple(timeframes.split(",")) if timeframes else (),
        score=score,
        confidence=confidence,
        calibrated=calibrated,
        entry=entry,
        stop_loss=stop,
        take_profit_1=tp1,
        take_profit_2=tp2,
        risk_reward=rr,
        plan_timeframe=plan_tf,
        atr=atr,
        regime=regime,
        risk_profile=profile,
        factors=_factors_decoder.decode(factors),
        source=source,
        engine_version=version,
    )
    outcome = None
    if result is not None:
        outcome = Outcome(
            result=result,
            exit_time=exit_time,
            exit_price=exit_price,
            bars=bars,
            time_to_outcome_ms=tto,
            mfe_r=mfe,
            mae_r=mae,
            realized_r=realized,
            resolved_by=resolved_by,
        )
    return StoredSignal(id=sid, record=record, stored_ms=stored_ms, outcome=outcome)
