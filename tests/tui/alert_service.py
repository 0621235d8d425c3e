"""A MarketService with a real desk and signal history, stepped over recorded klines.

:class:`DeskService` is :class:`tui_service.HistoryService` (the real engine fed with the
recorded 5m klines of the 55-symbol folder) plus what :class:`engine.runner.MarketRunner`
wires on its database: an in-memory :class:`storage.db.Database`, the
:class:`engine.history.SignalHistory` (stored signals, outcomes, track record) and the
:class:`engine.desk.Desk` (alert rules, dispatcher, alert log). Each :meth:`DeskService.step`
feeds one recorded bar per symbol, recomputes, and hands the snapshot to the history and the
desk exactly as the runner's ``_observe_history`` does, so alerts and outcomes are the real
ones, at deterministic engine times (screenshots never change).
"""

from __future__ import annotations

import asyncio
import socket

from pydantic import SecretStr
from tui_service import CUTOFF, SYMBOLS, HistoryService, replay_health

from engine.alerts.channels import AlertChannel, WebhookChannel
from engine.alerts.config import AlertRule, AlertsConfig
from engine.desk import Desk
from engine.history import SignalHistory, TrackRecord
from engine.picks import PicksConfig
from storage.db import Database

RAW_RULE = AlertRule(name="raw", min_score=50.0, min_confidence=0.0, cooldown_s=3600.0, daily_max=2)
"""Alerts on every new LONG/SHORT signal, at most once an hour and twice a day per symbol."""


def alerts_config(**changes: object) -> AlertsConfig:
    """``[alerts]`` for tests: the raw rule, no retries, short timeouts."""
    data: dict[str, object] = {
        "rules": [RAW_RULE],
        "retries": 0,
        "timeout_s": 2.0,
        "backoff_s": 0.05,
        **changes,
    }
    return AlertsConfig.model_validate(data)


def closed_port_url() -> SecretStr:
    """A webhook URL on a loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return SecretStr(f"http://127.0.0.1:{port}/hook")


class DeskService(HistoryService):
    """HistoryService + in-memory database, signal history and desk (module docstring).

    Args:
        alerts: ``[alerts]`` section of the desk.
        webhook: Add a webhook channel to this URL (besides the in-app one).
    """

    def __init__(self, alerts: AlertsConfig, *, webhook: SecretStr | None = None) -> None:
        super().__init__(SYMBOLS, CUTOFF, replay_health())
        self._alerts = alerts
        self._webhook = webhook
        self.db = Database(":memory:")
        self.history: SignalHistory | None = None
        self._desk: Desk | None = None
        self._channels: list[AlertChannel] = []

    async def open(self) -> None:
        """Load the recorded history, open the database, start the history and the desk."""
        await self.load()
        await self.db.open()
        self.history = SignalHistory(
            self.db,
            source="replay:alpergulsen-freqtrade",
            timeframes=list(self.engine.snapshot(self.health).timeframes),
        )
        await self.history.start()
        if self._webhook is not None:
            self._channels.append(WebhookChannel(self._webhook))
        desk = Desk(
            self.db,
            picks=PicksConfig(),
            alerts=self._alerts,
            clock=lambda: self.now_ms,
            channels=self._channels,
        )
        await desk.start()
        self._desk = desk

    async def step(self, bars: int = 1) -> None:
        """Feed ``bars`` recorded bars one at a time; after each, observe like the runner."""
        assert self.history is not None and self._desk is not None
        for _ in range(bars):
            await self.advance(1)
            snapshot = self.snapshot()
            self.history.observe(snapshot, self.engine.store.arrays)
            self._desk.on_snapshot(snapshot)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every alert was logged and every channel gave its verdict."""
        desk = self._desk
        assert desk is not None
        async with asyncio.timeout(timeout_s):
            while True:
                await asyncio.sleep(0.05)
                if desk._pending or any(e.pending for e in desk.snapshot().alerts):
                    continue
                # Desk._refresh_alerts tasks started together can interleave (clear, clear,
                # extend, extend) and leave rows twice in the snapshot; one refresh on its
                # own restores the log as stored. Reported to the lead (engine/desk.py).
                await desk._refresh_alerts()
                return

    async def close(self) -> None:
        """Stop the desk and the history, close the database and the channels."""
        if self._desk is not None:
            await self._desk.stop()
        if self.history is not None:
            await self.history.stop()
        for channel in self._channels:
            await channel.aclose()
        await self.db.close()

    # -- MarketService ---------------------------------------------------------------------

    def desk(self) -> Desk | None:
        """The desk (``None`` until :meth:`open`)."""
        return self._desk

    def track_record(self) -> TrackRecord | None:
        """The signal history's track record (``None`` until :meth:`open`)."""
        return self.history.track_record if self.history is not None else None
