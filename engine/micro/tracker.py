"""Per-symbol microstructure tracker: the API the engine calls (events in, readings out).

Everything is synchronous and pure of IO; time is always passed in (ms UTC). Cost per event
is O(1) amortised; cost per :meth:`MicroTracker.evaluate` is bounded by the book levels within
the widest band plus the flow buckets of the longest window.

Momentum: the return ``last / then - 1`` over ``momentum_window_ms``: prices are kept per
:data:`MOMENTUM_SAMPLE_MS` step (the step's last price); ``then`` is the price of the latest step
that ends at or before ``now - window`` and ``last`` the latest price. Trade prices are used;
mark prices while trades do not cover the window; ``None`` when neither does.
"""

from __future__ import annotations

from collections import deque

import msgspec

from engine.micro.book_features import FlipEvent, LiquidityFlip, book_features
from engine.micro.config import MicroConfig
from engine.micro.derivs import DerivativesTracker
from engine.micro.flow import TradeFlow
from engine.micro.score import MicroSignalGate, micro_score
from engine.models import BookFeatures, Derivatives, FlowFeatures, MicroScore, Signal
from feeds.events import BookTicker, Liquidation, MarkPrice, OpenInterest, Trade
from feeds.orderbook import OrderBook

MOMENTUM_SAMPLE_MS = 100
"""At most one momentum price sample per this many ms."""


class MicroReading(msgspec.Struct, frozen=True, kw_only=True):
    """One evaluation of a symbol's microstructure.

    Attributes:
        symbol: Venue symbol.
        time: Evaluation time, ms UTC.
        features: Book features, ``None`` without a usable book (absent, one-sided, crossed).
        spread_bps: Spread in bps from the book, else from the latest book ticker, else
            ``None``.
        flow: Trade-flow features, ``None`` before any trade.
        derivatives: Mark, funding, open interest, liquidations.
        momentum: Return over the momentum window, fraction (``None`` without prices).
        score: Micro score, ``None`` without book features.
        signal: The signal this evaluation emitted, else ``None``.
        flip: The liquidity flip this evaluation detected, else ``None``.
        flash: ``liquidation`` or ``sweep`` when one happened since the previous evaluation
            (liquidation wins), else empty.
    """

    symbol: str
    time: int
    features: BookFeatures | None
    spread_bps: float | None
    flow: FlowFeatures | None
    derivatives: Derivatives
    momentum: float | None = None
    score: MicroScore | None = None
    signal: Signal | None = None
    flip: FlipEvent | None = None
    flash: str = ""


def _window_return(samples: deque[tuple[int, float]], now: int, window: int) -> float | None:
    """Return over ``window`` from (step, last price) samples, oldest first (module docstring)."""
    if not samples:
        return None
    last_step = (now - window) // MOMENTUM_SAMPLE_MS - 1
    then = None
    for step, price in samples:
        if step > last_step:
            break
        then = price
    if then is None:
        return None
    return samples[-1][1] / then - 1


