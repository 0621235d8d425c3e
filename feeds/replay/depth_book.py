"""The replay exchange's own order books: recorded REST snapshot + every recorded diff.

The loopback server plays Binance, so ``GET /fapi/v1/depth`` must answer with the book *as the
exchange holds it now*, not with a snapshot recorded minutes earlier. :class:`ReferenceBook`
keeps that book per symbol, in plain dicts keyed by price (deliberately independent of the
client's ``feeds/orderbook.py``: a bug shared by both sides would hide itself in tests):

* it starts from the symbol's first recorded snapshot (``lastUpdateId``, levels best first);
* every recorded ``depthUpdate`` the replay timeline passes is applied, whether or not a
  client received it (a frame lost in transit still happened on the exchange), following the
  futures rules (FEEDS.md §1.6): drop ``u`` ≤ the book's id; the first diff after a snapshot
  must bracket it (``U`` ≤ id ≤ ``u``), later ones chain on ``pu`` == id; quantities are
  absolute and 0 removes the level;
* a diff that does not chain (separate sessions in one capture folder) re-bases the book on
  the next recorded snapshot whose ``lastUpdateId`` ≥ the diff's ``U``; without one the book
  stays as last known, and the gap is counted and logged.

The answer (:meth:`ReferenceBook.body`) has ``lastUpdateId`` = ``u`` of the last diff applied
(the snapshot's id before any), ``E``/``T`` of that diff, and levels best first, cut to
``limit``, in the recorded decimal text.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from typing import Any

import msgspec

from feeds.replay.captures import DepthRecord

logger = logging.getLogger(__name__)

Level = tuple[str, str]
"""(price text, quantity text) exactly as Binance wrote them."""


class SnapshotBody(msgspec.Struct):
    """A recorded ``GET /fapi/v1/depth`` body (levels as Binance's decimal text)."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]
    E: int = 0
    T: int = 0


class DiffBody(msgspec.Struct):
    """A recorded ``depthUpdate`` payload: ``U`` first, ``u`` final, ``pu`` previous final id."""

    U: int
    u: int
    pu: int
    b: list[Level]
    a: list[Level]
    E: int = 0
    T: int = 0


_snapshot = msgspec.json.Decoder(SnapshotBody)
_diff = msgspec.json.Decoder(DiffBody)


def _levels(side: Iterable[Level]) -> dict[float, Level]:
    return {float(price): (price, qty) for price, qty in side if float(qty) != 0.0}


class ReferenceBook:
    """One symbol's order book as the replay exchange holds it (module docstring).

    Args:
        symbol: Venue symbol, upper case.
        snapshots: Recorded ``GET /fapi/v1/depth`` bodies of this symbol (any order, ≥ 1).

    Attributes:
        symbol: Venue symbol.
        update_id: ``lastUpdateId`` of the current state.
        applied: Diffs applied so far.
        stale: Diffs dropped because the book already included them (``u`` ≤ id).
        gaps: Diffs that did not chain and had no recorded snapshot to re-base on.
        rebased: Times the book was re-based on a later recorded snapshot.

    Raises:
        ValueError: no snapshots.
    """

    def __init__(self, symbol: str, snapshots: Iterable[SnapshotBody]) -> None:
        self.symbol = symbol
        self._snapshots = sorted(snapshots, key=lambda s: s.lastUpdateId)
        if not self._snapshots:
            raise ValueError(f"{symbol}: a reference book needs a recorded snapshot")
        self.applied = 0
        self.stale = 0
        self.gaps = 0
        self.rebased = 0
        self._bids: dict[float, Level] = {}
        self._asks: dict[float, Level] = {}
        self.update_id = 0
        self._event_ms = 0
        self._trade_ms = 0
        self._fresh = True  # no diff applied since the last snapshot
        self._next = 0  # index of the next snapshot not adopted yet
        self._adopt(0)

    @property
    def first_snapshot_id(self) -> int:
        """``lastUpdateId`` of the oldest recorded snapshot."""
        return self._snapshots[0].lastUpdateId

    def _adopt(self, index: int) -> None:
        snap = self._snapshots[index]
        self._bids = _levels(snap.bids)
        self._asks = _levels(snap.asks)
        self.update_id = snap.lastUpdateId
        self._event_ms = snap.E
        self._trade_ms = snap.T
        self._fresh = True
        self._next = index + 1

    def apply(self, diff: DiffBody) -> None:
        """Apply one recorded ``depthUpdate`` (rules in the module docstring)."""
        if diff.u <= self.update_id:
            self.stale += 1
            return
        chained = diff.pu == self.update_id or (self._fresh and self.update_id >= diff.U)
        if not chained:
            index = next(
                (
                    i
                    for i in range(self._next, len(self._snapshots))
                    if self._snapshots[i].lastUpdateId >= diff.U
                ),
                None,
            )
            if index is None:
                self.gaps += 1
                if self.gaps == 1 or self.gaps % 1000 == 0:
                    logger.warning(
                        "replay %s: depth diff U=%d pu=%d does not follow book id %d and no "
                        "later snapshot was recorded; %d such diff(s) ignored",
                        self.symbol,
                        diff.U,
                        diff.pu,
                        self.update_id,
                        self.gaps,
                    )
                return
            self._adopt(index)
            self.rebased += 1
            if diff.u <= self.update_id:
                self.stale += 1
                return
        for side, levels in ((self._bids, diff.b), (self._asks, diff.a)):
            for price, qty in levels:
                key = float(price)
                if float(qty) == 0.0:
                    side.pop(key, None)  # removing an unknown level is normal (§1.6)
                else:
                    side[key] = (price, qty)
        self.update_id = diff.u
        self._event_ms = diff.E
        self._trade_ms = diff.T
        self._fresh = False
        self.applied += 1

    def body(self, limit: int) -> dict[str, Any]:
        """``GET /fapi/v1/depth`` body of the current state, ``limit`` levels per side."""
        bid_keys = heapq.nlargest(limit, self._bids)
        ask_keys = heapq.nsmallest(limit, self._asks)
        return {
            "lastUpdateId": self.update_id,
            "E": self._event_ms,
            "T": self._trade_ms,
            "bids": [list(self._bids[k]) for k in bid_keys],
            "asks": [list(self._asks[k]) for k in ask_keys],
        }


class DepthBooks:
    """Reference books of every symbol with a recorded snapshot and a recorded diff stream.

    Args:
        snapshots: Recorded depth snapshots (any symbols, any order).
        diff_symbols: Symbols (upper case) whose diff-depth stream is in the capture; only
            these get a book (a snapshot alone stays a recorded snapshot).

    Attributes:
        malformed: Snapshots or diffs that could not be decoded (counted and logged).
    """

    def __init__(self, snapshots: Iterable[DepthRecord], diff_symbols: Iterable[str]) -> None:
        wanted = set(diff_symbols)
        by_symbol: dict[str, list[SnapshotBody]] = {}
        self.malformed = 0
        for record in snapshots:
            if record.symbol not in wanted:
                continue
            try:
                by_symbol.setdefault(record.symbol, []).append(_snapshot.decode(record.body))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._bad(f"depth snapshot of {record.symbol} at {record.recv_ms}", exc)
        self._books = {sym: ReferenceBook(sym, snaps) for sym, snaps in by_symbol.items() if snaps}

    def _bad(self, what: str, exc: Exception) -> None:
        self.malformed += 1
        if self.malformed == 1 or self.malformed % 100 == 0:
            logger.warning("replay: %s not usable (%s); %d so far", what, exc, self.malformed)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._books

    def book(self, symbol: str) -> ReferenceBook | None:
        """The reference book of ``symbol`` (upper case), ``None`` if it has none."""
        return self._books.get(symbol)

    def apply(self, symbol: str, data: bytes) -> None:
        """Apply one recorded ``depthUpdate`` payload (the frame's ``data`` JSON) to
        ``symbol``'s book; symbols without a book are ignored."""
        book = self._books.get(symbol)
        if book is None:
            return
        try:
            diff = _diff.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad(f"depth diff of {symbol}", exc)
            return
        book.apply(diff)

    def body(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """Current ``GET /fapi/v1/depth`` body of ``symbol``, ``None`` if it has no book."""
        book = self._books.get(symbol)
        return None if book is None else book.body(limit)


__all__ = ["DepthBooks", "DiffBody", "ReferenceBook", "SnapshotBody"]
