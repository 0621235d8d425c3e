"""Microstructure score (0-100, 50 neutral), entry conditions, and the signal gate.

Each factor is a reading ``r`` in [-1, 1] (+1 bullish):

* ``orderflow_imbalance`` — taker flow over the shortest flow window:
  ``(taker_buy - taker_sell) / (taker_buy + taker_sell)`` (0 without trades).
* ``liquidity_pressure`` — resting book imbalance ``(bid - ask) / (bid + ask)`` of the
  imbalance band, divided by ``pressure_full_imbalance`` and clipped.
* ``sweeps`` — net side of the notional swept within ``sweep_recent_ms``:
  ``(buy swept - sell swept) / (buy swept + sell swept)`` (0 without sweeps).
* ``oi_divergence`` — ``oi_up_price_down`` -1 (new shorts pressing the price down),
  ``oi_down_price_up`` +1 (shorts covering into a rally: squeeze fuel), else 0.
* ``funding`` — contrarian: ``-(rate - funding_neutral) / funding_full`` clipped (crowded longs
  pay high funding, which leans short); 0 without a mark price.
* ``momentum`` — the symbol's return over the momentum window ``/ momentum_full``, clipped.
* ``btc_microtrend`` — BTC's return over the same window ``/ momentum_full``, clipped.

With weights ``w`` (``MicroConfig.weight_*``) the score is
``50 + 50 · Σ w·r / Σ w``; a factor's ``contribution`` is its share in score points,
``50 · w·r / Σ w``, so ``score = 50 + Σ contributions``. Missing inputs read 0 and so pull
the score towards neutral rather than being left out.

Direction: +1 at ``score >= long_threshold``, -1 at ``score <= short_threshold``, else 0.
Entry conditions (checked for the side the score leans to): ``score`` (a direction),
``imbalance`` (book imbalance at least ``entry_min_imbalance`` in that direction), ``sweep``
(a same-side sweep within ``entry_sweep_within_s``, unless 0) and ``spread`` (at most
``max_spread_bps``).

Confidence of a signal: ``agreement × strength`` where ``strength = min(1, 2·|score - 50| / 50)``
(a score 25 points from neutral is full strength) and ``agreement`` is the weight share of the
factors with a non-zero reading whose sign matches the direction — the same idea as the
multi-timeframe signal's agreement (``engine.signals``).
"""

from __future__ import annotations

import msgspec

from engine.micro.config import FACTOR_NAMES, MicroConfig
from engine.models import (
    BookFeatures,
    Derivatives,
    Direction,
    Factor,
    FlowFeatures,
    MicroScore,
    Signal,
    SignalType,
    TradePlan,
)
from engine.signals import plan_on_ticks

MS_PER_DAY = 86_400_000


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _share(plus: float, minus: float) -> float:
    total = plus + minus
    return (plus - minus) / total if total > 0 else 0.0


def factor_readings(
    book: BookFeatures,
    flow: FlowFeatures | None,
    derivs: Derivatives,
    *,
    momentum: float,
    btc_microtrend: float,
    now: int,
    cfg: MicroConfig,
) -> dict[str, tuple[float, str]]:
    """Factor name → (reading in [-1, 1], note), see the module docstring."""
    out: dict[str, tuple[float, str]] = {}
    if flow is not None:
        window = cfg.flow_windows[0]
        buy, sell = flow.taker_buy[window], flow.taker_sell[window]
        out["orderflow_imbalance"] = (_share(buy, sell), f"taker buy share over {window}")
        recent = [s for s in flow.sweeps if s.time >= now - cfg.sweep_recent_ms]
        up = sum(s.notional for s in recent if s.side == "buy")
        down = sum(s.notional for s in recent if s.side == "sell")
        out["sweeps"] = (_share(up, down), f"{len(recent)} sweeps in {cfg.sweep_recent_ms} ms")
    else:
        out["orderflow_imbalance"] = (0.0, "no trades")
        out["sweeps"] = (0.0, "no trades")
    out["liquidity_pressure"] = (
        _clip(book.imbalance / cfg.pressure_full_imbalance),
        f"book imbalance {book.imbalance:+.2f} ({cfg.imbalance_band})",
    )
    div = {"oi_up_price_down": -1.0, "oi_down_price_up": 1.0}.get(derivs.oi_divergence, 0.0)
    out["oi_divergence"] = (div, derivs.oi_divergence or "none")
    if derivs.funding_rate is not None:
        out["funding"] = (
            _clip(-(derivs.funding_rate - cfg.funding_neutral) / cfg.funding_full),
            f"funding {derivs.funding_rate:.4%}",
        )
    else:
        out["funding"] = (0.0, "no mark price")
    out["momentum"] = (_clip(momentum / cfg.momentum_full), f"return {momentum:+.4%}")
    out["btc_microtrend"] = (
        _clip(btc_microtrend / cfg.momentum_full), f"BTC return {btc_microtrend:+.4%}"
    )
    return out


