"""The alert rules engine: signals, price levels and pick status changes in, :class:`Alert` out.

Pure and synchronous (no IO, time passed in as ms UTC), so the same code runs live, in replay
and in tests. A signal alerts once when it *appears* for a rule and symbol — when it starts to
pass the rule, or changes direction or type while passing — not on every recompute; then the
rule's per-symbol cooldown and daily maximum (per UTC day) decide whether it is sent.
Microstructure signals are discrete events: each new one (new ``as_of``) is an appearance.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import msgspec

from engine.alerts.config import AlertRule, AlertsConfig, PriceAlert
from engine.models import Direction, Factor, Signal, SignalType
from storage.picks import PickTransition

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
"""One UTC day, ms."""
PICK_RULE = "picks"
"""Rule name of pick status change alerts."""
PRICE_RULE = "price"
"""Rule name of price-level alerts without a configured name."""
MICRO_TYPES = frozenset({SignalType.MICRO_LONG, SignalType.MICRO_SHORT})
"""Signal types that are discrete microstructure events (``engine.micro``)."""
KINDS = ("signal", "price", "pick")
"""Alert kinds."""


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert, ready to render and send.

    Percent distances are signed, relative to ``entry``: ``(level - entry) / entry * 100``
    (a LONG's stop loss is negative, its targets positive).

    Attributes:
        time: When it fired, ms UTC (engine clock).
        time_utc: ``time`` as ``YYYY-MM-DD HH:MM:SS UTC``.
        time_local: ``time`` in the local (or configured) time zone, with its abbreviation.
        rule: Rule name (:data:`PICK_RULE` for picks, the price alert's name or
            :data:`PRICE_RULE`).
        symbol: Venue symbol.
        kind: ``signal``, ``price`` or ``pick``.
        side: ``LONG`` / ``SHORT`` (signals, picks), empty for price alerts.
        type: Signal type (``STRONG_LONG``, ``MICRO_SHORT``), ``PRICE_ABOVE`` /
            ``PRICE_BELOW``, or the pick's new status (``TP1``, ``SL``, ...).
        score: Signal score 0-100 (``None`` for other kinds).
        confidence: Signal confidence 0-1 (``None`` for other kinds).
        price: Price that triggered it (last price, the pick's status price), quote currency.
        level: Price level crossed (price alerts), quote currency.
        entry: Plan / pick entry, quote currency.
        stop_loss: Stop loss, quote currency.
        take_profit_1: First target, quote currency.
        take_profit_2: Second target, quote currency.
        stop_loss_pct: Stop loss distance from entry, percent.
        take_profit_1_pct: TP1 distance from entry, percent.
        take_profit_2_pct: TP2 distance from entry, percent.
        risk_reward: Plan R:R to TP1.
        timeframe: Timeframe that sized the plan.
        reasons: Strongest factors behind the signal, strongest first.
        note: Extra line (status change, crossing), may be empty.
        as_of: The signal's ``as_of`` or the pick's id (0 otherwise).
    """

    time: int
    time_utc: str
    time_local: str
    rule: str
    symbol: str
    kind: str
    side: str = ""
    type: str = ""
    score: float | None = None
    confidence: float | None = None
    price: float | None = None
    level: float | None = None
    entry: float | None = None
    stop_loss: float | None = None
    take_profit_1: float | None = None
    take_profit_2: float | None = None
    stop_loss_pct: float | None = None
    take_profit_1_pct: float | None = None
    take_profit_2_pct: float | None = None
    risk_reward: float | None = None
    timeframe: str = ""
    reasons: tuple[str, ...] = ()
    note: str = ""
    as_of: int = 0


