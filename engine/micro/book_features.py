"""Order book features: spread, depth per band, imbalance, walls, and liquidity flips.

All depth is in quote currency (``Σ price × size``). Only levels within the widest band are
read (``OrderBook.bids_down_to`` / ``asks_up_to``), so the cost per call is bounded by the
levels near the touch, not by the book's size.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np
import numpy.typing as npt

from engine.micro.config import MicroConfig, pct_band_key
from engine.models import BookFeatures, Wall
from feeds.events import PriceLevel
from feeds.orderbook import OrderBook


class BookError(ValueError):
    """The book cannot give features (a side is empty, or it is crossed)."""


FloatArray = npt.NDArray[np.float64]


def imbalance_of(bid: float, ask: float) -> float:
    """Book imbalance ``(bid - ask) / (bid + ask)`` in [-1, 1] (+1 all bids); 0 when both are 0.

    Args:
        bid: Bid depth, quote currency.
        ask: Ask depth, quote currency.
    """
    total = bid + ask
    return (bid - ask) / total if total > 0 else 0.0


class _Side:
    """One side's levels best first as arrays, with the running notional for band sums."""

    __slots__ = ("cum", "dist", "prices", "sizes")

    def __init__(self, levels: list[PriceLevel], mid: float) -> None:
        flat = itertools.chain.from_iterable(levels)
        arr = np.fromiter(flat, np.float64, count=2 * len(levels)).reshape(-1, 2)
        self.prices: FloatArray = arr[:, 0]
        self.sizes: FloatArray = arr[:, 1]
        self.cum: FloatArray = np.cumsum(self.prices * self.sizes)
        # Distance from the mid as a fraction; rises away from the touch on both sides.
        self.dist: FloatArray = np.abs(self.prices - mid) / mid

    def within(self, pct: float) -> int:
        """Levels within ``pct`` % of the mid (they are the first ones)."""
        return int(np.searchsorted(self.dist, pct / 100, side="right"))

    def depth(self, count: int) -> float:
        """Notional of the best ``count`` levels, quote currency."""
        return float(self.cum[count - 1]) if count > 0 else 0.0

    def walls(self, side: str, pct: float, mid: float, cfg: MicroConfig) -> list[Wall]:
        count = self.within(pct)
        if count < cfg.wall_min_levels:
            return []
        sizes = self.sizes[:count]
        median = float(np.median(sizes))
        if median <= 0:
            return []
        multiples = sizes / median
        found = np.flatnonzero(multiples >= cfg.wall_k)
        # Largest multiples first, only as many as are reported (a thin-level book can have
        # hundreds of qualifying levels).
        found = found[np.argsort(-multiples[found], kind="stable")][: cfg.wall_max]
        return [
            Wall(
                side=side,
                price=float(self.prices[i]),
                size=float(sizes[i]),
                notional=float(self.prices[i] * sizes[i]),
                distance_bps=float(self.dist[i] * 1e4),
                multiple=float(multiples[i]),
            )
            for i in found
        ]


