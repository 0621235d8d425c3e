"""REST depth snapshot requests for the local books: queued, deduplicated, bounded, retried.

:class:`feeds.book_sync.BookKeeper` asks for snapshots synchronously (``request(symbol)``);
this module turns those asks into at most ``concurrency`` concurrent
``GET /fapi/v1/depth`` calls. The ``fetch`` callable goes through the REST
:class:`feeds.ratelimit.WeightBudget` (weight 20 at ``limit=1000``), so a resync storm over
many symbols waits in this queue and in the budget instead of earning an HTTP 429/418 ban
(FEEDS.md §1.7, §4). A failed fetch is reported and retried with a bounded exponential
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import msgspec

from feeds.events import DepthSnapshot

logger = logging.getLogger(__name__)

SnapshotCallback = Callable[[DepthSnapshot], None]
FailureCallback = Callable[[str, str], None]


class SnapshotStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`SnapshotFetcher`.

    Attributes:
        requested: Requests accepted (duplicates of a pending symbol not counted).
        duplicates: Requests ignored because the symbol was already pending.
        fetched: Snapshots delivered.
        failed: Fetch attempts that failed (each is retried).
        queued: Symbols waiting for a worker now.
        in_flight: Fetches running now.
        retrying: Symbols waiting out a retry delay now.
    """

    requested: int
    duplicates: int
    fetched: int
    failed: int
    queued: int
    in_flight: int
    retrying: int


