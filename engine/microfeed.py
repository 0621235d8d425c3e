"""Order books and open interest for the engine: which symbols get a book, and the plumbing.

:class:`MicroFeed` decides which symbols get a local order book (the configured top N by 24 h
quote volume, the configured list, and whatever the user opened; in a replay, the symbols whose
depth was recorded), names the streams they need (diff depth and ``aggTrade``), routes
``DepthDiff`` events into a :class:`feeds.book_sync.BookKeeper`, and runs the two REST workers:
the snapshot fetcher the keeper asks for (queued behind the REST weight budget) and the
open-interest poller. It never touches the UI; the engine reads books through :meth:`book` and
:meth:`info`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from engine.models import BookInfo
from feeds.book_sync import BookKeeper, BookTotals
from feeds.config import BookConfig, OpenInterestConfig
from feeds.events import DepthDiff, OpenInterest
from feeds.open_interest import OpenInterestPoller
from feeds.orderbook import OrderBook
from feeds.rest import BinanceRest
from feeds.routing import agg_trade_stream, depth_stream
from feeds.snapshots import SnapshotFetcher

log = logging.getLogger(__name__)

_SPEED_MS = {"100ms": 100, "250ms": 250, "500ms": 500}


class MicroFeed:
    """Book selection, book sync and open-interest polling for one pipeline.

    Args:
        books: Book section.
        open_interest: Open-interest section.
        clock: Engine clock, ms UTC.
        on_open_interest: Receives every polled :class:`OpenInterest` (the engine).
        recorded_depth: In a replay, the symbols whose diff depth was recorded (only they can
            get a book); ``None`` live.
    """

    def __init__(
        self,
        books: BookConfig,
        open_interest: OpenInterestConfig,
        *,
        clock: Callable[[], int],
        on_open_interest: Callable[[OpenInterest], None],
        recorded_depth: Iterable[str] | None = None,
    ) -> None:
        self._cfg = books
        self._oi_cfg = open_interest
        self._clock = clock
        self._on_oi = on_open_interest
        self._recorded = None if recorded_depth is None else frozenset(recorded_depth)
        self._universe: list[str] = []
        self._wanted: set[str] = set()
        self._fetcher: SnapshotFetcher | None = None
        self._poller: OpenInterestPoller | None = None
        self._on_streams: Callable[[], None] | None = None
        # Snapshots asked for before the fetcher runs (diffs can arrive during backfill).
        self._early: set[str] = set()
        self.keeper = BookKeeper(books, self._request_snapshot, clock)
        """The books (read access for the engine, headless output and tests)."""

    # -- selection -----------------------------------------------------------------------

    def set_universe(self, symbols: Iterable[str]) -> None:
        """The universe in ranking order (highest 24 h quote volume first in ``top`` mode)."""
        self._universe = list(symbols)
        self._retrack()

    def book_symbols(self) -> list[str]:
        """Symbols that get a book now, in universe order: the top N, the configured list and
        the on-demand ones; in a replay only those whose depth was recorded."""
        universe = self._universe
        present = set(universe)
        chosen = set(universe[: self._cfg.top_n])
        chosen.update(s for s in self._cfg.symbols if s in present)
        chosen.update(s for s in self._wanted if s in present)
        if self._recorded is not None:
            chosen &= self._recorded
        return [s for s in universe if s in chosen]

    def streams(self) -> list[str]:
        """Diff-depth and aggTrade streams of the book symbols."""
        speed = _SPEED_MS[self._cfg.depth_speed]
        out: list[str] = []
        for symbol in self.book_symbols():
            out.append(depth_stream(symbol, speed))
            out.append(agg_trade_stream(symbol))
        return out

    def on_streams_changed(self, callback: Callable[[], None]) -> None:
        """Called after :meth:`want_book` changed the book set (the runner resubscribes)."""
        self._on_streams = callback

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Add (or release) an on-demand book; its snapshot request gets priority."""
        if symbol not in self._universe:
            return
        before = set(self.book_symbols())
        if wanted:
            self._wanted.add(symbol)
        else:
            self._wanted.discard(symbol)
        self._retrack()
        if set(self.book_symbols()) != before and self._on_streams is not None:
            self._on_streams()

    def _retrack(self) -> None:
        keep = set(self.book_symbols())
        for symbol in self.keeper.tracked() - keep:
            self.keeper.untrack(symbol)
            if self._fetcher is not None:
                self._fetcher.cancel(symbol)
        for symbol in keep - self.keeper.tracked():
            self.keeper.track(symbol)

    # -- events --------------------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> None:
        """Route one diff-depth event into its book."""
        self.keeper.on_diff(diff)

    def book(self, symbol: str) -> OrderBook | None:
        """The synced book of ``symbol``, ``None`` if it has none or is resyncing."""
        return self.keeper.book(symbol)

    def info(self, symbol: str) -> BookInfo:
        """Sync state of ``symbol``'s book (``state == "none"`` without a book)."""
        return self.keeper.info(symbol)

    def totals(self) -> BookTotals:
        """Book counts and resync/gap totals for the status bar."""
        return self.keeper.totals()

    def open_interest_state(self) -> tuple[str, str]:
        """(state, reason) of open-interest polling: ``polling``, ``unavailable``, ``disabled``
        or empty before the poller starts."""
        if not self._oi_cfg.enabled:
            return "disabled", ""
        if self._poller is None:
            return "", ""
        status = self._poller.status
        return status.state, status.reason

    def _request_snapshot(self, symbol: str) -> None:
        if self._fetcher is None:
            log.debug("snapshot for %s requested before the fetcher runs; queued on start", symbol)
            self._early.add(symbol)
            return
        self._fetcher.request(symbol, priority=symbol in self._wanted)

    # -- workers -------------------------------------------------------------------------

    async def run(self, rest: BinanceRest) -> None:
        """Run the snapshot fetcher and the open-interest poller until cancelled."""
        fetcher = SnapshotFetcher(
            rest.depth_snapshot,
            limit=self._cfg.snapshot_limit,
            concurrency=self._cfg.snapshot_concurrency,
            retry_delay_s=max(self._cfg.resync_delay_s, 0.5),
        )
        self._fetcher = fetcher
        for symbol in sorted(self._early):
            fetcher.request(symbol, priority=symbol in self._wanted)
        self._early.clear()
        tasks = [
            asyncio.create_task(
                fetcher.run(self.keeper.on_snapshot, self.keeper.on_snapshot_failed),
                name="depth-snapshots",
            )
        ]
        tasks.append(asyncio.create_task(self._poll_held_back(), name="book-resync-timer"))
        if self._oi_cfg.enabled:
            poller = OpenInterestPoller(rest.open_interest, self._oi_cfg, self._oi_symbols)
            self._poller = poller
            tasks.append(asyncio.create_task(poller.run(self._on_oi), name="open-interest"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _poll_held_back(self) -> None:
        # A stale-snapshot re-request is held back resync_delay_s; a quiet stream would never
        # fire it from a diff, so a timer does.
        while True:
            await asyncio.sleep(0.25)
            self.keeper.poll()

    def _oi_symbols(self) -> list[str]:
        if self._oi_cfg.symbols == "books":
            return self.book_symbols()
        return list(self._universe)