class PickStatusChange(msgspec.Struct, frozen=True, kw_only=True):
    """A pick's status change, as the picks tracker reports it (the lead maps to this).

    Attributes:
        pick_id: Pick row id.
        symbol: Venue symbol.
        side: ``LONG`` or ``SHORT``.
        old_status: Status before (``OPEN``, ``TP1``, ...).
        new_status: Status after (``TP1``, ``TP2``, ``SL``, ``CLOSED``, ``EXPIRED``).
        time: When it changed, ms UTC.
        price: Price that caused it, quote currency (``None`` if unknown).
        entry: Pick entry, quote currency.
        stop_loss: Pick stop loss, quote currency.
        take_profit_1: Pick first target, quote currency.
        take_profit_2: Pick second target (``None`` if not set).
        realized_r: Realised result in R when the pick closed, else ``None``.
        final: True when the change ended the pick (a ``TP1`` pick can end at ``TP1``).
        note: Why, in words (from the picks tracker), may be empty.
    """

    pick_id: int
    symbol: str
    side: str
    old_status: str
    new_status: str
    time: int
    price: float | None
    entry: float
    stop_loss: float
    take_profit_1: float
    take_profit_2: float | None = None
    realized_r: float | None = None
    final: bool = False
    note: str = ""

    @classmethod
    def from_transition(cls, transition: PickTransition) -> PickStatusChange:
        """The change described by a :class:`storage.picks.PickTransition`."""
        pick = transition.pick
        return cls(
            pick_id=pick.id,
            symbol=pick.symbol,
            side=pick.side.value,
            old_status=str(transition.previous),
            new_status=str(pick.status),
            time=transition.time_ms,
            price=transition.price,
            entry=pick.entry,
            stop_loss=pick.stop_loss,
            take_profit_1=pick.take_profit_1,
            take_profit_2=pick.take_profit_2,
            realized_r=pick.realized_r,
            final=transition.final,
            note=transition.note,
        )


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Counters of an :class:`AlertEngine` since it started.

    Attributes:
        fired: Alerts returned.
        suppressed_cooldown: Appearances held back by a rule's cooldown.
        suppressed_daily_max: Appearances held back by a rule's daily maximum.
    """

    fired: int
    suppressed_cooldown: int
    suppressed_daily_max: int


def pct_from(entry: float | None, level: float | None) -> float | None:
    """Signed distance of ``level`` from ``entry`` in percent, ``None`` if either is unknown."""
    if entry is None or level is None or entry == 0:
        return None
    return (level - entry) / entry * 100.0


def utc_day(time_ms: int) -> int:
    """UTC day number of ``time_ms`` (days since 1970-01-01)."""
    return time_ms // DAY_MS


def format_times(time_ms: int, tz: tzinfo | None = None) -> tuple[str, str]:
    """``time_ms`` as (UTC text, local text); ``tz`` None = the system's local zone."""
    dt = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    local = dt.astimezone(tz) if tz is not None else dt.astimezone()
    return (
        dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        local.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip(),
    )


def top_reasons(signal: Signal, n: int) -> tuple[str, ...]:
    """The ``n`` strongest factors agreeing with the signal's direction, strongest first.

    Strength is the factor's signed contribution scaled to the fused vote: indicator votes are
    weighted by their timeframe's fusion weight (the ``vote`` factor's weight), reversion
    points (0-25 each) by 1/25 and the timeframe weight, microstructure contributions (score
    points) by 1/50. Each reason reads ``<name> <timeframe>: <note>``.
    """
    if n <= 0 or signal.direction is Direction.NEUTRAL:
        return ()
    sign = 1.0 if signal.direction is Direction.LONG else -1.0
    tf_weight = {
        f.timeframe: f.weight for f in signal.factors if f.category == "timeframe"
    }
    reversion = signal.signal_type in (SignalType.REVERSION_LONG, SignalType.REVERSION_SHORT)
    scored: list[tuple[float, int, Factor]] = []
    for index, factor in enumerate(signal.factors):
        if factor.category == "indicator":
            strength = factor.contribution * tf_weight.get(factor.timeframe, 1.0)
        elif factor.category == "reversion" and reversion and factor.weight > 0:
            strength = factor.contribution / factor.weight * tf_weight.get(factor.timeframe, 1.0)
        elif factor.category == "micro":
            strength = factor.contribution / 50.0
        else:
            continue
        if strength * sign > 0:
            scored.append((abs(strength), index, factor))
    # Ties keep the breakdown order (stable sort on strength only).
    scored.sort(key=lambda item: (-item[0], item[1]))
    out: list[str] = []
    for _, _, factor in scored[:n]:
        label = f"{factor.name} {factor.timeframe}".strip()
        out.append(f"{label}: {factor.note}" if factor.note else label)
    return tuple(out)