class SnapshotFetcher:
    """Deduplicating, priority-aware queue of depth snapshot requests.

    Args:
        fetch: ``fetch(symbol, limit)`` → the snapshot (normally
            ``BinanceRest.depth_snapshot``); raises on failure.
        limit: Levels per side to ask for (5, 10, 20, 50, 100, 500, 1000).
        concurrency: Fetches in flight at most.
        retry_delay_s: Delay before the first retry of a failed fetch, seconds; doubles
            per consecutive failure of the symbol up to ``max_retry_delay_s``.
        max_retry_delay_s: Cap of the retry delay, seconds.
        timeout_s: Per-fetch timeout, seconds (``None``: rely on ``fetch``'s own).

    Raises:
        ValueError: on ``concurrency`` < 1, a negative delay, or ``limit`` < 1.
    """

    def __init__(
        self,
        fetch: Callable[[str, int], Awaitable[DepthSnapshot]],
        *,
        limit: int,
        concurrency: int,
        retry_delay_s: float,
        max_retry_delay_s: float = 30.0,
        timeout_s: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if retry_delay_s < 0 or max_retry_delay_s < 0:
            raise ValueError(
                f"retry delays must be >= 0, got {retry_delay_s} / {max_retry_delay_s}"
            )
        self._fetch = fetch
        self.limit = limit
        self.concurrency = concurrency
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max(max_retry_delay_s, retry_delay_s)
        self.timeout_s = timeout_s
        self._queue: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._retry: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}  # consecutive failures per symbol
        self._wakeup = asyncio.Event()
        self._requested = 0
        self._duplicates = 0
        self._fetched = 0
        self._failed = 0

    # -- requests --------------------------------------------------------------------------

    def request(self, symbol: str, *, priority: bool = False) -> bool:
        """Ask for ``symbol``'s snapshot.

        A symbol already queued, in flight or waiting to retry is not queued again; with
        ``priority`` a queued or retrying one moves to the front (the symbol the user opened).

        Returns:
            True if a new request was queued.
        """
        symbol = symbol.upper()
        if symbol in self._in_flight:
            self._duplicates += 1
            return False
        if symbol in self._retry:
            if not priority:
                self._duplicates += 1
                return False
            self._retry.pop(symbol).cancel()
            self._duplicates += 1
            self._queue.appendleft(symbol)
            self._wakeup.set()
            return False
        if symbol in self._queue:
            self._duplicates += 1
            if priority and self._queue[0] != symbol:
                self._queue.remove(symbol)
                self._queue.appendleft(symbol)
            return False
        self._requested += 1
        if priority:
            self._queue.appendleft(symbol)
        else:
            self._queue.append(symbol)
        self._wakeup.set()
        return True

    def cancel(self, symbol: str) -> None:
        """Forget a queued or retrying request (the symbol lost its book); an in-flight
        fetch still completes and is delivered."""
        symbol = symbol.upper()
        with contextlib.suppress(ValueError):
            self._queue.remove(symbol)
        handle = self._retry.pop(symbol, None)
        if handle is not None:
            handle.cancel()
        self._failures.pop(symbol, None)

    def pending(self) -> frozenset[str]:
        """Symbols queued, in flight or waiting to retry."""
        return frozenset(self._queue) | self._in_flight | frozenset(self._retry)

    @property
    def stats(self) -> SnapshotStats:
        """Current counters."""
        return SnapshotStats(
            requested=self._requested,
            duplicates=self._duplicates,
            fetched=self._fetched,
            failed=self._failed,
            queued=len(self._queue),
            in_flight=len(self._in_flight),
            retrying=len(self._retry),
        )

    # -- worker ----------------------------------------------------------------------------

    async def run(self, on_snapshot: SnapshotCallback, on_failure: FailureCallback) -> None:
        """Serve requests until cancelled, at most :attr:`concurrency` fetches at a time.

        Args:
            on_snapshot: Called with each snapshot fetched (``BookKeeper.on_snapshot``).
            on_failure: Called with ``(symbol, reason)`` after each failed attempt
                (``BookKeeper.on_snapshot_failed``); the symbol is retried after a delay.
        """
        tasks: set[asyncio.Task[None]] = set()
        slot_free = asyncio.Event()
        try:
            while True:
                while self._queue and len(self._in_flight) < self.concurrency:
                    symbol = self._queue.popleft()
                    self._in_flight.add(symbol)
                    task = asyncio.create_task(
                        self._one(symbol, on_snapshot, on_failure, slot_free),
                        name=f"depth-snapshot-{symbol}",
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                self._wakeup.clear()
                slot_free.clear()
                waiters = [asyncio.ensure_future(self._wakeup.wait())]
                if self._queue:
                    waiters.append(asyncio.ensure_future(slot_free.wait()))
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for handle in self._retry.values():
                handle.cancel()
            self._retry.clear()
            self._in_flight.clear()

    async def _one(
        self,
        symbol: str,
        on_snapshot: SnapshotCallback,
        on_failure: FailureCallback,
        slot_free: asyncio.Event,
    ) -> None:
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    snap = await self._fetch(symbol, self.limit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed += 1
                failures = self._failures.get(symbol, 0) + 1
                self._failures[symbol] = failures
                delay = min(self.retry_delay_s * 2 ** (failures - 1), self.max_retry_delay_s)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.warning(
                    "depth snapshot %s failed (%s), retry %d in %.1f s",
                    symbol,
                    reason,
                    failures,
                    delay,
                )
                self._in_flight.discard(symbol)
                loop = asyncio.get_running_loop()
                self._retry[symbol] = loop.call_later(delay, self._requeue, symbol)
                self._report(on_failure, symbol, reason)
                return
            self._fetched += 1
            self._failures.pop(symbol, None)
            self._in_flight.discard(symbol)
            try:
                on_snapshot(snap)
            except Exception:
                logger.exception("depth snapshot %s: on_snapshot callback failed", symbol)
        finally:
            self._in_flight.discard(symbol)
            slot_free.set()

    def _requeue(self, symbol: str) -> None:
        if self._retry.pop(symbol, None) is not None:
            self._queue.append(symbol)
            self._wakeup.set()

    @staticmethod
    def _report(on_failure: FailureCallback, symbol: str, reason: str) -> None:
        try:
            on_failure(symbol, reason)
        except Exception:
            logger.exception("depth snapshot %s: on_failure callback failed", symbol)
