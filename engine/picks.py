"""Pick lifecycle (pure): status transitions from price updates, live views, totals, and
paper position sizing.

Lifecycle rule: the trade-management rule of signal outcomes (:mod:`engine.outcomes`, the
triple barrier of López de Prado, *Advances in Financial Machine Learning*, 2018, §3.4),
applied incrementally to every price update of a live pick (a kline's high/low, or a trade):

* ``OPEN`` → ``SL`` (final) when the stop is touched (LONG: low ≤ stop; SHORT: high ≥ stop);
  filled at the stop, or at the bar's open when the bar opened beyond it (a gap).
* ``OPEN`` → ``TP1`` when TP1 is touched (LONG: high ≥ TP1; SHORT: low ≤ TP1): the fraction
  ``tp1_fraction`` is taken at TP1 and the stop of the rest moves to the entry (break-even),
  armed from the bar after the one that reached TP1. A pick without TP2 ends at TP1.
* ``TP1`` → ``TP2`` (final) when TP2 is touched; a bar through TP1 and TP2 without a stop
  touch gives ``TP1`` then ``TP2`` (prices are continuous, TP1 came first).
* ``TP1`` ends as ``TP1`` (final) when the break-even stop is touched, or at expiry (the rest
  exits at the price then).
* Same bar: a bar touching the stop and the current target (SL and TP1, or the break-even
  stop and TP2) is resolved conservatively as the stop first (the path inside is unknown).
* ``EXPIRED`` (final) when an ``OPEN`` pick reaches ``expires_ms``: on the first update whose
  bar opens at or after it (at that bar's open price), on an update at or after it (at its
  close), or on :meth:`PickTracker.expire` (at the last known price).

Only a bar that opened at or after the pick counts with its high/low; a bar that was already
forming when the pick was taken counts with its latest price only (its earlier range happened
before the pick). Results are gross (no fees or funding: picks are paper trades), in R
(``side · (exit - entry) / |entry - stop|``, parts weighted by size) and in percent of entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from engine.models import Direction, EngineSnapshot, Signal
from feeds.events import Kline, Trade
from storage.picks import Pick, PickStatus, PickTransition

HOUR_MS = 3_600_000


class PaperConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Paper account for position sizing.

    Attributes:
        account_equity: Account equity, quote currency (> 0).
        risk_pct: Equity risked per trade, percent (1.0 = 1 %).
        max_leverage: Highest leverage allowed (≥ 1).
    """

    account_equity: float
    risk_pct: float
    max_leverage: float


class PicksConfig(BaseModel):
    """Picks: expiry, notifications and optional paper sizing (``[picks]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    expire_hours: float = Field(default=72.0, gt=0.0, le=24.0 * 365)
    """A pick still OPEN (or at TP1) this many hours after it was taken expires."""
    bell: bool = True
    """Ring the terminal bell when a pick changes status (a toast is always shown)."""
    tp1_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    """Fraction of a pick taken at TP1; the rest runs to TP2 with the stop at the entry
    (as ``[outcomes] tp1_fraction`` for signal outcomes)."""
    last_price_interval_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    """How often the app stores each live pick's last price (for ``perpscope picks``)."""
    account_equity: float | None = Field(default=None, gt=0.0)
    """Paper account equity in quote currency (USDT); empty = no paper sizing."""
    risk_pct: float = Field(default=1.0, gt=0.0, le=100.0)
    """Equity risked per trade, percent (1.0 = 1 %), for paper sizing."""
    max_leverage: float = Field(default=10.0, ge=1.0, le=125.0)
    """Highest leverage paper sizing may use; larger positions are capped to it."""

    def paper(self) -> PaperConfig | None:
        """The paper account, or ``None`` when ``account_equity`` is not set."""
        if self.account_equity is None:
            return None
        return PaperConfig(
            account_equity=self.account_equity, risk_pct=self.risk_pct,
            max_leverage=self.max_leverage,
        )

    def expires_ms(self, opened_ms: int) -> int:
        """Expiry time of a pick taken at ``opened_ms`` (ms UTC)."""
        return opened_ms + int(self.expire_hours * HOUR_MS)


class PositionSize(msgspec.Struct, frozen=True, kw_only=True):
    """Paper position for one plan.

    Attributes:
        size_quote: Position notional, quote currency.
        size_base: Position size, base units (``size_quote / entry``).
        risk_quote: Loss at the stop, quote currency (equity · risk % unless capped).
        risk_pct: That loss in percent of equity.
        leverage_needed: Leverage the uncapped position needs (``notional / equity``).
        leverage: Leverage of the returned position (≤ ``max_leverage``).
        capped: True when the position was cut to ``max_leverage`` (risk below target).
    """

    size_quote: float
    size_base: float
    risk_quote: float
    risk_pct: float
    leverage_needed: float
    leverage: float
    capped: bool