def micro_score(
    book: BookFeatures,
    flow: FlowFeatures | None,
    derivs: Derivatives,
    *,
    momentum: float,
    btc_microtrend: float,
    cfg: MicroConfig,
    now: int | None = None,
) -> MicroScore:
    """Score one symbol's microstructure and check the entry conditions.

    Args:
        book: Book features.
        flow: Trade-flow features, ``None`` before any trade.
        derivs: Derivatives view.
        momentum: The symbol's return over the momentum window, fraction.
        btc_microtrend: BTC's return over the momentum window, fraction (0 if unknown).
        cfg: Weights, scales and entry conditions.
        now: Evaluation time, ms UTC (defaults to ``book.time``); sets which sweeps are recent.

    Returns:
        Score 0-100 with its factor breakdown (category ``micro``), direction, ``entry_ok``
        and the ``unmet`` conditions.
    """
    t = book.time if now is None else now
    readings = factor_readings(
        book, flow, derivs, momentum=momentum, btc_microtrend=btc_microtrend, now=t, cfg=cfg
    )
    weights = cfg.weights
    total = sum(weights.values())
    factors = []
    fused = 0.0
    for name in FACTOR_NAMES:
        reading, note = readings[name]
        share = weights[name] / total
        fused += share * reading
        factors.append(
            Factor(
                name=name,
                category="micro",
                value=reading,
                weight=share,
                contribution=50.0 * share * reading,
                note=note,
            )
        )
    score = max(0.0, min(100.0, 50.0 + 50.0 * fused))
    direction = 1 if score >= cfg.long_threshold else -1 if score <= cfg.short_threshold else 0
    lean = direction or (1 if score > 50 else -1 if score < 50 else 0)
    unmet: list[str] = []
    if direction == 0:
        unmet.append("score")
    if lean == 0 or lean * book.imbalance < cfg.entry_min_imbalance:
        unmet.append("imbalance")
    if cfg.entry_sweep_within_s > 0:
        since = t - int(cfg.entry_sweep_within_s * 1000)
        side = "buy" if lean > 0 else "sell"
        if lean == 0 or flow is None or not any(
            s.side == side and s.time >= since for s in flow.sweeps
        ):
            unmet.append("sweep")
    if book.spread_bps > cfg.max_spread_bps:
        unmet.append("spread")
    return MicroScore(
        score=score,
        direction=direction,
        factors=tuple(factors),
        entry_ok=not unmet,
        unmet=tuple(unmet),
    )


def micro_confidence(score: MicroScore) -> float:
    """Confidence 0-1 of a micro score (module docstring: agreement × strength)."""
    strength = min(1.0, 2.0 * abs(score.score - 50.0) / 50.0)
    side = score.direction or (1 if score.score > 50 else -1 if score.score < 50 else 0)
    voting = [f for f in score.factors if f.value != 0.0]
    weight = sum(f.weight for f in voting)
    if side == 0 or weight <= 0:
        return 0.0
    agree = sum(f.weight for f in voting if (f.value > 0) == (side > 0))
    return agree / weight * strength


