"""Triple-barrier outcome of a trade plan, walked over the closed candles after its signal.

Pure computation, no IO: the live/replay recorder (:mod:`engine.signal_log`) and the backtest
call :func:`triple_barrier` with the candles they have; ``None`` means "not resolved yet".

The barriers (López de Prado, *Advances in Financial Machine Learning*, 2018, §3.4 "The
Triple-Barrier Method"): the stop loss, the take profits and a time horizon. perpscope's
trade-management rule, fixed here so that stored outcomes, stats and backtests agree:

1. **Phase 1** (whole position): the stop is ``stop_loss``. A candle whose low (LONG; high for a
   SHORT) reaches the stop closes the trade: ``SL``. A candle reaching ``take_profit_1``
   closes :attr:`OutcomeConfig.tp1_fraction` of the position at TP1.
2. **Phase 2** (the rest, after TP1): the stop moves to the entry (break-even), armed from the
   candle after the one that filled TP1 (a bot moves the stop once TP1's fill is known). The
   rest closes at ``take_profit_2`` → ``TP2``, or at the break-even stop → ``TP1``.
3. **Horizon**: :meth:`OutcomeConfig.horizon_for` candles of the plan timeframe after the signal.
   An open trade closes at the close of the last candle of the horizon: ``TIMEOUT`` in phase 1,
   ``TP1`` in phase 2.

One candle touching both the stop and the target of the current phase (SL and TP1, or entry and
TP2) hides which came first: its lower-timeframe candles decide when given and complete (first
touch wins), otherwise the stop is assumed first (``resolved_by="conservative"``; the issue's
rule: "count SL unless a lower timeframe proves otherwise"). TP1 and TP2 inside one candle
without a stop touch is unambiguous (prices are continuous, so TP1 comes first).

Fills: targets fill at their price (limit orders); a stop fills at its price, or at the candle's
open when the candle opens beyond it (a gap: the stop-market order fills at the market).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.models import Direction
from feeds.intervals import INTERVAL_MS, interval_ms

OutcomeResult = Literal["TP1", "TP2", "SL", "TIMEOUT"]
"""Stored outcome labels."""
ResolvedBy = Literal["bar", "lower_timeframe", "conservative", "timeout"]
"""How the outcome was decided."""
RESULTS: tuple[str, ...] = ("TP1", "TP2", "SL", "TIMEOUT")
"""Every outcome label."""
WINS: frozenset[str] = frozenset({"TP1", "TP2"})
"""Labels counted as hits (TP1 reached before the stop)."""


class OutcomeConfig(BaseModel):
    """Outcome tracking: horizon per timeframe and trading costs (``[outcomes]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    horizon_bars: dict[str, int] = Field(
        default_factory=lambda: {"1m": 60, "5m": 48, "15m": 32, "1h": 24, "4h": 18}
    )
    """Time barrier: candles of the plan timeframe after the signal before an open trade is
    closed at the market (``TIMEOUT``), per timeframe."""
    default_horizon_bars: int = Field(default=24, ge=1, le=10_000)
    """Horizon for a timeframe missing from ``horizon_bars``."""
    fees_bps: float = Field(default=4.0, ge=0.0, le=100.0)
    """Taker fee per side, basis points of the notional (Binance USDⓈ-M VIP0 taker: 4-5)."""
    slippage_bps: float = Field(default=2.0, ge=0.0, le=100.0)
    """Assumed slippage per side, basis points of the price."""
    tp1_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    """Fraction of the position closed at TP1; the rest targets TP2 with the stop at entry.
    1.0 closes everything at TP1 (then ``TP2`` never occurs)."""

    @field_validator("horizon_bars")
    @classmethod
    def _check_horizons(cls, value: dict[str, int]) -> dict[str, int]:
        for code, bars in value.items():
            if code not in INTERVAL_MS:
                raise ValueError(f"unknown timeframe {code!r}; allowed: {', '.join(INTERVAL_MS)}")
            if not 1 <= bars <= 10_000:
                raise ValueError(f"{code}: horizon of {bars} bars is outside 1..10000")
        return value

    def horizon_for(self, timeframe: str) -> int:
        """Horizon in candles of ``timeframe``."""
        return self.horizon_bars.get(timeframe, self.default_horizon_bars)

    @property
    def cost_per_side(self) -> float:
        """Fees plus slippage per side as a fraction of the price."""
        return (self.fees_bps + self.slippage_bps) / 10_000.0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved outcome of one trade plan.

    Attributes:
        result: ``TP1``, ``TP2``, ``SL`` or ``TIMEOUT`` (see the module rule).
        exit_time: Close time (ms UTC, ``open_time + interval - 1``) of the candle in which the
            last part of the position closed (a lower-timeframe candle when one decided).
        exit_price: Price at which the last part closed, quote currency (the entry for a
            break-even stop after TP1; the candle close at the horizon).
        bars: Plan-timeframe candles from the first full candle after the signal to the exit
            candle, inclusive (0 when it closed in the partial candle containing the signal).
        time_to_outcome_ms: ``exit_time - start_time``, ms.
        mfe_r: Maximum favourable excursion while open, in R (R = ``|entry - stop_loss|``),
            >= 0. The exit candle counts only on its exit side, up to the exit price, since the
            order of its other extreme against the exit is unknown.
        mae_r: Maximum adverse excursion while open, in R, >= 0 (same exit-candle rule).
        realized_r: Profit in R of the whole position (partial at TP1 included) after fees and
            slippage on both sides: ``gross - cost_per_side x (entry + exit notionals) / R``.
        resolved_by: ``bar`` (candles decided), ``lower_timeframe`` (an ambiguous candle was
            decided by its lower-timeframe candles), ``conservative`` (an ambiguous candle was
            counted as a stop), ``timeout`` (closed at the horizon).
    """

    result: OutcomeResult
    exit_time: int
    exit_price: float
    bars: int
    time_to_outcome_ms: int
    mfe_r: float
    mae_r: float
    realized_r: float
    resolved_by: ResolvedBy

    @property
    def win(self) -> bool:
        """True for ``TP1`` / ``TP2`` (TP1 reached before the stop)."""
        return self.result in WINS


class BarArrays(Protocol):
    """Closed candles as column arrays, oldest first (:class:`engine.candles.ClosedArrays` fits).

    ``open_time`` in ms UTC; prices in quote currency; equal lengths.
    """

    @property
    def open_time(self) -> npt.NDArray[np.int64]: ...

    @property
    def open(self) -> npt.NDArray[np.float64]: ...

    @property
    def high(self) -> npt.NDArray[np.float64]: ...

    @property
    def low(self) -> npt.NDArray[np.float64]: ...

    @property
    def close(self) -> npt.NDArray[np.float64]: ...


@dataclass(slots=True)
class _Walk:
    """Mutable state of one walk; prices are side-normalised (x -1 for a SHORT)."""

    entry: float
    stop: float
    tp1: float
    tp2: float
    fraction: float
    phase: int = 1
    best: float = -math.inf
    worst: float = math.inf
    tp1_fill: float | None = None
    armed_after: int = -1
    """Open time of the candle that filled TP1 (break-even stop armed after it)."""
    lower_used: bool = False
    conservative: bool = False
    exit_price: float | None = None
    exit_close_time: int = 0
    result: OutcomeResult | None = None

    def observe(self, high: float, low: float) -> None:
        self.best = max(self.best, high)
        self.worst = min(self.worst, low)


def triple_barrier(
    direction: Direction,
    entry: float,
    stop_loss: float,
    tp1: float,
    tp2: float,
    start_time: int,
    bars: BarArrays,
    *,
    interval: str,
    cfg: OutcomeConfig,
    lower: BarArrays | None = None,
    lower_interval: str | None = None,
) -> Outcome | None:
    """Walk the candles after a signal through the stop, the targets and the horizon.

    Args:
        direction: ``LONG`` or ``SHORT``.
        entry: Entry price, quote currency.
        stop_loss: Stop price (below the entry for a LONG), quote currency.
        tp1: First target, quote currency.
        tp2: Second target (at or beyond ``tp1``), quote currency.
        start_time: Signal time, ms UTC (its ``as_of``: the close time of the signal candle).
            Candles opening before it are ignored, except that a candle containing it is
            walked through its lower-timeframe candles opening at or after it (if given).
        bars: Closed candles of the plan timeframe ``interval``, oldest first; extra candles
            before ``start_time`` or after the horizon are ignored (pass the whole series).
        interval: Interval code of ``bars``; the horizon is counted in these candles.
        cfg: Horizon, costs and TP1 fraction.
        lower: Closed candles of a smaller interval covering the same time (optional), used
            to order an ambiguous candle (stop and target both inside it).
        lower_interval: Interval code of ``lower`` (required with it).

    Returns:
        The outcome, or ``None`` while the trade is open and the horizon's last candle has not
        closed yet (call again with more candles).

    Raises:
        ValueError: for a NEUTRAL direction, non-finite prices, levels in the wrong order
            (LONG needs ``stop < entry < tp1 <= tp2``; SHORT mirrored), unknown intervals, a
            ``lower`` without a smaller ``lower_interval``, or candles not in time order.
    """
    if direction is Direction.NEUTRAL:
        raise ValueError("triple_barrier needs a LONG or SHORT direction, got NEUTRAL")
    side = 1.0 if direction is Direction.LONG else -1.0
    levels = (entry, stop_loss, tp1, tp2)
    if not all(math.isfinite(x) for x in levels):
        raise ValueError(f"non-finite plan levels entry/stop/tp1/tp2 = {levels}")
    if not side * stop_loss < side * entry < side * tp1 <= side * tp2:
        raise ValueError(
            f"{direction.value} plan levels out of order: entry {entry}, stop {stop_loss}, "
            f"tp1 {tp1}, tp2 {tp2}"
        )
    step = interval_ms(interval)
    lower_step = 0
    if lower is not None:
        if lower_interval is None:
            raise ValueError("triple_barrier: lower candles given without lower_interval")
        lower_step = interval_ms(lower_interval)
        if lower_step >= step or step % lower_step:
            raise ValueError(
                f"lower interval {lower_interval} does not divide plan interval {interval}"
            )

    first_full = -(-start_time // step) * step  # first candle boundary at or after the signal
    horizon_end = first_full + cfg.horizon_for(interval) * step
    times = np.asarray(bars.open_time, dtype=np.int64)
    if times.size > 1 and bool(np.any(np.diff(times) <= 0)):
        raise ValueError(f"{interval} candles passed to triple_barrier are not in time order")

    lo_times = np.empty(0, np.int64)
    if lower is not None:
        lo_times = np.asarray(lower.open_time, dtype=np.int64)
        if lo_times.size > 1 and bool(np.any(np.diff(lo_times) <= 0)):
            raise ValueError(f"{lower_interval} candles passed to triple_barrier are not in order")

    w = _Walk(
        entry=side * entry,
        stop=side * stop_loss,
        tp1=side * tp1,
        tp2=side * tp2,
        fraction=cfg.tp1_fraction,
    )

    # The partial candle containing the signal: only its lower candles after the signal count.
    if first_full > start_time and lower is not None:
        i0 = int(np.searchsorted(lo_times, start_time, side="left"))
        i1 = int(np.searchsorted(lo_times, first_full, side="left"))
        for j in range(i0, i1):
            if _step(w, lower, j, lower_step, side, None, None, 0):
                w.lower_used = True
                return _finish(w, side, start_time, cfg, bars_done=0)

    a = int(np.searchsorted(times, first_full, side="left"))
    b = int(np.searchsorted(times, horizon_end, side="left"))
    for i in range(a, b):
        t = int(times[i])
        sub: tuple[int, int] | None = None
        if lower is not None:
            j0 = int(np.searchsorted(lo_times, t, side="left"))
            j1 = int(np.searchsorted(lo_times, t + step, side="left"))
            if j1 - j0 == step // lower_step:  # only a complete set of lower candles decides
                sub = (j0, j1)
        if _step(w, bars, i, step, side, sub, lower, lower_step):
            return _finish(w, side, start_time, cfg, bars_done=(t - first_full) // step + 1)

    # Open: resolved by the horizon only once its last candle (or a later one) has closed.
    if times.size == 0 or int(times[-1]) < horizon_end - step:
        return None
    if b > a:
        w.exit_price = side * float(bars.close[b - 1])
        w.exit_close_time = int(times[b - 1]) + step - 1
        bars_done = (int(times[b - 1]) - first_full) // step + 1
    else:  # a data hole covers the whole horizon: close flat at the entry
        w.exit_price = w.entry
        w.exit_close_time = horizon_end - 1
        bars_done = 0
    w.result = "TIMEOUT" if w.phase == 1 else "TP1"
    return _finish(w, side, start_time, cfg, bars_done=bars_done, timeout=True)


def _close(w: _Walk, price: float, result: OutcomeResult, close_time: int) -> bool:
    w.exit_price = price
    w.exit_close_time = close_time
    w.result = result
    return True


def _step(
    w: _Walk,
    arrays: BarArrays,
    i: int,
    step: int,
    side: float,
    sub: tuple[int, int] | None,
    lower: BarArrays | None,
    lower_step: int,
) -> bool:
    """Apply candle ``i`` of ``arrays`` (lower candles ``sub`` order it if ambiguous); True
    when the trade closed inside it."""
    t = int(arrays.open_time[i])
    o, h, lo = float(arrays.open[i]), float(arrays.high[i]), float(arrays.low[i])
    if side < 0:
        o, h, lo = -o, -lo, -h
    close_time = t + step - 1
    # Phase 2's break-even stop is armed from the candle after the TP1 fill.
    stop = w.stop if w.phase == 1 else (w.entry if t > w.armed_after else -math.inf)
    target = w.tp1 if w.phase == 1 else w.tp2
    hit_stop = lo <= stop
    hit_target = h >= target
    if hit_stop and hit_target:
        if sub is not None and lower is not None:
            phase_before = w.phase
            for j in range(*sub):
                if _step(w, lower, j, lower_step, side, None, None, 0):
                    w.lower_used = True
                    return True
            if w.phase != phase_before:  # TP1 filled inside; the rest is still open
                w.lower_used = True
                return False
            # The lower candles touch neither level (they disagree): stay conservative.
        w.conservative = True
        hit_target = False
    if hit_stop:
        fill = min(stop, o)  # a gap through the stop fills at the open
        w.worst = min(w.worst, fill)
        return _close(w, fill, "SL" if w.phase == 1 else "TP1", close_time)
    if hit_target and w.phase == 1:
        w.tp1_fill = w.tp1
        if w.fraction >= 1.0:
            w.best = max(w.best, w.tp1)
            return _close(w, w.tp1, "TP1", close_time)
        w.phase = 2
        w.armed_after = t
        if h >= w.tp2:  # TP2 in the same candle: TP1 came first and no stop was touched
            w.best = max(w.best, w.tp2)
            return _close(w, w.tp2, "TP2", close_time)
        w.observe(h, lo)
        return False
    if hit_target:  # phase 2 reached TP2
        w.best = max(w.best, w.tp2)
        return _close(w, w.tp2, "TP2", close_time)
    w.observe(h, lo)
    return False


def _finish(
    w: _Walk,
    side: float,
    start_time: int,
    cfg: OutcomeConfig,
    *,
    bars_done: int,
    timeout: bool = False,
) -> Outcome:
    assert w.exit_price is not None and w.result is not None
    risk = w.entry - w.stop
    if w.tp1_fill is not None:
        f = min(w.fraction, 1.0)
        gross = (f * (w.tp1_fill - w.entry) + (1.0 - f) * (w.exit_price - w.entry)) / risk
        notional_exit = f * abs(w.tp1_fill) + (1.0 - f) * abs(w.exit_price)
    else:
        gross = (w.exit_price - w.entry) / risk
        notional_exit = abs(w.exit_price)
    costs = cfg.cost_per_side * (abs(w.entry) + notional_exit) / risk
    best = max(w.best, w.exit_price)
    worst = min(w.worst, w.exit_price)
    if timeout:
        resolved_by: ResolvedBy = "timeout"
    elif w.conservative:
        resolved_by = "conservative"
    elif w.lower_used:
        resolved_by = "lower_timeframe"
    else:
        resolved_by = "bar"
    return Outcome(
        result=w.result,
        exit_time=w.exit_close_time,
        exit_price=side * w.exit_price,
        bars=bars_done,
        time_to_outcome_ms=w.exit_close_time - start_time,
        mfe_r=max(0.0, best - w.entry) / risk,
        mae_r=max(0.0, w.entry - worst) / risk,
        realized_r=gross - costs,
        resolved_by=resolved_by,
    )
