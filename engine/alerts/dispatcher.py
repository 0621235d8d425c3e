"""Asynchronous alert delivery: log first, then one worker per channel with retries.

``submit`` never blocks (a bounded intake queue); a recorder task writes each alert to the
alert log *before* anything is sent, then hands it to every channel's bounded queue. Each
channel's worker sends with a per-attempt timeout and retries with exponential backoff,
waiting what the server asks instead when it says so (Telegram ``parameters.retry_after``,
HTTP ``Retry-After``). The outcome of every channel is written to the alert's log row, so a
failing channel never loses an alert the log shows: its row says the channel failed, and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol

import msgspec

from engine.alerts.channels import AlertChannel, ChannelError
from engine.alerts.config import AlertsConfig
from engine.alerts.message import render_text
from engine.alerts.rules import Alert

log = logging.getLogger(__name__)


class PendingEntry(Protocol):
    """An alert log row with channels still pending (``storage.alerts.AlertLogEntry``)."""

    @property
    def id(self) -> int:
        """Row id."""
        ...

    @property
    def alert(self) -> Alert | None:
        """The alert (``None`` when unreadable)."""
        ...

    @property
    def pending(self) -> tuple[str, ...]:
        """Channels that have not delivered or failed it."""
        ...


class AlertLog(Protocol):
    """Where alerts are logged before delivery (``storage.alerts.AlertLogStore``)."""

    async def append(self, alert: Alert, message: str, channels: Sequence[str]) -> int:
        """Store ``alert`` with ``channels`` pending; returns the row id."""
        ...

    async def mark_delivered(self, row_id: int, channel: str) -> None:
        """``channel`` delivered row ``row_id``."""
        ...

    async def mark_failed(self, row_id: int, channel: str, reason: str) -> None:
        """``channel`` gave up on row ``row_id``."""
        ...

    async def undelivered(self, n: int = 100) -> Sequence[PendingEntry]:
        """Rows with channels still pending, oldest first."""
        ...


class ChannelHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Delivery health of one channel, for the status bar.

    Attributes:
        name: Channel name.
        state: ``ok``, ``failing`` (last attempt failed) or ``disabled`` (cannot run).
        reason: Why it is failing or disabled (empty when ok).
        delivered: Alerts delivered since start.
        failed: Alerts given up on since start.
        queued: Alerts waiting for this channel.
    """

    name: str
    state: str = "ok"
    reason: str = ""
    delivered: int = 0
    failed: int = 0
    queued: int = 0

    @property
    def label(self) -> str:
        """``ok``, ``failing: <reason>`` or ``disabled: <reason>``."""
        return self.state if not self.reason else f"{self.state}: {self.reason}"


HealthCallback = Callable[[dict[str, ChannelHealth]], None]
"""Called on the event loop whenever a channel's state or reason changes."""

_Item = tuple[int, Alert]