class MicroTracker:
    """Microstructure state of one symbol.

    Args:
        symbol: Venue symbol.
        cfg: Micro configuration.
        gate: Signal gate; share one across symbols or leave ``None`` for a private one
            (cooldown and daily maximum are per symbol either way).
    """

    def __init__(
        self, symbol: str, cfg: MicroConfig | None = None, gate: MicroSignalGate | None = None
    ) -> None:
        self.symbol = symbol
        self.cfg = cfg if cfg is not None else MicroConfig()
        self.gate = gate if gate is not None else MicroSignalGate(self.cfg)
        self.flow = TradeFlow(self.cfg)
        self.derivs = DerivativesTracker(self.cfg)
        self._flip = LiquidityFlip(self.cfg)
        self._ticker: BookTicker | None = None
        self._trade_px: deque[tuple[int, float]] = deque()
        self._mark_px: deque[tuple[int, float]] = deque()
        self._sweep_flash = False
        self._liq_flash = False

    # -- events ----------------------------------------------------------------------------

    def _sample(self, samples: deque[tuple[int, float]], t: int, price: float) -> None:
        step = t // MOMENTUM_SAMPLE_MS
        if samples and step <= samples[-1][0]:
            if step == samples[-1][0]:
                samples[-1] = (step, price)
            return  # an older step's price arriving late changes nothing
        samples.append((step, price))
        # Keep the latest step that ends at or before the window start, so it stays covered.
        horizon = (t - self.cfg.momentum_window_ms) // MOMENTUM_SAMPLE_MS - 1
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()

    def on_trade(self, trade: Trade) -> None:
        """A trade (``@aggTrade`` or ``@trade``) of this symbol."""
        if self.flow.on_trade(trade) is not None:
            self._sweep_flash = True
        if trade.price > 0 and trade.quantity > 0:
            self.derivs.on_price(trade.price, trade.trade_time)
            self._sample(self._trade_px, trade.trade_time, trade.price)

    def on_book_ticker(self, ticker: BookTicker) -> None:
        """Best bid/ask, the spread fallback while no book is synced."""
        self._ticker = ticker

    def on_mark(self, mark: MarkPrice) -> None:
        """Mark price and funding."""
        self.derivs.on_mark(mark)
        if mark.mark_price > 0:
            self._sample(self._mark_px, mark.exchange_time, mark.mark_price)

    def on_liquidation(self, liquidation: Liquidation) -> None:
        """A sampled liquidation (``forceOrder``)."""
        if self.derivs.on_liquidation(liquidation) is not None:
            self._liq_flash = True

    def on_open_interest(self, oi: OpenInterest) -> None:
        """A polled open interest reading."""
        self.derivs.on_open_interest(oi)

    # -- reads -----------------------------------------------------------------------------

    def momentum(self, now: int) -> float | None:
        """Return over the momentum window at ``now`` (fraction), see the module docstring."""
        window = self.cfg.momentum_window_ms
        value = _window_return(self._trade_px, now, window)
        return value if value is not None else _window_return(self._mark_px, now, window)

    def active_signal(self, now: int) -> Signal | None:
        """The latest micro signal while it is within its cooldown."""
        return self.gate.active(self.symbol, now)

    def _ticker_spread(self) -> float | None:
        t = self._ticker
        if t is None or t.bid_price <= 0 or t.ask_price < t.bid_price:
            return None
        mid = (t.bid_price + t.ask_price) / 2
        return (t.ask_price - t.bid_price) / mid * 1e4

    def evaluate(
        self,
        book: OrderBook | None,
        now: int,
        *,
        atr: float | None,
        tick_size: float | None,
        btc_microtrend: float,
    ) -> MicroReading:
        """Features, score and (maybe) a new signal at ``now``.

        Args:
            book: The symbol's synced book, or ``None`` (not synced / not kept).
            now: Engine clock, ms UTC.
            atr: ATR of ``cfg.atr_timeframe``, quote currency, for ATR plans (or ``None``).
            tick_size: Price tick, quote currency, for plan rounding (or ``None``).
            btc_microtrend: BTC's momentum (``MicroTracker.momentum`` of BTCUSDT), fraction.

        Returns:
            The reading; ``signal`` is set only on the evaluation that emitted it.
        """
        features = None
        if book is not None and not book.crossed() and book.best_bid() and book.best_ask():
            features = book_features(book, now, self.cfg)
        sweep_poll = self.flow.poll(now)
        flow = self.flow.features(now)
        derivs = self.derivs.view(now)
        momentum = self.momentum(now)
        score = signal = flip = None
        if features is not None:
            flip = self._flip.update(features)
            score = micro_score(
                features, flow, derivs, momentum=momentum or 0.0,
                btc_microtrend=btc_microtrend, cfg=self.cfg, now=now,
            )
            signal, score = self.gate.offer(
                self.symbol, score, features, now, atr=atr, tick_size=tick_size
            )
        flash = ""
        if self._liq_flash:
            flash = "liquidation"
        elif self._sweep_flash or sweep_poll is not None:
            flash = "sweep"
        self._liq_flash = self._sweep_flash = False
        return MicroReading(
            symbol=self.symbol,
            time=now,
            features=features,
            spread_bps=features.spread_bps if features is not None else self._ticker_spread(),
            flow=flow,
            derivatives=derivs,
            momentum=momentum,
            score=score,
            signal=signal,
            flip=flip,
            flash=flash,
        )
