"""Taker trade flow of one symbol: volume by aggressor side, CVD, trade rate and sweeps.

The aggressor side comes from Binance's ``m`` flag: ``buyer_is_maker`` True means the taker
sold. Volumes are quote currency (``price × quantity``). CVD (cumulative volume delta) is
taker buy minus taker sell volume.

Windows are summed from time buckets of ``flow_bucket_ms``: a window of W ms at time ``now``
covers the W / bucket buckets ending with the one that holds ``now``, so memory is bounded
by the longest window over the bucket length, whatever the trade rate.

A sweep (after the usual order-flow definition of an aggressive order walking the book) is a
burst of same-side taker trades, each within ``sweep_window_ms`` of the burst's first trade,
that traded at least ``sweep_min_levels`` distinct prices or at least ``sweep_min_quote``
quote volume. A burst ends at the first trade of the other side or outside the window, or
when ``features`` is read after the window has passed; it yields at most one :class:`Sweep`.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from engine.micro.config import MicroConfig
from engine.models import FlowFeatures, Sweep
from feeds.events import Trade
from feeds.intervals import INTERVAL_MS

logger = logging.getLogger(__name__)

_MAX_BURST_PRICES = 1000
"""Distinct prices tracked per burst (far above any ``sweep_min_levels``), bounding memory."""


class _Bucket:
    __slots__ = ("buy", "count", "sell", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.buy = 0.0
        self.sell = 0.0
        self.count = 0


class _Burst:
    __slots__ = ("first", "last", "notional", "price_end", "price_start", "prices", "side",
                 "trades")

    def __init__(self, side: str, time: int, price: float) -> None:
        self.side = side
        self.first = time
        self.last = time
        self.notional = 0.0
        self.trades = 0
        self.price_start = price
        self.price_end = price
        self.prices: set[float] = set()

    def add(self, time: int, price: float, quote: float) -> None:
        self.last = time
        self.notional += quote
        self.trades += 1
        self.price_end = price
        if len(self.prices) < _MAX_BURST_PRICES:
            self.prices.add(price)


class TradeFlow:
    """Rolling taker flow of one symbol.

    Args:
        cfg: Windows, bucket length and sweep parameters.

    Attributes:
        rejected: Trades rejected as malformed (non-finite or non-positive price/quantity).
        late: Trades older than the newest bucket, counted into it (out-of-order delivery).
    """

    def __init__(self, cfg: MicroConfig) -> None:
        self._cfg = cfg
        self._windows = {code: INTERVAL_MS[code] for code in cfg.flow_windows}
        self._longest = max(self._windows.values())
        self._buckets: deque[_Bucket] = deque()
        self._burst: _Burst | None = None
        self._sweeps: deque[Sweep] = deque(maxlen=cfg.sweep_keep)
        self._cvd_total = 0.0
        self._cvd_series: deque[tuple[int, float]] = deque(maxlen=cfg.cvd_points)
        self._first_time: int | None = None
        self._last_time = 0
        self.rejected = 0
        self.late = 0

    @property
    def bucket_count(self) -> int:
        """Time buckets held (at most longest window / bucket length + 1)."""
        return len(self._buckets)

    @property
    def cvd_total(self) -> float:
        """Session CVD since the first trade, quote currency."""
        return self._cvd_total

    def on_trade(self, trade: Trade) -> Sweep | None:
        """Add one trade.

        Returns:
            The sweep this trade closed (the previous burst qualified), else ``None``.
        """
        price, qty, t = trade.price, trade.quantity, trade.trade_time
        if not (math.isfinite(price) and math.isfinite(qty) and price > 0 and qty > 0):
            self.rejected += 1
            if self.rejected <= 5 or self.rejected % 1000 == 0:
                logger.warning(
                    "%s: trade %d rejected (price %r, quantity %r); %d so far",
                    trade.symbol, trade.trade_id, price, qty, self.rejected,
                )
            return None
        quote = price * qty
        buy = not trade.buyer_is_maker
        bucket_ms = self._cfg.flow_bucket_ms
        start = t - t % bucket_ms
        if self._buckets and start < self._buckets[-1].start:
            self.late += 1
            bucket = self._buckets[-1]
        elif self._buckets and start == self._buckets[-1].start:
            bucket = self._buckets[-1]
        else:
            bucket = _Bucket(start)
            self._buckets.append(bucket)
        if buy:
            bucket.buy += quote
            self._cvd_total += quote
        else:
            bucket.sell += quote
            self._cvd_total -= quote
        bucket.count += 1
        if self._first_time is None:
            self._first_time = t
        self._last_time = max(self._last_time, t)
        self._sample_cvd(t)
        self._evict(t)
        return self._burst_add("buy" if buy else "sell", t, price, quote)

    def _sample_cvd(self, t: int) -> None:
        step = t // self._cfg.cvd_step_ms
        series = self._cvd_series
        if series and series[-1][0] >= step:
            series[-1] = (series[-1][0], self._cvd_total)
            return
        if series:
            # Steps without trades keep the previous value (bounded by the deque's maxlen).
            gap = min(step - series[-1][0] - 1, self._cfg.cvd_points)
            last = series[-1][1]
            for i in range(gap):
                series.append((step - gap + i, last))
        series.append((step, self._cvd_total))

    def _evict(self, now: int) -> None:
        horizon = now - self._longest
        while self._buckets and self._buckets[0].start + self._cfg.flow_bucket_ms <= horizon:
            self._buckets.popleft()

    def _burst_add(self, side: str, t: int, price: float, quote: float) -> Sweep | None:
        burst = self._burst
        closed = None
        window = self._cfg.sweep_window_ms
        if burst is not None and (burst.side != side or t - burst.first > window):
            closed = self._close_burst()
            burst = None
        if burst is None:
            burst = self._burst = _Burst(side, t, price)
        burst.add(t, price, quote)
        return closed

    def _close_burst(self) -> Sweep | None:
        burst, self._burst = self._burst, None
        if burst is None:
            return None
        if len(burst.prices) < self._cfg.sweep_min_levels and (
            burst.notional < self._cfg.sweep_min_quote
        ):
            return None
        sweep = Sweep(
            time=burst.last,
            side=burst.side,
            notional=burst.notional,
            levels=len(burst.prices),
            trades=burst.trades,
            price_start=burst.price_start,
            price_end=burst.price_end,
        )
        self._sweeps.append(sweep)
        return sweep

    def poll(self, now: int) -> Sweep | None:
        """Close the open burst if its window has passed by ``now``; the sweep it made."""
        burst = self._burst
        if burst is not None and now - burst.first > self._cfg.sweep_window_ms:
            return self._close_burst()
        return None

    def sweeps(self, since: int) -> tuple[Sweep, ...]:
        """Kept sweeps whose last trade is at or after ``since`` (ms UTC), newest last."""
        return tuple(s for s in self._sweeps if s.time >= since)

    def features(self, now: int) -> FlowFeatures | None:
        """Flow at ``now`` (ms UTC); ``None`` before the first trade.

        Windows end at ``max(now, latest trade time)``, so a local clock running behind the
        exchange's does not hide the newest trades. ``trade_rate`` is trades per second over
        the shortest window, divided by the part of it the session covers
        (``min(window, now - first trade)``, at least one second). ``sweeps`` are those within
        the longest window.
        """
        self.poll(now)
        if self._first_time is None:
            return None
        # A local clock behind the exchange's must not hide the newest trades.
        now = max(now, self._last_time)
        self._evict(now)
        bucket_ms = self._cfg.flow_bucket_ms
        now_start = now - now % bucket_ms
        buy: dict[str, float] = {}
        sell: dict[str, float] = {}
        cvd: dict[str, float] = {}
        counts: dict[str, int] = {}
        for code, length in self._windows.items():
            lowest = now_start - length + bucket_ms
            b = s = 0.0
            n = 0
            for bucket in reversed(self._buckets):
                if bucket.start < lowest:
                    break
                if bucket.start > now_start:
                    continue
                b += bucket.buy
                s += bucket.sell
                n += bucket.count
            buy[code], sell[code], cvd[code], counts[code] = b, s, b - s, n
        shortest = next(iter(self._windows))
        covered = min(self._windows[shortest], max(now - self._first_time, 1000))
        return FlowFeatures(
            time=self._last_time,
            taker_buy=buy,
            taker_sell=sell,
            cvd=cvd,
            trade_rate=counts[shortest] / (covered / 1000),
            sweeps=self.sweeps(now - self._longest),
            cvd_series=tuple(v for _, v in self._cvd_series),
        )
