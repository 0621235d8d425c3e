"""Mark price, funding, open interest and liquidations of one symbol (``Derivatives``).

* Premium: ``(mark - index) / index`` in basis points (the quantity Binance's funding
  formula averages, "Introduction to Binance Futures Funding Rates").
* Open interest change over a window: ``OI_latest / OI_then - 1`` where ``OI_then`` is the
  latest poll at least ``window · (1 - oi_window_tolerance)`` before the latest poll; a window
  the poll history does not reach back to is left out.
* Divergence over ``divergence_window``: open interest up by at least ``divergence_min_oi``
  while the price fell by at least ``divergence_min_price`` is ``oi_up_price_down`` (new
  shorts pressing); open interest down while the price rose is ``oi_down_price_up`` (a rally
  on closing shorts). The price change is measured the same way as the OI change on the
  per-second price samples fed to :meth:`DerivativesTracker.on_price`.
* Liquidations come from ``forceOrder``, which Binance samples (at most one order per symbol
  per second), so the notional per window is a lower bound. Order side SELL liquidates a long.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from engine.micro.config import MicroConfig
from engine.models import Derivatives, LiquidationPrint
from feeds.events import Liquidation, MarkPrice, OpenInterest
from feeds.intervals import INTERVAL_MS

logger = logging.getLogger(__name__)

PRICE_SAMPLE_MS = 1_000
"""At most one price sample per this many ms is kept for the divergence."""
LIQUIDATION_CAP = 5_000
"""Liquidation prints kept at most within the longest window (sampled stream: ≤ 1/s)."""


def _change_over(history: deque[tuple[int, float]], window: int, tolerance: float) -> float | None:
    """``latest / then - 1`` over ``window`` ms of a (time, value) history, oldest first."""
    if len(history) < 2:
        return None
    latest_t, latest = history[-1]
    cutoff = latest_t - window * (1 - tolerance)
    then = None
    # Oldest first: histories are trimmed to about their window, so the match is near the left.
    for t, value in history:
        if t > cutoff:
            break
        then = value
    if then is None or then <= 0:
        return None
    return latest / then - 1


class DerivativesTracker:
    """Derivatives state of one symbol, fed by events; :meth:`view` reads it.

    Args:
        cfg: Windows, divergence thresholds and how many prints to keep.

    Attributes:
        rejected: Inputs rejected as malformed (non-finite or non-positive values).
    """

    def __init__(self, cfg: MicroConfig) -> None:
        self._cfg = cfg
        self._mark: MarkPrice | None = None
        self._oi: deque[tuple[int, float]] = deque(maxlen=cfg.oi_history_max)
        self._prices: deque[tuple[int, float]] = deque()
        self._liqs: deque[LiquidationPrint] = deque(maxlen=LIQUIDATION_CAP)
        self._liq_windows = {code: INTERVAL_MS[code] for code in cfg.liquidation_windows}
        self._liq_longest = max(self._liq_windows.values())
        self._divergence_ms = INTERVAL_MS[cfg.divergence_window]
        self._time = 0
        self.rejected = 0

    def _reject(self, what: str) -> None:
        self.rejected += 1
        if self.rejected <= 5 or self.rejected % 1000 == 0:
            logger.warning("%s rejected; %d so far", what, self.rejected)

    def _touch(self, t: int) -> None:
        self._time = max(self._time, t)

    def on_mark(self, event: MarkPrice) -> None:
        """Latest mark price, index price and funding."""
        if not (math.isfinite(event.mark_price) and math.isfinite(event.index_price)):
            self._reject(f"{event.symbol}: mark price {event.mark_price!r}")
            return
        self._mark = event
        self._touch(event.exchange_time)

    def on_liquidation(self, event: Liquidation) -> LiquidationPrint | None:
        """Add one sampled liquidation; the print made of it (``None`` if rejected)."""
        price = event.avg_price if event.avg_price > 0 else event.price
        if not (math.isfinite(price) and math.isfinite(event.quantity)) or price <= 0 or (
            event.quantity <= 0
        ) or event.side not in ("BUY", "SELL"):
            self._reject(f"{event.symbol}: liquidation {event.side} {event.quantity}@{price}")
            return None
        t = event.trade_time or event.exchange_time
        lp = LiquidationPrint(
            time=t,
            side="long" if event.side == "SELL" else "short",
            price=price,
            quantity=event.quantity,
            notional=price * event.quantity,
        )
        self._liqs.append(lp)
        self._touch(t)
        while self._liqs and self._liqs[0].time <= t - self._liq_longest:
            self._liqs.popleft()
        return lp

    def on_open_interest(self, event: OpenInterest) -> None:
        """Add one open interest poll (repeats of the latest reading's time are ignored)."""
        if not math.isfinite(event.open_interest) or event.open_interest < 0:
            self._reject(f"{event.symbol}: open interest {event.open_interest!r}")
            return
        if self._oi and event.time <= self._oi[-1][0]:
            return  # a repeated or out-of-order poll adds nothing
        self._oi.append((event.time, event.open_interest))
        self._touch(event.time)

    def on_price(self, price: float, time: int) -> None:
        """A traded (or mark) price at ``time`` ms UTC, for the divergence.

        Prices are kept per :data:`PRICE_SAMPLE_MS` step as (step end time, the step's last
        price); a price for an older step than the latest is ignored.
        """
        if not math.isfinite(price) or price <= 0:
            self._reject(f"price {price!r}")
            return
        prices = self._prices
        end = time - time % PRICE_SAMPLE_MS + PRICE_SAMPLE_MS - 1
        if prices and end <= prices[-1][0]:
            if end == prices[-1][0]:
                prices[-1] = (end, price)
            return
        prices.append((end, price))
        # Keep one sample older than the window so the window stays covered.
        while len(prices) > 2 and prices[1][0] <= end - self._divergence_ms:
            prices.popleft()

    def oi_change(self) -> dict[str, float]:
        """Window → open interest change (fraction), for the windows the polls cover."""
        out: dict[str, float] = {}
        for code in self._cfg.oi_windows:
            change = _change_over(self._oi, INTERVAL_MS[code], self._cfg.oi_window_tolerance)
            if change is not None:
                out[code] = change
        return out

    def divergence(self) -> str:
        """``oi_up_price_down``, ``oi_down_price_up`` or empty (see the module docstring)."""
        cfg = self._cfg
        oi = _change_over(self._oi, self._divergence_ms, cfg.oi_window_tolerance)
        px = _change_over(self._prices, self._divergence_ms, cfg.oi_window_tolerance)
        if oi is None or px is None:
            return ""
        if oi >= cfg.divergence_min_oi and px <= -cfg.divergence_min_price:
            return "oi_up_price_down"
        if oi <= -cfg.divergence_min_oi and px >= cfg.divergence_min_price:
            return "oi_down_price_up"
        return ""

    def view(self, now: int) -> Derivatives:
        """Everything known at ``now`` (ms UTC).

        ``liquidation_notional`` keys are ``<window>:<side>`` (``1m:long``, ``1m:short``, ...
        for every configured liquidation window), summing prints with
        ``now - window < time <= now``. ``liquidations`` holds the latest
        ``liquidation_keep`` sampled prints within the longest window, newest last.
        """
        mark = self._mark
        liq_notional: dict[str, float] = {}
        for code, length in self._liq_windows.items():
            for side in ("long", "short"):
                liq_notional[f"{code}:{side}"] = 0.0
            for lp in self._liqs:
                if now - length < lp.time <= now:
                    liq_notional[f"{code}:{lp.side}"] += lp.notional
        recent = tuple(self._liqs)[-self._cfg.liquidation_keep :]
        premium = None
        if mark is not None and mark.index_price > 0:
            premium = (mark.mark_price - mark.index_price) / mark.index_price * 1e4
        next_funding = mark.next_funding_time if mark is not None else 0
        return Derivatives(
            time=self._time,
            mark_price=mark.mark_price if mark is not None else None,
            index_price=mark.index_price if mark is not None else None,
            premium_bps=premium,
            funding_rate=mark.funding_rate if mark is not None else None,
            next_funding_time=next_funding,
            funding_in_ms=max(0, next_funding - now) if next_funding else None,
            open_interest=self._oi[-1][1] if self._oi else None,
            oi_change=self.oi_change(),
            oi_divergence=self.divergence(),
            liquidations=recent,
            liquidation_notional=liq_notional,
        )