def micro_plan(
    direction: int,
    entry: float,
    cfg: MicroConfig,
    *,
    atr: float | None,
    tick_size: float | None,
) -> TradePlan | None:
    """Scalp plan around ``entry``.

    ``percent`` mode: ``SL = entry·(1 - s·stop_pct/100)``, ``TP_i = entry·(1 + s·tp_i_pct/100)``
    with ``s`` = +1 long, -1 short. ``atr`` mode: ``SL = entry - s·stop_atr·ATR``,
    ``TP_i = entry + s·tp_i_atr·ATR`` (percent while ``atr`` is unknown). With ``tick_size``
    prices are rounded as ``engine.signals.trade_plan`` does (entry to the nearest tick, the
    stop away from the entry, targets towards it) and R:R is computed from the rounded prices.

    Args:
        direction: +1 long, -1 short.
        entry: Entry price, quote currency.
        cfg: Plan mode and distances.
        atr: ATR of ``cfg.atr_timeframe``, quote currency (``None`` if unknown).
        tick_size: Price tick, quote currency (``None`` leaves prices unrounded).

    Returns:
        The plan; ``None`` for direction 0, a non-positive entry, or levels that collapse
        onto each other on the tick grid.
    """
    if direction == 0 or not entry > 0:
        return None
    side = 1.0 if direction > 0 else -1.0
    use_atr = cfg.plan_mode == "atr" and atr is not None and atr > 0
    if use_atr:
        assert atr is not None
        stop = entry - side * cfg.stop_atr * atr
        tp1 = entry + side * cfg.tp1_atr * atr
        tp2 = entry + side * cfg.tp2_atr * atr
    else:
        stop = entry * (1 - side * cfg.stop_pct / 100)
        tp1 = entry * (1 + side * cfg.tp1_pct / 100)
        tp2 = entry * (1 + side * cfg.tp2_pct / 100)
    return plan_on_ticks(
        side, entry, stop, tp1, tp2, tick_size=tick_size,
        atr=atr if atr is not None and atr > 0 else 0.0,
        timeframe=cfg.atr_timeframe if use_atr else "",
    )


class MicroSignalGate:
    """Turns entries into signals, honouring a cooldown and a daily maximum per symbol.

    The cooldown runs from the last signal of the symbol (either direction); the daily count
    resets at 00:00 UTC. Memory: one small record per symbol seen.

    Args:
        cfg: ``cooldown_s``, ``daily_max_signals`` and the plan parameters.
    """

    def __init__(self, cfg: MicroConfig) -> None:
        self._cfg = cfg
        self._last: dict[str, Signal] = {}
        self._day: dict[str, tuple[int, int]] = {}

    def active(self, symbol: str, now: int) -> Signal | None:
        """The symbol's latest signal while it is within its cooldown, else ``None``."""
        last = self._last.get(symbol)
        if last is None or now - last.as_of >= self._cfg.cooldown_s * 1000:
            return None
        return last

    def signals_today(self, symbol: str, now: int) -> int:
        """Signals the symbol emitted on ``now``'s UTC day."""
        day, count = self._day.get(symbol, (-1, 0))
        return count if day == now // MS_PER_DAY else 0

    def offer(
        self,
        symbol: str,
        score: MicroScore,
        book: BookFeatures,
        now: int,
        *,
        atr: float | None,
        tick_size: float | None,
    ) -> tuple[Signal | None, MicroScore]:
        """Emit a signal for an entry unless the cooldown or the daily maximum forbids it.

        The entry price is the touch a taker would trade at: best ask for a long, best bid
        for a short.

        Args:
            symbol: Venue symbol.
            score: The score; only ``entry_ok`` scores can emit.
            book: Book features (entry prices).
            now: Time, ms UTC (the signal's ``as_of``).
            atr: ATR of ``cfg.atr_timeframe`` (quote currency) for ATR plans, or ``None``.
            tick_size: Price tick for rounding the plan, or ``None``.

        Returns:
            ``(signal or None, score)``; when blocked, the score's ``unmet`` gains
            ``cooldown`` and/or ``daily_max`` and ``entry_ok`` becomes False.
        """
        if not score.entry_ok or score.direction == 0:
            return None, score
        blocked = []
        if self.active(symbol, now) is not None:
            blocked.append("cooldown")
        if self.signals_today(symbol, now) >= self._cfg.daily_max_signals:
            blocked.append("daily_max")
        if blocked:
            return None, msgspec.structs.replace(
                score, entry_ok=False, unmet=(*score.unmet, *blocked)
            )
        long = score.direction > 0
        entry = book.best_ask if long else book.best_bid
        signal = Signal(
            symbol=symbol,
            direction=Direction.LONG if long else Direction.SHORT,
            score=score.score,
            confidence=micro_confidence(score),
            timeframes=(),
            plan=micro_plan(score.direction, entry, self._cfg, atr=atr, tick_size=tick_size),
            as_of=now,
            signal_type=SignalType.MICRO_LONG if long else SignalType.MICRO_SHORT,
            momentum_score=score.score,
            balanced_score=score.score,
            factors=score.factors,
        )
        self._last[symbol] = signal
        self._day[symbol] = (now // MS_PER_DAY, self.signals_today(symbol, now) + 1)
        return signal, score