def book_features(book: OrderBook, time: int, cfg: MicroConfig) -> BookFeatures:
    """Features of ``book`` now.

    Depth bands: ``top<N>`` sums the best N levels per side; a ``p%`` band sums the levels
    within ``p`` % of the mid (``|price - mid| / mid <= p / 100``). Imbalance is
    :func:`imbalance_of` of ``cfg.imbalance_band``. A wall is a level within
    ``cfg.wall_band_pct`` of the mid whose size is at least ``cfg.wall_k`` times the median
    level size of its side within that band (sides with fewer than ``cfg.wall_min_levels``
    levels there have none). A band wider than the book held (a 1000-level snapshot spans
    only ~0.3 % of a BTC book) sums what the book holds.

    Args:
        book: A synced book (read only).
        time: Time the features are for, ms UTC (the caller's clock: the book keeps no time).
        cfg: Bands and wall parameters.

    Returns:
        The features; ``walls`` largest multiple first, at most ``cfg.wall_max``.

    Raises:
        BookError: naming the symbol, if a side is empty or the book is crossed.
    """
    best_bid, best_ask = book.best_bid(), book.best_ask()
    if best_bid is None or best_ask is None:
        raise BookError(f"{book.symbol}: book has an empty side")
    bid_px, ask_px = best_bid[0], best_ask[0]
    if bid_px >= ask_px:
        raise BookError(f"{book.symbol}: book is crossed (bid {bid_px} >= ask {ask_px})")
    mid = (bid_px + ask_px) / 2
    widest = max(*cfg.depth_bands_pct, cfg.wall_band_pct)
    top = cfg.depth_top_levels
    # Read at least the top-N levels so that band is served from the same arrays.
    bid_levels = book.bids_down_to(mid * (1 - widest / 100))
    if len(bid_levels) < top:
        bid_levels = book.bids(top)
    ask_levels = book.asks_up_to(mid * (1 + widest / 100))
    if len(ask_levels) < top:
        ask_levels = book.asks(top)
    bids, asks = _Side(bid_levels, mid), _Side(ask_levels, mid)

    bid_depth = {cfg.top_key: bids.depth(min(top, len(bids.prices)))}
    ask_depth = {cfg.top_key: asks.depth(min(top, len(asks.prices)))}
    for pct in cfg.depth_bands_pct:
        key = pct_band_key(pct)
        bid_depth[key] = bids.depth(bids.within(pct))
        ask_depth[key] = asks.depth(asks.within(pct))

    band = cfg.imbalance_band
    walls = bids.walls("bid", cfg.wall_band_pct, mid, cfg) + asks.walls(
        "ask", cfg.wall_band_pct, mid, cfg
    )
    walls.sort(key=lambda w: w.multiple, reverse=True)
    return BookFeatures(
        time=time,
        best_bid=bid_px,
        best_ask=ask_px,
        mid=mid,
        spread_bps=(ask_px - bid_px) / mid * 1e4,
        bid_depth=bid_depth,
        ask_depth=ask_depth,
        imbalance=imbalance_of(bid_depth[band], ask_depth[band]),
        walls=tuple(walls[: cfg.wall_max]),
    )


class FlipEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The book's imbalance changed side (a liquidity flip).

    Attributes:
        time: Time of the reading that completed the flip, ms UTC.
        from_imbalance: Last qualifying imbalance on the old side, in [-1, 1].
        to_imbalance: The imbalance now, on the new side.
        depth: Bid + ask depth of the imbalance band now, quote currency.
    """

    time: int
    from_imbalance: float
    to_imbalance: float
    depth: float


class LiquidityFlip:
    """Detects liquidity flips in a symbol's successive :class:`BookFeatures`.

    A reading qualifies when ``|imbalance| >= cfg.flip_min_imbalance`` and the bid + ask
    depth of the imbalance band is at least ``cfg.flip_min_depth_quote``. The first
    qualifying reading sets the side; a later qualifying reading on the other side is a flip.
    Readings in between (weak or thin) neither flip nor reset the side, which gives the
    detector hysteresis: noise around 0 does not flip back and forth.
    """

    __slots__ = ("_cfg", "_last")

    def __init__(self, cfg: MicroConfig) -> None:
        self._cfg = cfg
        self._last: float | None = None

    @property
    def side(self) -> int:
        """+1 bid-heavy, -1 ask-heavy, 0 before the first qualifying reading."""
        if self._last is None:
            return 0
        return 1 if self._last > 0 else -1

    def update(self, features: BookFeatures) -> FlipEvent | None:
        """Feed one reading; the flip it completes, if any."""
        band = self._cfg.imbalance_band
        depth = features.bid_depth[band] + features.ask_depth[band]
        imb = features.imbalance
        if abs(imb) < self._cfg.flip_min_imbalance or depth < self._cfg.flip_min_depth_quote:
            return None
        previous = self._last
        self._last = imb
        if previous is None or (previous > 0) == (imb > 0):
            return None
        return FlipEvent(
            time=features.time, from_imbalance=previous, to_imbalance=imb, depth=depth
        )
