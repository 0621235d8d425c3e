"""Local L2 order books kept in sync with Binance USDⓈ-M diff depth (FEEDS.md §1.6).

The procedure, per symbol (:class:`BookSync`):

1. Buffer ``<symbol>@depth`` diffs; the first diff triggers the REST snapshot request
   (``GET /fapi/v1/depth``), so the snapshot is newer than the start of the buffer.
2. On the snapshot: drop buffered diffs with ``u < lastUpdateId``.
3. The first applied diff must bracket the snapshot: ``U <= lastUpdateId <= u``, or follow
   it exactly (``pu == lastUpdateId``: the snapshot was taken between two events, as ccxt's
   futures branch also accepts). If the first remaining diff starts after it
   (``U > lastUpdateId``, ``pu != lastUpdateId``) the snapshot is older than the buffered
   diffs (**stale**): it is rejected and a new one is requested after ``resync_delay_s``. If
   no diff remains, the book waits for the bracketing diff.
4. From then on each diff's ``pu`` must equal the previous diff's ``u``; otherwise (a **gap**)
   restart from step 1.

Other resync triggers: the book crossed after a diff (best bid >= best ask), and the buffer
overflowing ``max_buffered_diffs`` while the snapshot is pending. A resync is never silent:
the state goes ``resyncing``, the counters and ``last_reason`` say why, the book is cleared and
a snapshot is requested through the callback while diffs keep being buffered.

Duplicate or out-of-order diffs (``u`` <= the book's ``u`` after sync) are treated as gaps.
FEEDS.md §1.6 step 6 allows no exception ("otherwise, restart from step 3"), and on one
WebSocket connection Binance cannot reorder events, so such a diff means the stream itself is
suspect (typically a reconnect replaying events) and only a fresh snapshot is trustworthy.

Everything here is IO-free and synchronous: snapshot requests go out through a callback
(:class:`feeds.snapshots.SnapshotFetcher` serves them), times come from an injected clock.
Per-diff cost is O(levels in the diff · log n) for the one book concerned; nothing walks all
books on the hot path.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import msgspec

from engine.models import BookInfo
from feeds.config import BookConfig
from feeds.events import DepthDiff, DepthSnapshot
from feeds.orderbook import OrderBook

logger = logging.getLogger(__name__)

SYNCED = "synced"
RESYNCING = "resyncing"
NONE = "none"


class BookTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Book counts over all tracked symbols, for the status bar.

    Attributes:
        books: Symbols tracked.
        synced: Books currently in sync.
        resyncing: Books waiting for a snapshot or the bracketing diff.
        resyncs: Resyncs since start (gap, crossed, overflow), cumulative over all symbols
            ever tracked.
        gaps: Diff-chain gaps since start, cumulative.
    """

    books: int
    synced: int
    resyncing: int
    resyncs: int
    gaps: int