def position_size(entry: float, stop: float, cfg: PaperConfig) -> PositionSize:
    """Fixed-fractional position size (risk a fixed share of equity at the stop).

    ``risk = equity · risk_pct / 100``; ``d = |entry - stop| / entry`` (stop distance as a
    fraction); ``notional = risk / d``; ``leverage_needed = notional / equity``. When that
    exceeds ``max_leverage`` the notional is capped at ``equity · max_leverage`` and the risk
    at the stop shrinks to ``notional · d``. Fees and funding are ignored. (Fixed-fractional
    sizing: R. Vince, *Portfolio Management Formulas*, 1990; van Tharp's position sizing.)

    Args:
        entry: Entry price, quote currency.
        stop: Stop loss price, quote currency.
        cfg: Paper account.

    Returns:
        The position.

    Raises:
        ValueError: for non-positive or non-finite prices, a stop equal to the entry, or an
            invalid account (equity ≤ 0, risk % outside (0, 100], max leverage < 1).
    """
    if not (math.isfinite(entry) and entry > 0 and math.isfinite(stop) and stop > 0):
        raise ValueError(f"position size needs prices > 0, got entry {entry} and stop {stop}")
    if entry == stop:
        raise ValueError(f"position size needs a stop away from the entry ({entry})")
    if not cfg.account_equity > 0:
        raise ValueError(f"paper account_equity must be > 0, got {cfg.account_equity}")
    if not 0 < cfg.risk_pct <= 100:
        raise ValueError(f"paper risk_pct must be in (0, 100], got {cfg.risk_pct}")
    if not cfg.max_leverage >= 1:
        raise ValueError(f"paper max_leverage must be >= 1, got {cfg.max_leverage}")
    distance = abs(entry - stop) / entry
    risk = cfg.account_equity * cfg.risk_pct / 100.0
    notional = risk / distance
    needed = notional / cfg.account_equity
    capped = needed > cfg.max_leverage
    if capped:
        notional = cfg.account_equity * cfg.max_leverage
        risk = notional * distance
    return PositionSize(
        size_quote=notional,
        size_base=notional / entry,
        risk_quote=risk,
        risk_pct=risk / cfg.account_equity * 100.0,
        leverage_needed=needed,
        leverage=notional / cfg.account_equity,
        capped=capped,
    )


def new_pick(
    symbol: str,
    side: Direction,
    entry: float,
    stop_loss: float,
    take_profit_1: float,
    take_profit_2: float | None,
    *,
    opened_ms: int,
    cfg: PicksConfig,
    signal: Signal | None = None,
    size_quote: float | None = None,
    risk_pct: float | None = None,
    note: str = "",
) -> Pick:
    """A pick ready for :meth:`storage.picks.PickStore.add` (validated there).

    With paper sizing configured and no ``size_quote``/``risk_pct`` given, the size comes from
    :func:`position_size`.

    Args:
        symbol: Venue symbol.
        side: LONG or SHORT.
        entry: Entry price, quote currency.
        stop_loss: Stop loss price.
        take_profit_1: First target.
        take_profit_2: Second target or ``None``.
        opened_ms: When it is taken, ms UTC.
        cfg: Picks settings (expiry, paper sizing).
        signal: The signal it came from (type and ``as_of`` are kept), if any.
        size_quote: Notional in quote currency, if the user gave one.
        risk_pct: Equity risk in percent, if the user gave one.
        note: Free text.
    """
    paper = cfg.paper()
    if paper is not None and size_quote is None and risk_pct is None and entry != stop_loss:
        sized = position_size(entry, stop_loss, paper)
        size_quote, risk_pct = sized.size_quote, sized.risk_pct
    return Pick(
        symbol=symbol.strip().upper(), side=side, entry=entry, stop_loss=stop_loss,
        take_profit_1=take_profit_1, take_profit_2=take_profit_2, size_quote=size_quote,
        risk_pct=risk_pct, note=note,
        signal_type=signal.signal_type.value if signal is not None else "",
        signal_as_of=signal.as_of if signal is not None else None,
        opened_ms=opened_ms, expires_ms=cfg.expires_ms(opened_ms),
    )


