"""Order book structure: diffs applied per second, flat sorted list vs. sortedcontainers.

``feeds.orderbook.OrderBook`` keeps each side as a dict plus a plain sorted key list
(:mod:`bisect`). The peer is the same book on ``sortedcontainers.SortedDict`` (the well-kept
library the design started from), applied to the very same decoded diffs of the recorded
Binance sessions, trimmed to 1000 levels, from the recorded snapshot on. Both books must end
identical (all levels), so only a correct ratio is printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sortedcontainers import SortedDict

from bench.depth import load_sessions
from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.events import DepthDiff, DepthSnapshot, PriceLevel
from feeds.orderbook import OrderBook

REPEAT = 3
LEVELS = 1000


class SortedDictBook:
    """The same book on ``SortedDict`` (bids keyed by negated price), for comparison."""

    def __init__(self, max_levels: int) -> None:
        self.max_levels = max_levels
        self.bid_side: SortedDict = SortedDict()
        self.ask_side: SortedDict = SortedDict()

    def reset(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], _: int) -> None:
        self.bid_side = SortedDict({-p: q for p, q in bids if q > 0})
        self.ask_side = SortedDict({p: q for p, q in asks if q > 0})
        self._trim(self.bid_side)
        self._trim(self.ask_side)

    def apply(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], _: int) -> None:
        for side, levels in ((self.bid_side, ((-p, q) for p, q in bids)),
                             (self.ask_side, asks)):
            for key, size in levels:
                if size > 0:
                    side[key] = size
                else:
                    side.pop(key, None)
            self._trim(side)

    def _trim(self, side: SortedDict) -> None:
        for _ in range(len(side) - self.max_levels):
            side.popitem()

    def bids(self) -> list[PriceLevel]:
        return [(-k, v) for k, v in self.bid_side.items()]

    def asks(self) -> list[PriceLevel]:
        return list(self.ask_side.items())


Work = list[tuple[DepthSnapshot, list[DepthDiff]]]


def _work() -> dict[str, Work]:
    """Per session: each symbol's snapshot and the diffs from its bridging diff on."""
    decoder = BinanceFrameDecoder()
    out: dict[str, Work] = {}
    for name, session in load_sessions().items():
        work: Work = []
        diffs: dict[str, list[DepthDiff]] = {}
        for raw in session["frames"]:
            for event in decoder.decode_frame(raw, 0)[1]:
                if isinstance(event, DepthDiff):
                    diffs.setdefault(event.symbol, []).append(event)
        for symbol, body in session["snapshots"].items():
            snap = decode_depth_snapshot(symbol, body)
            mine = [d for d in diffs[symbol] if d.final_update_id >= snap.last_update_id]
            work.append((snap, mine))
        out[name] = work
    return out


def _new(kind: str) -> OrderBook | SortedDictBook:
    return OrderBook("X", LEVELS) if kind == "list" else SortedDictBook(LEVELS)


def _run(kind: str, work: Work) -> tuple[float, list[OrderBook | SortedDictBook]]:
    best: float = float("inf")
    books: list[OrderBook | SortedDictBook] = []
    for _ in range(REPEAT):
        books = [_new(kind) for _ in work]
        started = time.perf_counter()
        for book, (snap, diffs) in zip(books, work, strict=True):
            book.reset(snap.bids, snap.asks, snap.last_update_id)
            for diff in diffs:
                book.apply(diff.bids, diff.asks, diff.final_update_id)
        best = min(best, time.perf_counter() - started)
    return best, books


def main() -> None:
    print(f"orderbook: diffs applied per second, best of {REPEAT} (structure only, no decode)")
    for name, work in _work().items():
        n = sum(len(diffs) for _, diffs in work)
        ours, mine = _run("list", work)
        theirs, peers = _run("sorted", work)
        for a, b in zip(mine, peers, strict=True):
            assert isinstance(a, OrderBook) and isinstance(b, SortedDictBook)
            if a.bids() != b.bids() or a.asks() != b.asks():
                raise SystemExit(f"{name}: books differ")
        print(
            f"  {name:<16} {n:7,} diffs  list+bisect {n / ours:10,.0f}/s  "
            f"SortedDict {n / theirs:10,.0f}/s  list+bisect is {theirs / ours:.2f}x"
        )


if __name__ == "__main__":
    main()