class BookSync:
    """One symbol's diff-depth sync state machine (module docstring).

    Args:
        symbol: Venue symbol (``BTCUSDT``).
        request_snapshot: Called with the symbol when a snapshot is needed now.
        max_levels: Levels kept per side (farther ones are trimmed).
        max_buffered_diffs: Diffs buffered while waiting; overflow restarts the sync.

    Attributes:
        book: The local book; only meaningful while :attr:`synced`.
        synced: True while the book follows the stream.
        awaiting_snapshot: A snapshot was requested and has not arrived.
        snapshot_due: The next snapshot request is held back (stale snapshot) until the owner
            calls :meth:`request` (see :class:`BookKeeper`).
        applied: Diffs applied to the book.
        resyncs, gaps, crossed, stale_snapshots: Counters, see :class:`engine.models.BookInfo`.
        overflows: Buffer overflows (each also counted in ``resyncs``).
        dropped_before_snapshot: Buffered diffs dropped as older than a snapshot (step 4).
        ignored_snapshots: Snapshots that arrived while none was awaited.
        snapshot_failures: Failed snapshot requests reported by the fetcher.
        last_reason: Why the latest resync started, or why the sync is still waiting.
    """

    __slots__ = (
        "_bridge_id",
        "_buffer",
        "_request",
        "applied",
        "awaiting_snapshot",
        "book",
        "crossed",
        "dropped_before_snapshot",
        "gaps",
        "ignored_snapshots",
        "last_reason",
        "max_buffered_diffs",
        "overflows",
        "resyncs",
        "snapshot_due",
        "snapshot_failures",
        "stale_snapshots",
        "symbol",
        "synced",
    )

    def __init__(
        self,
        symbol: str,
        request_snapshot: Callable[[str], object],
        *,
        max_levels: int = 1000,
        max_buffered_diffs: int = 2000,
    ) -> None:
        self.symbol = symbol
        self.book = OrderBook(symbol, max_levels)
        self.max_buffered_diffs = max_buffered_diffs
        self._request = request_snapshot
        self._buffer: deque[DepthDiff] = deque()
        # lastUpdateId of a snapshot already loaded into the book, waiting for the diff that
        # brackets it (None: no snapshot loaded).
        self._bridge_id: int | None = None
        self.synced = False
        self.awaiting_snapshot = False
        self.snapshot_due = False
        self.applied = 0
        self.resyncs = 0
        self.gaps = 0
        self.crossed = 0
        self.stale_snapshots = 0
        self.overflows = 0
        self.dropped_before_snapshot = 0
        self.ignored_snapshots = 0
        self.snapshot_failures = 0
        self.last_reason = ""

    # -- inputs ----------------------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> bool:
        """Take one diff of this symbol.

        Returns:
            True if the book changed in a way readers should see (a diff applied while
            synced, or the sync just completed); False if the diff was only buffered or the
            book just left sync.
        """
        if self.synced:
            book = self.book
            if diff.prev_final_update_id != book.update_id:
                self.gaps += 1
                self._resync(
                    f"gap: pu {diff.prev_final_update_id} != previous u {book.update_id}", diff
                )
                return False
            book.apply(diff.bids, diff.asks, diff.final_update_id)
            self.applied += 1
            if book.crossed():
                self._on_crossed(diff)
                return False
            return True
        if self._bridge_id is not None:
            return self._bridge(diff)
        self._buffer.append(diff)
        if not self.awaiting_snapshot and not self.snapshot_due:
            # First diff of a fresh sync: the snapshot is asked for now, so it is newer than
            # the start of the buffer.
            self.request()
        elif len(self._buffer) > self.max_buffered_diffs:
            self.overflows += 1
            self._resync(f"buffer overflow: more than {self.max_buffered_diffs} diffs", diff)
        return False

    def on_snapshot(self, snap: DepthSnapshot) -> bool:
        """Take the REST snapshot requested for this symbol.

        Returns:
            True if the book is synced afterwards.
        """
        if not self.awaiting_snapshot:
            self.ignored_snapshots += 1
            logger.info(
                "%s: depth snapshot %d ignored (none awaited)", self.symbol, snap.last_update_id
            )
            return False
        self.awaiting_snapshot = False
        last_id = snap.last_update_id
        buffer = self._buffer
        # Step 4: drop events with u < lastUpdateId.
        while buffer and buffer[0].final_update_id < last_id:
            buffer.popleft()
            self.dropped_before_snapshot += 1
        if (
            buffer
            and buffer[0].first_update_id > last_id
            and buffer[0].prev_final_update_id != last_id
        ):
            # The snapshot predates the oldest diff kept: updates in between are unknown.
            self.stale_snapshots += 1
            self.book.clear()
            self.last_reason = (
                f"stale snapshot: lastUpdateId {last_id} < first buffered U "
                f"{buffer[0].first_update_id}"
            )
            logger.warning("%s: %s, requesting a newer one", self.symbol, self.last_reason)
            self.snapshot_due = True
            return False
        self.book.reset(snap.bids, snap.asks, last_id)
        self._bridge_id = last_id
        while buffer and not self.synced and self._bridge_id is not None:
            self._bridge(buffer.popleft())
        # Once synced, the rest of the buffer follows the pu chain like live diffs.
        while buffer and self.synced:
            self.on_diff(buffer.popleft())
        return self.synced

    def on_snapshot_failed(self, reason: str) -> None:
        """Record a failed snapshot request; the fetcher retries it, the state stays."""
        self.snapshot_failures += 1
        self.last_reason = f"snapshot failed: {reason}"

    def request(self) -> None:
        """Request a snapshot now (also fires a request held back by :attr:`snapshot_due`)."""
        self.snapshot_due = False
        self.awaiting_snapshot = True
        self._request(self.symbol)

    # -- reads -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Diffs buffered while waiting for a snapshot."""
        return len(self._buffer)

    def info(self) -> BookInfo:
        """Frozen view of this symbol's sync state and counters."""
        return BookInfo(
            state=SYNCED if self.synced else RESYNCING,
            resyncs=self.resyncs,
            gaps=self.gaps,
            crossed=self.crossed,
            stale_snapshots=self.stale_snapshots,
            last_reason=self.last_reason,
            update_id=self.book.update_id if self.synced else 0,
            bid_levels=self.book.bid_levels,
            ask_levels=self.book.ask_levels,
        )

    # -- internals -------------------------------------------------------------------------

    def _bridge(self, diff: DepthDiff) -> bool:
        """Step 5 on a snapshot already in the book: look for the bracketing diff."""
        last_id = self._bridge_id
        assert last_id is not None
        if diff.final_update_id < last_id:
            self.dropped_before_snapshot += 1
            return False
        if diff.first_update_id > last_id and diff.prev_final_update_id != last_id:
            # Diffs after the snapshot's id were missed: the snapshot cannot be bridged.
            self.stale_snapshots += 1
            self._bridge_id = None
            self.book.clear()
            self._buffer.appendleft(diff)
            self.last_reason = (
                f"stale snapshot: lastUpdateId {last_id} < first diff U {diff.first_update_id}"
            )
            logger.warning("%s: %s, requesting a newer one", self.symbol, self.last_reason)
            self.snapshot_due = True
            return False
        self._bridge_id = None
        book = self.book
        book.apply(diff.bids, diff.asks, diff.final_update_id)
        self.applied += 1
        if book.crossed():
            self._on_crossed(diff)
            return False
        self.synced = True
        return True

    def _on_crossed(self, diff: DepthDiff) -> None:
        self.crossed += 1
        bid, ask = self.book.best_bid(), self.book.best_ask()
        self._resync(f"crossed book after u {diff.final_update_id}: bid {bid} >= ask {ask}", None)

    def _resync(self, reason: str, keep: DepthDiff | None) -> None:
        """Restart the procedure; ``keep`` becomes the first diff of the new buffer."""
        self.resyncs += 1
        self.synced = False
        self._bridge_id = None
        self.last_reason = reason
        self.book.clear()
        self._buffer.clear()
        if keep is not None:
            self._buffer.append(keep)
        logger.warning("%s: resync #%d: %s", self.symbol, self.resyncs, reason)
        if not self.awaiting_snapshot:
            # An already pending request is kept: its snapshot is judged against the new
            # buffer and re-requested if it turns out stale.
            self.request()


