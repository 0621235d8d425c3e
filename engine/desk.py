"""The trader's desk: picks, the watchlist and alerts of one running pipeline.

:class:`Desk` is what the UI (and the runner) talk to for everything the trader marks and is
told about. It owns the stores on the pipeline's database, the :class:`engine.picks.
PickTracker` fed with every trade and kline, the :class:`engine.alerts.rules.AlertEngine` fed
with every snapshot, and the :class:`engine.alerts.dispatcher.AlertDispatcher` that logs each
alert before delivering it. Writes (a new pick, a status change, a watchlist toggle) are
committed before the call returns; reads come from one frozen :class:`DeskSnapshot`, rebuilt
when something changed, so the UI never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import msgspec

from engine.alerts.channels import AlertChannel, InAppChannel, build_channels
from engine.alerts.config import AlertsConfig
from engine.alerts.dispatcher import AlertDispatcher, ChannelHealth
from engine.alerts.rules import Alert, AlertEngine
from engine.models import EngineSnapshot
from engine.picks import PicksConfig, PickTotals, PickTracker, PickView, pick_from_signal, totals
from feeds.events import Kline, MarketEvent, Trade
from storage.alerts import AlertLogEntry, AlertLogStore
from storage.db import Database
from storage.picks import Pick, PickStore, PickTransition, WatchlistStore

log = logging.getLogger(__name__)

HISTORY_SHOWN = 200
"""Ended picks kept in the snapshot (newest first)."""
ALERTS_SHOWN = 200
"""Alert log rows kept in the snapshot (newest first)."""
EARLY_ALERTS = 5
"""In-app alerts raised before the UI registers (startup) that it is shown when it does, the
most recent ones."""

PickListener = Callable[[PickTransition], None]
"""Called on the event loop for every pick status change (after it was stored)."""
AlertListener = Callable[[Alert], None]
"""The in-app channel: called on the event loop for every alert (toast + bell)."""


class DeskSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the picks, watchlist and alert views show, at one instant.

    Attributes:
        version: Increments whenever anything changed.
        time: Engine clock, ms UTC.
        open_picks: Live picks with their numbers at the last price, oldest first.
        history: Ended picks (TP2, SL, CLOSED, EXPIRED, or TP1 ended at break-even), newest
            first, at most :data:`HISTORY_SHOWN`.
        totals: Win rate, total R and count over every ended pick.
        watchlist: Watched symbols, in the order they were added.
        alerts: Alert log, newest first, at most :data:`ALERTS_SHOWN`.
        channels: Alert channel name → health (``ok``, ``failing: reason``, ``disabled``).
    """

    version: int
    time: int
    open_picks: tuple[PickView, ...] = ()
    history: tuple[Pick, ...] = ()
    totals: PickTotals | None = None
    watchlist: tuple[str, ...] = ()
    alerts: tuple[AlertLogEntry, ...] = ()
    channels: dict[str, ChannelHealth] = msgspec.field(default_factory=dict)


