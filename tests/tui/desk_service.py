"""A finished replay with a real :class:`engine.desk.Desk` on a real SQLite database.

The session's :class:`tui_service.FinishedReplay` ran its runner without a database (and a
runner closes its desk when its replay completes), so picks tests open their own database
file and desk *inside the test's event loop* (aiosqlite futures belong to one loop) and serve
the replay's snapshots and candles with that desk. The desk is the project's own, unmocked;
its engine clock is the replay's end.
"""

from __future__ import annotations

from pathlib import Path

from tui_service import REPLAY_END_MS, FinishedReplay

from engine.alerts.config import AlertsConfig
from engine.desk import Desk
from engine.picks import PicksConfig
from storage.db import Database

DESK_CLOCK_MS = REPLAY_END_MS + 1_500
"""Engine clock of the desk: the replay's end plus the snapshot delay."""


class DeskReplay(FinishedReplay):
    """The finished replay's pipeline plus a desk opened by :meth:`open_desk`."""

    def __init__(self, replay: FinishedReplay) -> None:
        super().__init__(replay.runner)
        self._desk: Desk | None = None
        self.db: Database | None = None
        """The open database (``None`` before :meth:`open_desk`)."""

    def desk(self) -> Desk | None:
        """The desk (``None`` until :meth:`open_desk`)."""
        return self._desk

    async def open_desk(
        self, path: Path, picks: PicksConfig | None = None, alerts: AlertsConfig | None = None
    ) -> Desk:
        """Open ``path`` (migrated) and start a desk on it in the running loop (``[alerts]``
        defaults when ``alerts`` is ``None``)."""
        db = Database(path)
        await db.open()
        desk = Desk(db, picks=picks or PicksConfig(), alerts=alerts or AlertsConfig(),
                    clock=lambda: DESK_CLOCK_MS)
        await desk.start()
        self.db, self._desk = db, desk
        return desk

    async def close_desk(self) -> None:
        """Stop the desk and close the database."""
        if self._desk is not None:
            await self._desk.stop()
            self._desk = None
        if self.db is not None:
            await self.db.close()
            self.db = None