def _filter_note(signal: Signal) -> str:
    """The fired risk filters with their notes (``trap_wick: downgrades: ...``)."""
    notes = {
        f.name.removeprefix("filter."): f.note
        for f in signal.factors
        if f.category == "filter" and f.name.removeprefix("filter.") in signal.filters
    }
    return "; ".join(
        f"{name}: {notes[name]}" if notes.get(name) else name for name in signal.filters
    )


@dataclass(slots=True)
class _Budget:
    """Cooldown and daily-maximum bookkeeping of one rule × symbol."""

    last_ms: int | None = None
    day: int = -1
    count: int = 0


class AlertEngine:
    """Turns signals, prices and pick status changes into alerts, honouring the rules.

    Args:
        config: The ``[alerts]`` section (replace it with :meth:`set_config`).
        tz: Time zone of ``Alert.time_local``; ``None`` = the system's local zone.

    Appearances, cooldowns, daily counts and price arming are kept in memory; after a
    restart, :meth:`restore` seeds them from the alert log: the cooldowns and daily counts
    from recent alerts, and the price levels already hit, so a ``once`` level that fired
    before (any day) starts disarmed and never fires again.
    """

    def __init__(self, config: AlertsConfig, *, tz: tzinfo | None = None) -> None:
        self._config = config
        self._tz = tz
        # (rule, symbol, source) -> key of the matching signal last seen (None = none).
        self._seen: dict[tuple[str, str, str], tuple[object, ...] | None] = {}
        self._budget: dict[tuple[str, str], _Budget] = {}
        self._disarmed: set[tuple[PriceAlert, str]] = set()
        # (symbol, side, threshold) of every price level that fired, this run or (restored)
        # before it: a ``once`` level on one of them stays quiet, whatever its name.
        self._levels_hit: set[tuple[str, str, float]] = set()
        self._fired = 0
        self._cooldown = 0
        self._daily = 0

    @property
    def config(self) -> AlertsConfig:
        """The section in use."""
        return self._config

    def set_config(self, config: AlertsConfig) -> None:
        """Use new rules (rules editor); state of rules whose name stays is kept, and price
        levels already hit stay hit (a ``once`` level on one of them stays quiet)."""
        names = {r.name for r in config.rules}
        self._config = config
        self._seen = {k: v for k, v in self._seen.items() if k[0] in names}
        self._budget = {
            k: v for k, v in self._budget.items() if k[0] in names or k[0] == PICK_RULE
        }
        levels = set(config.price_alerts)
        self._disarmed = {k for k in self._disarmed if k[0] in levels}

    @property
    def stats(self) -> AlertStats:
        """Counters since start."""
        return AlertStats(self._fired, self._cooldown, self._daily)

    def restore(
        self,
        history: Iterable[tuple[str, str, int]],
        *,
        price_levels: Iterable[tuple[str, str, float]] = (),
    ) -> None:
        """Seed cooldowns, daily counts and price arming from past alerts (after a restart).

        Args:
            history: ``(rule, symbol, time_ms)`` of alerts already sent (e.g. the alert log's
                rows of the current UTC day), time in ms UTC, any order.
            price_levels: ``(symbol, side, threshold)`` of price levels that already fired,
                any day (``side`` is ``above`` or ``below``, ``threshold`` the level in quote
                currency, exactly as configured; e.g.
                :meth:`storage.alerts.AlertLogStore.price_levels_hit`). A ``once`` level
                with the same symbol, side and threshold starts disarmed, now and in any
                later :meth:`set_config`; other levels are unaffected (they arm as usual).
        """
        for rule, symbol, time_ms in sorted(history, key=lambda h: h[2]):
            self._spend(self._budget.setdefault((rule, symbol), _Budget()), time_ms)
        self._levels_hit.update(
            (symbol, side, float(threshold)) for symbol, side, threshold in price_levels
        )

    # -- signals ---------------------------------------------------------------------------

    def on_signal(
        self,
        symbol: str,
        signal: Signal | None,
        now: int,
        *,
        watchlist: Collection[str] = (),
        risk_profile: str | None = None,
        source: str | None = None,
    ) -> list[Alert]:
        """Alerts for the latest signal of ``symbol`` (call after every recompute).

        Args:
            symbol: Venue symbol.
            signal: Its latest fused or microstructure signal; ``None`` = no signal now (a
                later one is a new appearance).
            now: Engine clock, ms UTC (cooldowns and UTC days run on it).
            watchlist: Symbols on the watchlist (for ``watchlist_only`` rules).
            risk_profile: Active risk profile; ``None`` = the signal's own ``risk_profile``.
            source: ``technical`` or ``micro``; ``None`` = from the signal type (needed only
                with ``signal=None``, default ``technical``).

        Returns:
            New alerts, one per rule that fires, in rule order.
        """
        if source is None:
            source = (
                "micro" if signal is not None and signal.signal_type in MICRO_TYPES
                else "technical"
            )
        alerts: list[Alert] = []
        for rule in self._config.rules:
            key = (rule.name, symbol, source)
            match = (
                self._match_key(rule, symbol, signal, watchlist, risk_profile)
                if self._config.enabled and rule.enabled and signal is not None
                else None
            )
            previous = self._seen.get(key)
            self._seen[key] = match
            if match is None or match == previous or signal is None:
                continue
            if self._allow(rule, symbol, now):
                alerts.append(self._signal_alert(rule, symbol, signal, now))
        self._fired += len(alerts)
        return alerts

    def _match_key(
        self,
        rule: AlertRule,
        symbol: str,
        signal: Signal,
        watchlist: Collection[str],
        risk_profile: str | None,
    ) -> tuple[object, ...] | None:
        """Identity of the signal's appearance when it passes ``rule``, else ``None``."""
        if signal.blocked or signal.direction is Direction.NEUTRAL:
            return None
        if rule.signal_types and signal.signal_type.value not in rule.signal_types:
            return None
        if signal.direction is Direction.LONG and signal.score < rule.min_score:
            return None
        if signal.direction is Direction.SHORT and signal.score > 100.0 - rule.min_score:
            return None
        if signal.confidence < rule.min_confidence:
            return None
        if rule.symbols and symbol not in rule.symbols:
            return None
        if rule.watchlist_only and symbol not in watchlist:
            return None
        profile = risk_profile or signal.risk_profile
        if rule.risk_profile is not None and profile != rule.risk_profile:
            return None
        if signal.signal_type in MICRO_TYPES:
            return (signal.direction, signal.signal_type, signal.as_of)
        return (signal.direction, signal.signal_type)

    def _allow(self, rule: AlertRule, symbol: str, now: int) -> bool:
        """Cooldown and daily maximum of ``rule`` for ``symbol``; spends one when allowed."""
        budget = self._budget.setdefault((rule.name, symbol), _Budget())
        if budget.last_ms is not None and now - budget.last_ms < rule.cooldown_s * 1000:
            self._cooldown += 1
            log.debug("alert %s %s held back by cooldown", rule.name, symbol)
            return False
        if rule.daily_max and budget.day == utc_day(now) and budget.count >= rule.daily_max:
            self._daily += 1
            log.debug("alert %s %s held back by daily maximum", rule.name, symbol)
            return False
        self._spend(budget, now)
        return True

    @staticmethod
    def _spend(budget: _Budget, now: int) -> None:
        day = utc_day(now)
        if budget.day != day:
            budget.day, budget.count = day, 0
        budget.count += 1
        budget.last_ms = now if budget.last_ms is None else max(budget.last_ms, now)

    def _signal_alert(self, rule: AlertRule, symbol: str, signal: Signal, now: int) -> Alert:
        plan = signal.plan
        entry = plan.entry if plan is not None else None
        utc, local = format_times(now, self._tz)
        return Alert(
            time=now,
            time_utc=utc,
            time_local=local,
            rule=rule.name,
            symbol=symbol,
            kind="signal",
            side=signal.direction.value,
            type=signal.signal_type.value,
            score=signal.score,
            confidence=signal.confidence,
            price=entry,
            entry=entry,
            stop_loss=plan.stop_loss if plan is not None else None,
            take_profit_1=plan.take_profit_1 if plan is not None else None,
            take_profit_2=plan.take_profit_2 if plan is not None else None,
            stop_loss_pct=pct_from(entry, plan.stop_loss if plan is not None else None),
            take_profit_1_pct=pct_from(entry, plan.take_profit_1 if plan is not None else None),
            take_profit_2_pct=pct_from(entry, plan.take_profit_2 if plan is not None else None),
            risk_reward=plan.risk_reward if plan is not None else None,
            timeframe=plan.timeframe if plan is not None else "",
            reasons=top_reasons(signal, self._config.top_reasons),
            note=_filter_note(signal),
            as_of=signal.as_of,
        )

    # -- price levels ----------------------------------------------------------------------

    def on_price(self, symbol: str, price: float, now: int) -> list[Alert]:
        """Alerts of the price levels of ``symbol`` that ``price`` reaches.

        A level fires when the price is at or beyond it while armed (so a level the price
        already sits beyond fires on the first price seen); a ``once`` level then stays
        quiet for good, and so does any ``once`` level with the same symbol, side and
        threshold (renamed, re-added, or after a restart: :meth:`restore`); another level
        re-arms when the price is back on the near side.

        Args:
            symbol: Venue symbol.
            price: Last price, quote currency.
            now: Engine clock, ms UTC.
        """
        if not self._config.enabled:
            return []
        alerts: list[Alert] = []
        hits: list[tuple[str, str, float]] = []
        for level in self._config.price_alerts:
            if level.symbol != symbol:
                continue
            for side, threshold in (("above", level.above), ("below", level.below)):
                if threshold is None:
                    continue
                hit = price >= threshold if side == "above" else price <= threshold
                key = (level, side)
                if not hit:
                    if not level.once:
                        self._disarmed.discard(key)
                    continue
                spot = (level.symbol, side, threshold)
                if key in self._disarmed or (level.once and spot in self._levels_hit):
                    continue
                self._disarmed.add(key)
                hits.append(spot)
                alerts.append(self._price_alert(level, side, threshold, price, now))
        # After the loop: levels sharing a threshold all fire on the same price.
        self._levels_hit.update(hits)
        self._fired += len(alerts)
        return alerts

    def _price_alert(
        self, level: PriceAlert, side: str, threshold: float, price: float, now: int
    ) -> Alert:
        utc, local = format_times(now, self._tz)
        word = "at or above" if side == "above" else "at or below"
        return Alert(
            time=now,
            time_utc=utc,
            time_local=local,
            rule=level.name or PRICE_RULE,
            symbol=level.symbol,
            kind="price",
            type=f"PRICE_{side.upper()}",
            price=price,
            level=threshold,
            note=f"price {price:g} {word} {threshold:g}",
        )

    # -- picks -----------------------------------------------------------------------------

    def on_pick_status(self, change: PickStatusChange | PickTransition) -> list[Alert]:
        """An alert for a pick's status change (none when disabled, or when the status did
        not change and the pick did not end).

        Args:
            change: The change (or the picks tracker's transition); its time becomes the
                alert time.
        """
        if isinstance(change, PickTransition):
            change = PickStatusChange.from_transition(change)
        if (
            not self._config.enabled
            or not self._config.pick_status
            or (change.new_status == change.old_status and not change.final)
        ):
            return []
        utc, local = format_times(change.time, self._tz)
        note = f"{change.old_status} → {change.new_status}" + (" (closed)" if change.final else "")
        if change.price is not None:
            note += f" at {change.price:g}"
        if change.realized_r is not None:
            note += f", {change.realized_r:+.2f} R"
        if change.note:
            note += f"; {change.note}"
        alert = Alert(
            time=change.time,
            time_utc=utc,
            time_local=local,
            rule=PICK_RULE,
            symbol=change.symbol,
            kind="pick",
            side=change.side,
            type=change.new_status,
            price=change.price,
            entry=change.entry,
            stop_loss=change.stop_loss,
            take_profit_1=change.take_profit_1,
            take_profit_2=change.take_profit_2,
            stop_loss_pct=pct_from(change.entry, change.stop_loss),
            take_profit_1_pct=pct_from(change.entry, change.take_profit_1),
            take_profit_2_pct=pct_from(change.entry, change.take_profit_2),
            note=note,
            as_of=change.pick_id,
        )
        self._fired += 1
        return [alert]