class BookKeeper:
    """Owner of every tracked symbol's :class:`BookSync`.

    Args:
        config: Book settings (``max_levels``, ``max_buffered_diffs``, ``resync_delay_s``).
        request_snapshot: Called with a symbol whenever its snapshot is needed (normally
            :meth:`feeds.snapshots.SnapshotFetcher.request`). Must not block.
        clock: Current time, ms UTC (the stale-snapshot re-request delay is measured on it).

    Change tracking: every change to a book bumps a global :attr:`version` and stamps the
    symbol with it; :meth:`changed_since` lists the symbols stamped after a given version, in
    O(symbols changed), so features are recomputed only for books that moved.
    """

    def __init__(
        self,
        config: BookConfig,
        request_snapshot: Callable[[str], object],
        clock: Callable[[], int],
    ) -> None:
        self.config = config
        self._request_snapshot = request_snapshot
        self._clock = clock
        self._syncs: dict[str, BookSync] = {}
        self._versions: dict[str, int] = {}  # symbol → version of its last change, oldest first
        self._due: dict[str, int] = {}  # symbol → ms when a held-back snapshot request is due
        self._synced_count = 0
        self._resyncs = 0
        self._gaps = 0
        self.version = 0
        """Global change counter (see :meth:`changed_since`)."""
        self.untracked_diffs = 0
        """Diffs dropped because their symbol is not tracked."""
        self.untracked_snapshots = 0
        """Snapshots dropped because their symbol is not tracked."""
        self._warned_untracked: set[str] = set()

    # -- membership ------------------------------------------------------------------------

    def track(self, symbol: str) -> None:
        """Keep a book for ``symbol``; its snapshot is requested on its first diff."""
        symbol = symbol.upper()
        if symbol in self._syncs:
            return
        self._syncs[symbol] = BookSync(
            symbol,
            self._request_snapshot,
            max_levels=self.config.max_levels,
            max_buffered_diffs=self.config.max_buffered_diffs,
        )
        self._warned_untracked.discard(symbol)

    def untrack(self, symbol: str) -> None:
        """Drop ``symbol``'s book; later diffs and snapshots for it are counted and dropped."""
        symbol = symbol.upper()
        sync = self._syncs.pop(symbol, None)
        if sync is None:
            return
        if sync.synced:
            self._synced_count -= 1
        self._versions.pop(symbol, None)
        self._due.pop(symbol, None)

    def tracked(self) -> frozenset[str]:
        """Symbols with a book."""
        return frozenset(self._syncs)

    # -- inputs ----------------------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> None:
        """Route one diff to its symbol's sync (dropped and counted if untracked)."""
        sync = self._syncs.get(diff.symbol)
        if sync is None:
            self._untracked("diff", diff.symbol)
            return
        was_synced, resyncs, gaps = sync.synced, sync.resyncs, sync.gaps
        changed = sync.on_diff(diff)
        if sync.resyncs != resyncs:
            self._resyncs += sync.resyncs - resyncs
            self._gaps += sync.gaps - gaps
        self._settle(sync, was_synced, changed)
        if sync.snapshot_due:
            due = self._due.get(sync.symbol)
            if due is None:
                self._hold_request(sync)
            elif due <= self._clock():
                del self._due[sync.symbol]
                sync.request()
        elif self._due:
            self._due.pop(sync.symbol, None)

    def on_snapshot(self, snap: DepthSnapshot) -> None:
        """Feed a REST snapshot to its symbol's sync (ignored and counted if untracked)."""
        sync = self._syncs.get(snap.symbol)
        if sync is None:
            self._untracked("snapshot", snap.symbol)
            return
        was_synced, resyncs, gaps = sync.synced, sync.resyncs, sync.gaps
        synced = sync.on_snapshot(snap)
        self._resyncs += sync.resyncs - resyncs
        self._gaps += sync.gaps - gaps
        self._settle(sync, was_synced, synced)
        if sync.snapshot_due and sync.symbol not in self._due:
            self._hold_request(sync)

    def on_snapshot_failed(self, symbol: str, reason: str) -> None:
        """Note a failed snapshot request (the fetcher retries; the book stays resyncing)."""
        sync = self._syncs.get(symbol.upper())
        if sync is not None:
            sync.on_snapshot_failed(reason)
            self._touch(sync.symbol)

    def poll(self) -> None:
        """Fire held-back snapshot requests whose delay is over.

        A held-back request also fires on the symbol's first diff once due; owners should
        call this from a timer too, so a symbol whose stream went quiet still gets its
        snapshot. Cost: O(symbols held back).
        """
        if not self._due:
            return
        now = self._clock()
        for symbol, due in list(self._due.items()):
            if due <= now:
                del self._due[symbol]
                sync = self._syncs.get(symbol)
                if sync is not None and sync.snapshot_due:
                    sync.request()

    # -- reads -----------------------------------------------------------------------------

    def book(self, symbol: str) -> OrderBook | None:
        """``symbol``'s book while it is synced, else ``None`` (never a half-synced book)."""
        sync = self._syncs.get(symbol.upper())
        return sync.book if sync is not None and sync.synced else None

    def sync(self, symbol: str) -> BookSync | None:
        """``symbol``'s sync state machine (detailed counters), ``None`` if untracked."""
        return self._syncs.get(symbol.upper())

    def info(self, symbol: str) -> BookInfo:
        """Sync state of ``symbol``; ``BookInfo(state="none")`` if it has no book."""
        sync = self._syncs.get(symbol.upper())
        return sync.info() if sync is not None else BookInfo(state=NONE)

    def totals(self) -> BookTotals:
        """Counts over all books (O(1))."""
        books = len(self._syncs)
        return BookTotals(
            books=books,
            synced=self._synced_count,
            resyncing=books - self._synced_count,
            resyncs=self._resyncs,
            gaps=self._gaps,
        )

    def version_of(self, symbol: str) -> int:
        """Version stamped on ``symbol``'s last change, 0 if none."""
        return self._versions.get(symbol.upper(), 0)

    def changed_since(self, version: int) -> list[str]:
        """Symbols whose book or sync state changed after ``version``, most recent first."""
        out = []
        for symbol in reversed(self._versions):
            if self._versions[symbol] <= version:
                break
            out.append(symbol)
        return out

    # -- internals -------------------------------------------------------------------------

    def _settle(self, sync: BookSync, was_synced: bool, changed: bool) -> None:
        if sync.synced != was_synced:
            self._synced_count += 1 if sync.synced else -1
            self._touch(sync.symbol)
        elif changed:
            self._touch(sync.symbol)

    def _touch(self, symbol: str) -> None:
        self.version += 1
        versions = self._versions
        # Re-insert so the dict stays ordered by version (changed_since walks it backwards).
        versions.pop(symbol, None)
        versions[symbol] = self.version

    def _hold_request(self, sync: BookSync) -> None:
        delay_ms = round(self.config.resync_delay_s * 1000)
        if delay_ms <= 0:
            sync.request()
            return
        self._due[sync.symbol] = self._clock() + delay_ms
        self._touch(sync.symbol)

    def _untracked(self, what: str, symbol: str) -> None:
        if what == "diff":
            self.untracked_diffs += 1
        else:
            self.untracked_snapshots += 1
        if symbol not in self._warned_untracked and len(self._warned_untracked) < 1000:
            self._warned_untracked.add(symbol)
            logger.info("%s for untracked symbol %s dropped (counted from now on)", what, symbol)
