"""A local L2 order book: price → size per side, with each side's prices kept sorted.

The book stores what the venue sends and nothing else: sizes are absolute (Binance diff depth,
FEEDS.md §1.6 step 7), size 0 removes a level, and removing a level the book does not hold is
normal. Each side is trimmed to ``max_levels`` after every change, dropping the levels farthest
from the touch: a REST snapshot covers at most 1000 levels, and levels beyond it are never
corrected by the stream (cryptofeed #604), so keeping them would show stale liquidity.

Structure: per side a ``dict`` (price → size) plus a plain sorted ``list`` of its keys kept
with :mod:`bisect`. For books of at most ~1000 levels, inserting into or deleting from a flat
list is a C ``memmove`` of a few KB, cheaper than ``sortedcontainers.SortedDict``'s
pure-Python bookkeeping; ``bench/orderbook.py`` measures both on the recorded Binance sessions
(the list is about 2x faster per diff there). Size changes of existing levels, most of every
diff, touch only the dict. Cost per level update: O(log n) compare + O(n) memmove on inserts
and removals, independent of how many books exist.

Prices in quote currency, sizes in base units.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable

from feeds.events import PriceLevel

DEFAULT_MAX_LEVELS = 1000
"""Levels kept per side (the deepest Binance REST snapshot)."""


class OrderBook:
    """One symbol's L2 book.

    Args:
        symbol: Venue symbol (``BTCUSDT``).
        max_levels: Levels kept per side; farther ones are trimmed.

    Raises:
        ValueError: if ``max_levels`` < 1.
    """

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "max_levels",
        "symbol",
        "update_id",
    )

    def __init__(self, symbol: str, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        if max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels}")
        self.symbol = symbol
        self.max_levels = max_levels
        # Bids are keyed by negated price so both key lists ascend away from the touch.
        self._bids: dict[float, float] = {}
        self._bid_keys: list[float] = []
        self._asks: dict[float, float] = {}
        self._ask_keys: list[float] = []
        self.update_id = 0
        """Final update id (``u`` / ``lastUpdateId``) the book reflects."""

    # -- writes --------------------------------------------------------------------------

    def reset(
        self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], update_id: int
    ) -> None:
        """Replace the whole book (a REST snapshot), trimmed to ``max_levels`` per side."""
        limit = self.max_levels
        bid_map = {-p: q for p, q in bids if q > 0}
        ask_map = {p: q for p, q in asks if q > 0}
        self._bid_keys = sorted(bid_map)[:limit]
        self._ask_keys = sorted(ask_map)[:limit]
        self._bids = {k: bid_map[k] for k in self._bid_keys}
        self._asks = {k: ask_map[k] for k in self._ask_keys}
        self.update_id = update_id

    def apply(
        self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], update_id: int
    ) -> None:
        """Apply absolute level sizes (a diff); size 0 removes the level."""
        _apply_side(self._bids, self._bid_keys, bids, self.max_levels, negate=True)
        _apply_side(self._asks, self._ask_keys, asks, self.max_levels, negate=False)
        self.update_id = update_id

    def clear(self) -> None:
        """Drop every level (before a resync's snapshot arrives)."""
        self._bids.clear()
        self._bid_keys.clear()
        self._asks.clear()
        self._ask_keys.clear()
        self.update_id = 0

    # -- reads ---------------------------------------------------------------------------

    @property
    def bid_levels(self) -> int:
        """Number of bid levels held."""
        return len(self._bid_keys)

    @property
    def ask_levels(self) -> int:
        """Number of ask levels held."""
        return len(self._ask_keys)

    def best_bid(self) -> PriceLevel | None:
        """Highest bid (price, size), ``None`` if the side is empty."""
        if not self._bid_keys:
            return None
        key = self._bid_keys[0]
        return -key, self._bids[key]

    def best_ask(self) -> PriceLevel | None:
        """Lowest ask (price, size), ``None`` if the side is empty."""
        if not self._ask_keys:
            return None
        key = self._ask_keys[0]
        return key, self._asks[key]

    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a corrupt book)."""
        if not self._bid_keys or not self._ask_keys:
            return False
        return -self._bid_keys[0] >= self._ask_keys[0]

    def mid(self) -> float | None:
        """Mid price ``(best bid + best ask) / 2``, quote currency; ``None`` if a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return (self._ask_keys[0] - self._bid_keys[0]) / 2

    def bids(self, n: int | None = None) -> list[PriceLevel]:
        """Up to ``n`` bids, best (highest) first; all when ``n`` is ``None``."""
        keys = self._bid_keys if n is None else self._bid_keys[:n]
        side = self._bids
        return [(-k, side[k]) for k in keys]

    def asks(self, n: int | None = None) -> list[PriceLevel]:
        """Up to ``n`` asks, best (lowest) first; all when ``n`` is ``None``."""
        keys = self._ask_keys if n is None else self._ask_keys[:n]
        side = self._asks
        return [(k, side[k]) for k in keys]

    def bids_down_to(self, price: float) -> list[PriceLevel]:
        """Bids at or above ``price``, best first."""
        keys = self._bid_keys
        side = self._bids
        return [(-k, side[k]) for k in keys[: bisect_right(keys, -price)]]

    def asks_up_to(self, price: float) -> list[PriceLevel]:
        """Asks at or below ``price``, best first."""
        keys = self._ask_keys
        side = self._asks
        return [(k, side[k]) for k in keys[: bisect_right(keys, price)]]

    def size_at(self, side: str, price: float) -> float:
        """Size at ``price`` on ``side`` (``"bid"`` or ``"ask"``), 0 if no level."""
        if side == "bid":
            return self._bids.get(-price, 0.0)
        if side == "ask":
            return self._asks.get(price, 0.0)
        raise ValueError(f"side must be 'bid' or 'ask', got {side!r}")


def _apply_side(
    side: dict[float, float],
    keys: list[float],
    levels: Iterable[PriceLevel],
    limit: int,
    *,
    negate: bool,
) -> None:
    """Apply ``(price, size)`` updates to one side, then trim it to ``limit`` levels.

    The loop is the hot path of every book (a 0 ms diff carries dozens of levels), so it
    stays flat and local, with the bid/ask difference (negated keys) hoisted out of it.
    """
    if negate:
        levels = [(-price, size) for price, size in levels]
    for key, size in levels:
        if key in side:
            if size > 0:
                side[key] = size
            else:
                del side[key]
                del keys[bisect_left(keys, key)]
        elif size > 0:
            # Even a level beyond the deepest kept one goes in: a removal later in this
            # diff may make room for it, and the trim below keeps the nearest ``limit``.
            side[key] = size
            insort(keys, key)
        # else: removing a level the book does not hold (normal, FEEDS.md §1.6).
    while len(keys) > limit:
        del side[keys.pop()]