class AlertDispatcher:
    """Logs and delivers alerts to channels in the background.

    Args:
        channels: Channels to deliver to (distinct names).
        log_store: The alert log (``storage.alerts.AlertLogStore`` on an open database).
        config: Retry, backoff, timeout and queue settings (``[alerts]``); default settings
            when ``None``.
        disabled: Channel name → reason for channels configured but unusable (shown in
            :meth:`health` as ``disabled``).
        on_health: Called with :meth:`health` whenever a channel's state changes.

    Raises:
        ValueError: if two channels share a name.

    Use ``async with AlertDispatcher(...)`` or :meth:`start` / :meth:`stop` inside the loop.
    """

    def __init__(
        self,
        channels: Sequence[AlertChannel],
        log_store: AlertLog,
        *,
        config: AlertsConfig | None = None,
        disabled: dict[str, str] | None = None,
        on_health: HealthCallback | None = None,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"alert channel names must be distinct: {', '.join(names)}")
        cfg = config or AlertsConfig()
        self._cfg = cfg
        self._channels = list(channels)
        self._store = log_store
        self._on_health = on_health
        self._intake: asyncio.Queue[Alert] = asyncio.Queue(maxsize=cfg.queue_size)
        self._queues: dict[str, asyncio.Queue[_Item]] = {
            c.name: asyncio.Queue(maxsize=cfg.queue_size) for c in channels
        }
        self._health: dict[str, ChannelHealth] = {
            c.name: ChannelHealth(name=c.name) for c in channels
        }
        for name, reason in (disabled or {}).items():
            self._health.setdefault(name, ChannelHealth(name=name, state="disabled", reason=reason))
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.dropped = 0
        """Alerts refused by :meth:`submit` (intake full or dispatcher stopped)."""
        self.log_errors = 0
        """Alert log writes that failed (logged)."""

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels delivered to."""
        return tuple(self._queues)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the recorder and one worker per channel (needs a running event loop)."""
        if self._tasks:
            return
        self._closed = False
        self._tasks.append(asyncio.create_task(self._record_loop(), name="alerts-recorder"))
        for channel in self._channels:
            self._tasks.append(
                asyncio.create_task(self._worker(channel), name=f"alerts-{channel.name}")
            )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking alerts, give queued ones ``timeout_s`` to go out, then shut down.

        Alerts still queued after that keep their channels ``pending`` in the alert log
        (see :meth:`redeliver`). Channels are closed.
        """
        self._closed = True
        if self._tasks:
            try:
                async with asyncio.timeout(timeout_s):
                    await self.drain()
            except TimeoutError:
                left = sum(q.qsize() for q in self._queues.values()) + self._intake.qsize()
                log.warning("alert dispatcher stopped with %d deliveries still queued", left)
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks.clear()
        for channel in self._channels:
            try:
                await channel.aclose()
            except Exception as exc:
                log.warning("closing alert channel %s failed: %s", channel.name, type(exc).__name__)

    async def __aenter__(self) -> AlertDispatcher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def drain(self) -> None:
        """Wait until every submitted alert is logged and every channel is done with it."""
        await self._intake.join()
        for queue in self._queues.values():
            await queue.join()

    # -- input -----------------------------------------------------------------------------

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for logging and delivery without waiting.

        Returns:
            False when it was refused (intake full or dispatcher stopped; counted in
            :attr:`dropped` and logged), True otherwise.
        """
        if self._closed or not self._tasks:
            self.dropped += 1
            log.warning("alert %s %s refused: dispatcher not running", alert.rule, alert.symbol)
            return False
        try:
            self._intake.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "alert %s %s dropped: intake queue full (%d)",
                alert.rule, alert.symbol, self._intake.maxsize,
            )
            return False
        return True

    async def publish(self, alert: Alert) -> int:
        """Write ``alert`` to the alert log, then queue it for every channel.

        Returns:
            Its alert log row id.

        Raises:
            storage.db.DatabaseError / aiosqlite errors: when the log write fails (nothing is
                sent then: a sent alert is always in the log).
        """
        row_id = await self._store.append(alert, render_text(alert), list(self._queues))
        await self._enqueue(row_id, alert, self._queues)
        return row_id

    async def redeliver(self, n: int = 100) -> int:
        """Queue alert log rows left ``pending`` (e.g. by a crash) to their channels.

        Returns:
            Deliveries queued.
        """
        queued = 0
        for entry in await self._store.undelivered(n):
            if entry.alert is None:
                continue
            targets = {c: q for c, q in self._queues.items() if c in entry.pending}
            queued += await self._enqueue(entry.id, entry.alert, targets)
        return queued

    async def _enqueue(
        self, row_id: int, alert: Alert, targets: dict[str, asyncio.Queue[_Item]]
    ) -> int:
        queued = 0
        for name, queue in targets.items():
            try:
                queue.put_nowait((row_id, alert))
                queued += 1
            except asyncio.QueueFull:
                reason = f"queue full ({queue.maxsize})"
                log.warning("alert %d not queued for %s: %s", row_id, name, reason)
                await self._mark(row_id, name, reason)
                self._set_health(name, "failing", reason, failed=1)
                continue
            self._set_health(name, None, None)
        return queued

    # -- health ----------------------------------------------------------------------------

    def health(self) -> dict[str, ChannelHealth]:
        """Channel name → health (delivery channels, then disabled ones)."""
        return {
            name: msgspec.structs.replace(
                h, queued=self._queues[name].qsize() if name in self._queues else 0
            )
            for name, h in self._health.items()
        }

    def _set_health(
        self,
        name: str,
        state: str | None,
        reason: str | None,
        *,
        delivered: int = 0,
        failed: int = 0,
    ) -> None:
        old = self._health[name]
        new = msgspec.structs.replace(
            old,
            state=old.state if state is None else state,
            reason=old.reason if reason is None else reason,
            delivered=old.delivered + delivered,
            failed=old.failed + failed,
        )
        self._health[name] = new
        if (new.state, new.reason) != (old.state, old.reason):
            if new.state == "failing":
                log.warning("alert channel %s failing: %s", name, new.reason)
            else:
                log.info("alert channel %s %s", name, new.state)
            if self._on_health is not None:
                try:
                    self._on_health(self.health())
                except Exception:
                    log.exception("alert health callback failed")

    # -- tasks -----------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            alert = await self._intake.get()
            try:
                await self.publish(alert)
            except Exception as exc:
                self.log_errors += 1
                log.error(
                    "alert %s %s not logged, so not sent: %s", alert.rule, alert.symbol, exc
                )
            finally:
                self._intake.task_done()

    async def _worker(self, channel: AlertChannel) -> None:
        queue = self._queues[channel.name]
        while True:
            row_id, alert = await queue.get()
            try:
                await self._deliver(channel, row_id, alert)
            except Exception as exc:
                # Never let one bad alert kill the worker.
                log.error("alert %d on %s: %s", row_id, channel.name, type(exc).__name__)
            finally:
                queue.task_done()

    async def _deliver(self, channel: AlertChannel, row_id: int, alert: Alert) -> None:
        cfg = self._cfg
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                async with asyncio.timeout(cfg.timeout_s):
                    await channel.send(alert)
            except ChannelError as exc:
                reason, retryable, retry_after = exc.reason, exc.retryable, exc.retry_after
            except TimeoutError:
                reason, retryable = f"timed out after {cfg.timeout_s:g}s", True
            except Exception as exc:
                # Only the type: a foreign exception's text may hold a URL with a secret.
                reason, retryable = f"unexpected {type(exc).__name__}", True
            else:
                await self._mark(row_id, channel.name, None)
                self._set_health(channel.name, "ok", "", delivered=1)
                return
            self._set_health(channel.name, "failing", reason)
            if not retryable or attempt >= cfg.retries:
                log.warning(
                    "alert %d (%s %s) failed on %s after %d attempt(s): %s",
                    row_id, alert.rule, alert.symbol, channel.name, attempt + 1, reason,
                )
                await self._mark(row_id, channel.name, reason)
                self._set_health(channel.name, None, None, failed=1)
                return
            if retry_after is not None:
                delay = min(retry_after, cfg.max_retry_after_s)
            else:
                delay = min(cfg.backoff_s * 2**attempt, cfg.backoff_max_s)
            attempt += 1
            log.info(
                "alert %d on %s: retry %d/%d in %.2fs (%s)",
                row_id, channel.name, attempt, cfg.retries, delay, reason,
            )
            await asyncio.sleep(delay)

    async def _mark(self, row_id: int, channel: str, failure: str | None) -> None:
        try:
            if failure is None:
                await self._store.mark_delivered(row_id, channel)
            else:
                await self._store.mark_failed(row_id, channel, failure)
        except Exception as exc:
            self.log_errors += 1
            log.error("alert log row %d: cannot record %s outcome: %s", row_id, channel, exc)