class Desk:
    """Picks, watchlist and alerts over one database.

    Args:
        db: The opened database.
        picks: ``[picks]`` settings (expiry, paper sizing, TP1 fraction).
        alerts: ``[alerts]`` settings (rules, channels).
        clock: Engine clock, ms UTC.
        channels: Alert channels besides the in-app one; ``None`` builds them from
            ``alerts`` (:func:`engine.alerts.channels.build_channels`).
        disabled_channels: Configured channel → why it is unusable (shown as disabled).
    """

    def __init__(
        self,
        db: Database,
        *,
        picks: PicksConfig,
        alerts: AlertsConfig,
        clock: Callable[[], int],
        channels: list[AlertChannel] | None = None,
        disabled_channels: dict[str, str] | None = None,
    ) -> None:
        self.picks_config = picks
        self._clock = clock
        self._picks = PickStore(db, tp1_fraction=picks.tp1_fraction)
        self._watch = WatchlistStore(db)
        self._alert_log = AlertLogStore(db)
        self._tracker = PickTracker(tp1_fraction=picks.tp1_fraction)
        self._rules = AlertEngine(alerts)
        # Until the UI registers its toast, in-app alerts go to the log (headless, tests), and
        # the newest wait for the UI: the app polls the desk, so it registers a moment after
        # start, when the first alerts may already be out.
        self._early: deque[Alert] = deque(maxlen=EARLY_ALERTS)
        self._in_app = InAppChannel(self._before_ui)
        if channels is None:
            built, disabled = build_channels(alerts, in_app=self._in_app)
            channels = [c for c in built if c is not self._in_app]
            disabled_channels = {**disabled, **(disabled_channels or {})}
        self._dispatcher = AlertDispatcher(
            [self._in_app, *channels],
            self._alert_log,
            config=alerts,
            disabled=disabled_channels,
            on_health=lambda _: self._changed(),
        )
        self._history: list[Pick] = []
        self._watchlist: list[str] = []
        self._alerts: deque[AlertLogEntry] = deque(maxlen=ALERTS_SHOWN)
        self._listeners: list[PickListener] = []
        self._watch_listeners: list[Callable[[str, bool], None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._snapshot = DeskSnapshot(version=0, time=0)
        self._dirty = True
        self._last_engine: EngineSnapshot | None = None
        self.store_errors = 0
        """Pick status changes that could not be stored (logged; retried on the next one)."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load picks, watchlist and recent alerts; restore the alert rules' state from the
        alert log (cooldowns and daily counts of the last 24 h, ``once`` price levels that
        already fired on any day stay disarmed); start the alert dispatcher."""
        for pick in await self._picks.open():
            self._tracker.add(pick)
        self._history = [p for p in await self._picks.history()][:HISTORY_SHOWN]
        self._watchlist = await self._watch.symbols()
        self._alerts.extend(await self._alert_log.recent(ALERTS_SHOWN))
        self._rules.restore(
            await self._alert_log.history_since(self._clock() - 86_400_000),
            price_levels=await self._alert_log.price_levels_hit(),
        )
        self._dispatcher.start()
        await self._dispatcher.redeliver()
        self._changed()

    async def stop(self) -> None:
        """Finish pending writes and deliveries."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._dispatcher.stop()

    # -- UI reads --------------------------------------------------------------------------

    def snapshot(self, engine: EngineSnapshot | None = None) -> DeskSnapshot:
        """The current desk view (the same object while nothing changed).

        Args:
            engine: The latest engine snapshot, for live prices and staleness of open picks.
        """
        if engine is not None and engine is not self._last_engine:
            self._last_engine = engine
            self._dirty = True
        if self._dirty:
            now = self._clock()
            self._snapshot = DeskSnapshot(
                version=self._snapshot.version + 1,
                time=now,
                open_picks=tuple(self._tracker.views(self._last_engine, now)),
                history=tuple(self._history),
                totals=totals(self._history),
                watchlist=tuple(self._watchlist),
                alerts=tuple(self._alerts),
                channels=dict(self._dispatcher.health()),
            )
            self._dirty = False
        return self._snapshot

    def default_pick(self, symbol: str, engine: EngineSnapshot) -> Pick | None:
        """The pick form's defaults for ``symbol``: its current plan (technical, else the micro
        signal) with paper sizing; ``None`` when it has no LONG/SHORT plan."""
        row = engine.symbols.get(symbol)
        if row is None:
            return None
        for signal in (row.signal, row.micro_signal):
            if signal is not None:
                pick = pick_from_signal(signal, opened_ms=self._clock(), cfg=self.picks_config)
                if pick is not None:
                    return pick
        return None

    def on_alert(self, listener: AlertListener | None) -> None:
        """Register the in-app channel (the UI's toast + bell); ``None`` goes back to logging
        in-app alerts.

        A new listener first gets the in-app alerts raised while none was registered (the last
        :data:`EARLY_ALERTS`), oldest first, so nothing from the first moments is only logged.
        """
        if listener is None:
            self._in_app.register(self._before_ui)
            return
        self._in_app.register(listener)
        early = list(self._early)
        self._early.clear()
        for alert in early:
            listener(alert)

    def _before_ui(self, alert: Alert) -> None:
        _log_alert(alert)
        self._early.append(alert)

    def on_pick_change(self, listener: PickListener) -> None:
        """Be told of every stored pick status change (the UI toasts them)."""
        self._listeners.append(listener)

    # -- UI writes (committed before they return) ------------------------------------------

    async def add_pick(self, pick: Pick) -> Pick:
        """Store a new pick and start following it.

        Raises:
            ValueError: naming the field when the levels are inconsistent for its side.
        """
        stored = await self._picks.add(pick)
        self._tracker.add(stored)
        self._changed()
        return stored

    async def close_pick(self, pick_id: int, price: float | None = None) -> Pick:
        """Close a live pick at ``price`` (default: the last known price of its symbol).

        Raises:
            storage.picks.PickError: unknown or already ended pick, or no price known.
        """
        if price is None:
            pick = await self._picks.get(pick_id)
            last = self._tracker.last_price(pick.symbol) if pick is not None else None
            if last is None:
                from storage.picks import PickError

                raise PickError(f"pick {pick_id}: no price known to close it at")
            price = last[0]
        closed = await self._picks.close(pick_id, price, self._clock())
        self._tracker.remove(pick_id)
        self._history.insert(0, closed)
        del self._history[HISTORY_SHOWN:]
        self._changed()
        return closed

    async def remove_pick(self, pick_id: int) -> None:
        """Delete a pick and its events (a mistake, not a trade)."""
        await self._picks.remove(pick_id)
        self._tracker.remove(pick_id)
        self._history = [p for p in self._history if p.id != pick_id]
        self._changed()

    async def toggle_watch(self, symbol: str) -> bool:
        """Add or remove ``symbol`` on the watchlist; returns True when it is now watched."""
        watched = await self._watch.toggle(symbol)
        self._watchlist = await self._watch.symbols()
        for listener in self._watch_listeners:
            listener(symbol, watched)
        self._changed()
        return watched

    def on_watch_change(self, listener: Callable[[str, bool], None]) -> None:
        """Be told ``(symbol, watched)`` on every toggle (the runner keeps watched symbols'
        order books subscribed)."""
        self._watch_listeners.append(listener)

    def watchlist(self) -> tuple[str, ...]:
        """Watched symbols."""
        return tuple(self._watchlist)

    def alerts_config(self) -> AlertsConfig:
        """The alert rules in force."""
        return self._rules.config

    def set_alerts_config(self, config: AlertsConfig) -> None:
        """Replace the alert rules (the rules screen); cooldown and daily counts carry over."""
        self._rules.set_config(config)
        self._changed()

    # -- pipeline inputs (runner) ----------------------------------------------------------

    def on_event(self, event: MarketEvent) -> None:
        """A trade or kline of any symbol: moves the picks of that symbol (synchronous)."""
        if isinstance(event, Trade):
            transitions = self._tracker.on_trade(event)
        elif isinstance(event, Kline):
            transitions = self._tracker.on_kline(event)
        else:
            return
        if transitions:
            self._store(transitions)

    def on_snapshot(self, engine: EngineSnapshot) -> None:
        """After an engine recompute: expire picks, fire signal and price alerts."""
        now = self._clock()
        expired = self._tracker.expire(now)
        if expired:
            self._store(expired)
        watch = frozenset(self._watchlist)
        for symbol, row in engine.symbols.items():
            if row.stale:
                continue
            for signal in (row.signal, row.micro_signal):
                if signal is not None:
                    for alert in self._rules.on_signal(
                        symbol, signal, now, watchlist=watch, risk_profile=signal.risk_profile
                    ):
                        self._publish(alert)
            if row.last_price is not None:
                for alert in self._rules.on_price(symbol, row.last_price, now):
                    self._publish(alert)
        self._dirty = True

    # -- internals -------------------------------------------------------------------------

    def _store(self, transitions: list[PickTransition]) -> None:
        task = asyncio.get_running_loop().create_task(self._apply(transitions))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _apply(self, transitions: list[PickTransition]) -> None:
        for transition in transitions:
            try:
                stored = await self._picks.apply(transition)
            except Exception:
                self.store_errors += 1
                log.exception("pick %d: status change not stored", transition.pick.id)
                continue
            if not stored.live:
                self._history.insert(0, stored)
                del self._history[HISTORY_SHOWN:]
            for listener in self._listeners:
                listener(transition)
            for alert in self._rules.on_pick_status(transition):
                self._publish(alert)
        self._changed()

    def _publish(self, alert: Alert) -> None:
        if not self._dispatcher.submit(alert):
            log.error("alert for %s dropped: dispatcher queue full", alert.symbol)
            return
        self._changed()
        task = asyncio.get_running_loop().create_task(self._refresh_alerts())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _refresh_alerts(self) -> None:
        await self._dispatcher.drain()
        # Fetch, then swap: refreshes overlap, and a clear before an await would let two of
        # them both append their rows.
        rows = await self._alert_log.recent(ALERTS_SHOWN)
        self._alerts.clear()
        self._alerts.extend(rows)
        self._changed()

    def _changed(self) -> None:
        self._dirty = True


def _log_alert(alert: Alert) -> None:
    log.info("alert %s %s %s: %s", alert.rule, alert.symbol, alert.type, alert.note)