def pick_from_signal(
    signal: Signal, *, opened_ms: int, cfg: PicksConfig, note: str = ""
) -> Pick | None:
    """A pick from a signal's trade plan (the form's defaults), or ``None`` when the signal
    has no plan or is NEUTRAL."""
    plan = signal.plan
    if plan is None or signal.direction is Direction.NEUTRAL:
        return None
    return new_pick(
        signal.symbol, signal.direction, plan.entry, plan.stop_loss, plan.take_profit_1,
        plan.take_profit_2, opened_ms=opened_ms, cfg=cfg, signal=signal, note=note,
    )


class PickView(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the picks pane.

    Attributes:
        pick: The pick.
        price: Live price (or the close price of an ended pick), quote currency, or ``None``.
        pnl_pct: Result of the whole position at ``price`` in percent of the entry (the
            realised result for an ended pick), or ``None``.
        pnl_r: The same in R, or ``None``.
        to_sl_pct: Distance from ``price`` to the active stop (the entry after TP1), percent
            of ``price``; positive while the stop is not reached.
        to_tp1_pct: Distance to TP1, percent of ``price``; positive while not reached.
        to_tp2_pct: Distance to TP2 (``None`` without TP2).
        open_ms: Time open: until ``now`` while live, until the close once ended, ms.
        stale: True when the symbol's market data is stale (or missing) in the snapshot.
    """

    pick: Pick
    price: float | None
    pnl_pct: float | None
    pnl_r: float | None
    to_sl_pct: float | None
    to_tp1_pct: float | None
    to_tp2_pct: float | None
    open_ms: int
    stale: bool


def pick_view(
    pick: Pick, *, price: float | None, now_ms: int, stale: bool, tp1_fraction: float = 0.5
) -> PickView:
    """The pane row of ``pick`` at ``price`` (an ended pick uses its close price and
    realised R).

    PnL is that of the whole position (:meth:`storage.picks.Pick.result_r`: after TP1 the
    part taken at TP1 counts); ``to_sl_pct`` is measured to the active stop (the entry after
    TP1).
    """
    if not pick.live:
        price = pick.close_price
    to_sl = to_tp1 = to_tp2 = pnl_pct = pnl_r = None
    if price is not None and price > 0:
        s = pick.sign
        if pick.live:
            pnl_pct = pick.result_pct(price, tp1_fraction)
            pnl_r = pick.result_r(price, tp1_fraction)
        else:
            pnl_pct = (pick.realized_r * pick.risk / pick.entry * 100.0
                       if pick.realized_r is not None else None)
            pnl_r = pick.realized_r
        stop = pick.entry if pick.status is PickStatus.TP1 and pick.live else pick.stop_loss
        to_sl = s * (price - stop) / price * 100.0
        to_tp1 = s * (pick.take_profit_1 - price) / price * 100.0
        if pick.take_profit_2 is not None:
            to_tp2 = s * (pick.take_profit_2 - price) / price * 100.0
    elif not pick.live:
        pnl_r = pick.realized_r
    end = now_ms if pick.closed_ms is None else pick.closed_ms
    return PickView(
        pick=pick, price=price, pnl_pct=pnl_pct, pnl_r=pnl_r, to_sl_pct=to_sl,
        to_tp1_pct=to_tp1, to_tp2_pct=to_tp2, open_ms=max(0, end - pick.opened_ms),
        stale=stale,
    )


class PickTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Totals of ended picks for the history view.

    Attributes:
        count: Ended picks with a realised result.
        wins: Those with realised R > 0.
        losses: Those with realised R < 0.
        win_rate: ``wins / count`` as a fraction, ``None`` when ``count`` is 0.
        total_r: Sum of realised R.
        avg_r: ``total_r / count`` (expectancy per pick in R), ``None`` when ``count`` is 0.
    """

    count: int
    wins: int
    losses: int
    win_rate: float | None
    total_r: float
    avg_r: float | None


def totals(picks: Iterable[Pick]) -> PickTotals:
    """Win rate and total R over the ended picks among ``picks`` (live ones and ended ones
    without a result, e.g. expired with no price, are left out)."""
    results = [p.realized_r for p in picks if not p.live and p.realized_r is not None]
    count = len(results)
    wins = sum(1 for r in results if r > 0)
    losses = sum(1 for r in results if r < 0)
    total = float(sum(results))
    return PickTotals(
        count=count, wins=wins, losses=losses,
        win_rate=wins / count if count else None, total_r=total,
        avg_r=total / count if count else None,
    )


class PickTracker:
    """Follows live picks through price updates and returns their status transitions.

    Pure: no IO; the caller stores each returned :class:`PickTransition` with
    :meth:`storage.picks.PickStore.apply` (and toasts / rings the bell). Ended picks leave the
    tracker.

    Args:
        picks: Live picks to follow (ended ones are ignored).
        tp1_fraction: Fraction of the position taken at TP1 (``[picks] tp1_fraction``).
    """

    def __init__(self, picks: Iterable[Pick] = (), *, tp1_fraction: float = 0.5) -> None:
        self._picks: dict[int, Pick] = {}
        self._armed_after: dict[int, int] = {}
        self._last: dict[str, tuple[float, int]] = {}
        self.tp1_fraction = tp1_fraction
        for pick in picks:
            self.add(pick)

    def add(self, pick: Pick) -> None:
        """Follow a live pick (replaces one with the same id; ended picks are ignored).

        A pick added in status ``TP1`` (e.g. reloaded after a restart) has its break-even stop
        armed at once.
        """
        if pick.live:
            self._picks[pick.id] = pick
        else:
            self.remove(pick.id)

    def remove(self, pick_id: int) -> None:
        """Stop following a pick (closed or removed by the user); unknown ids are ignored."""
        self._picks.pop(pick_id, None)
        self._armed_after.pop(pick_id, None)

    def picks(self) -> list[Pick]:
        """The live picks followed, by id."""
        return [self._picks[k] for k in sorted(self._picks)]

    def symbols(self) -> set[str]:
        """Symbols with a live pick (they need price data)."""
        return {p.symbol for p in self._picks.values()}

    def last_price(self, symbol: str) -> tuple[float, int] | None:
        """Last price seen for ``symbol`` and its time (ms UTC), or ``None``."""
        return self._last.get(symbol)

    def on_kline(self, kline: Kline) -> list[PickTransition]:
        """Apply a kline update (forming or closed) of any interval.

        Its time is the venue event time, or the close time for REST rows (no event time).
        """
        time_ms = kline.exchange_time or kline.close_time
        return self.update(
            kline.symbol, high=kline.high, low=kline.low, close=kline.close, time_ms=time_ms,
            bar_open_ms=kline.open_time, bar_open=kline.open,
        )

    def on_trade(self, trade: Trade) -> list[PickTransition]:
        """Apply one trade (a bar of one price at the trade time)."""
        return self.update(
            trade.symbol, high=trade.price, low=trade.price, close=trade.price,
            time_ms=trade.trade_time,
        )

    def update(
        self,
        symbol: str,
        *,
        high: float,
        low: float,
        close: float,
        time_ms: int,
        bar_open_ms: int | None = None,
        bar_open: float | None = None,
    ) -> list[PickTransition]:
        """Apply a price update to the live picks of ``symbol``.

        Args:
            symbol: Venue symbol.
            high: Highest price of the update's bar, quote currency.
            low: Lowest price.
            close: Latest price.
            time_ms: Time of the update, ms UTC (the transitions' time).
            bar_open_ms: Open time of the bar, ms UTC (``None``: a single price at
                ``time_ms``, e.g. a trade).
            bar_open: Open price of the bar (gap fills; the expiry price when the bar opened
                after expiry); ``None``: ``close``.

        Returns:
            Transitions in the order they happened (possibly several per pick).
        """
        self._last[symbol] = (close, time_ms)
        out: list[PickTransition] = []
        for pick_id in sorted(self._picks):
            pick = self._picks[pick_id]
            if pick.symbol != symbol:
                continue
            bar = _Bar(high=high, low=low, close=close, time_ms=time_ms,
                       start_ms=time_ms if bar_open_ms is None else bar_open_ms,
                       open=close if bar_open is None else bar_open)
            if bar.start_ms < pick.opened_ms:
                # The bar's range partly happened before the pick: only its latest price counts.
                if time_ms < pick.opened_ms:
                    continue
                bar = _Bar(high=close, low=close, close=close, time_ms=time_ms,
                           start_ms=time_ms, open=close)
            changes = self._step(pick, bar)
            if changes:
                out.extend(changes)
                self.add(changes[-1].pick)
        return out

    def expire(self, now_ms: int) -> list[PickTransition]:
        """End live picks whose expiry is at or before ``now_ms`` (ms UTC), at the last known
        price of their symbol (no price known: ``close_price`` and realised R stay ``None``)."""
        out: list[PickTransition] = []
        for pick_id in sorted(self._picks):
            pick = self._picks[pick_id]
            if pick.expires_ms is None or now_ms < pick.expires_ms:
                continue
            last = self._last.get(pick.symbol)
            change = self._expire(pick, pick.expires_ms, last[0] if last else None)
            out.append(change)
            self.add(change.pick)
        return out

    def views(self, snapshot: EngineSnapshot | None, now_ms: int) -> list[PickView]:
        """Pane rows of the live picks, by id: price from the snapshot row (else the last
        price seen), stale from the row (a symbol missing from the snapshot is stale)."""
        rows = snapshot.symbols if snapshot is not None else {}
        out = []
        for pick in self.picks():
            row = rows.get(pick.symbol)
            price = row.last_price if row is not None else None
            if price is None:
                last = self._last.get(pick.symbol)
                price = last[0] if last else None
            out.append(pick_view(pick, price=price, now_ms=now_ms,
                                 stale=row is None or row.stale,
                                 tp1_fraction=self.tp1_fraction))
        return out

    def _transition(
        self, pick: Pick, status: PickStatus, time_ms: int, price: float | None, note: str, *,
        final: bool,
    ) -> PickTransition:
        if final:
            updated = msgspec.structs.replace(
                pick, status=status, closed_ms=time_ms, close_price=price,
                realized_r=(pick.result_r(price, self.tp1_fraction)
                            if price is not None else None),
            )
        else:
            updated = msgspec.structs.replace(pick, status=status)
        return PickTransition(pick=updated, previous=pick.status, time_ms=time_ms, price=price,
                              note=note)

    def _expire(self, pick: Pick, time_ms: int, price: float | None) -> PickTransition:
        if pick.status is PickStatus.TP1:
            return self._transition(pick, PickStatus.TP1, time_ms, price,
                                    "expired after TP1", final=True)
        return self._transition(pick, PickStatus.EXPIRED, time_ms, price, "expired", final=True)

    def _step(self, pick: Pick, bar: _Bar) -> list[PickTransition]:
        """Transitions of one live pick for one bar (see the module docstring for the rule)."""
        expires = pick.expires_ms
        if expires is not None and bar.start_ms >= expires:
            # The whole bar is after expiry: the pick expired at the first price past it.
            return [self._expire(pick, expires, bar.open)]
        s = pick.sign

        def reached(level: float) -> bool:
            return (bar.high >= level) if s > 0 else (bar.low <= level)

        def stopped(level: float) -> bool:
            return (bar.low <= level) if s > 0 else (bar.high >= level)

        def fill(level: float) -> float:
            # A bar opening beyond the stop fills at its open (the stop-market order gaps).
            return bar.open if s * bar.open < s * level else level

        same_bar = " (same bar as the target: stop counted first)"
        out: list[PickTransition] = []
        if pick.status is PickStatus.OPEN:
            if stopped(pick.stop_loss):
                note = "stop loss" + (same_bar if reached(pick.take_profit_1) else "")
                return [self._transition(pick, PickStatus.SL, bar.time_ms,
                                         fill(pick.stop_loss), note, final=True)]
            if not reached(pick.take_profit_1):
                return self._expiry_after(pick, bar, out)
            if pick.take_profit_2 is None:
                return [self._transition(pick, PickStatus.TP1, bar.time_ms, pick.take_profit_1,
                                         "take profit 1 (no TP2: ended)", final=True)]
            change = self._transition(pick, PickStatus.TP1, bar.time_ms, pick.take_profit_1,
                                      "take profit 1; stop to entry", final=False)
            out.append(change)
            pick = change.pick
            self._armed_after[pick.id] = bar.start_ms
            if pick.take_profit_2 is not None and reached(pick.take_profit_2):
                out.append(self._transition(pick, PickStatus.TP2, bar.time_ms,
                                            pick.take_profit_2, "take profit 2", final=True))
            return self._expiry_after(pick, bar, out)
        # TP1: the rest runs to TP2 with the stop at the entry, armed after the TP1 bar.
        armed = bar.start_ms > self._armed_after.get(pick.id, -1)
        tp2 = pick.take_profit_2
        if armed and stopped(pick.entry):
            note = "break-even stop after TP1"
            if tp2 is not None and reached(tp2):
                note += same_bar
            return [self._transition(pick, PickStatus.TP1, bar.time_ms, fill(pick.entry), note,
                                     final=True)]
        if tp2 is not None and reached(tp2):
            return [self._transition(pick, PickStatus.TP2, bar.time_ms, tp2, "take profit 2",
                                     final=True)]
        return self._expiry_after(pick, bar, out)

    def _expiry_after(
        self, pick: Pick, bar: _Bar, out: list[PickTransition]
    ) -> list[PickTransition]:
        current = out[-1].pick if out else pick
        expires = current.expires_ms
        if current.live and expires is not None and bar.time_ms >= expires:
            out.append(self._expire(current, bar.time_ms, bar.close))
        return out


class _Bar(msgspec.Struct, frozen=True, kw_only=True):
    """One price update as a bar (a trade is a bar of one price)."""

    high: float
    low: float
    close: float
    open: float
    time_ms: int
    start_ms: int
