"""The perpscope Textual app: wires the market service to the screens, holds global keys.

A thin App (frogmouth ``frogmouth/app/app.py``; posting ``make_posting``): it starts
``service.run()`` in one App-owned worker, applies theme and keymap, and pushes screens.
Layout, screen keys and the snapshot timer live in :mod:`tui.screens.main`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ai.config import AiConfig
from ai.session import AiSession
from engine.service import MarketService
from storage.chat import ChatStore
from storage.db import Database, DatabaseError
from tui.commands import PerpscopeCommands
from tui.screens.help import HelpScreen, keys_from_bindings
from tui.screens.main import MainScreen
from tui.ui_config import UiConfig

log = logging.getLogger(__name__)

FEED_WORKER = "market"
"""Name of the worker running ``service.run()``."""
FEED_GROUP = "feeds"
"""Worker group of the market feed."""


class PerpscopeApp(App[None]):
    """Live monitor and multi-timeframe signal scanner for USDT perpetuals."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "perpscope"
    COMMANDS = App.COMMANDS | {PerpscopeCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Quit perpscope", id="app.quit"),
        Binding("question_mark", "help", "Help", tooltip="Keys, glyphs and columns", id="app.help"),
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            show=False,
            priority=True,
            tooltip="Open the command palette",
            id="app.command_palette",
        ),
        Binding(
            "c",
            "chat",
            "Chat",
            show=False,
            tooltip="Ask the AI analyst about the selected symbol",
            id="chat.focus",
        ),
    ]

    feed_error: Reactive[str] = reactive("")
    """Why the market worker stopped (empty while it runs); status bars show it in red."""

    def __init__(
        self,
        service: MarketService,
        ui: UiConfig,
        *,
        exchange: str = "binanceusdm",
        clock: Callable[[], float] | None = None,
        ai: AiConfig | None = None,
        db_path: Path | None = None,
    ) -> None:
        """Create the app (see :func:`make_app`)."""
        super().__init__()
        self.service = service
        """The market pipeline the screens read from."""
        self.ui = ui
        """UI settings."""
        self.exchange = exchange
        """Exchange id shown in the status bar."""
        self.clock: Callable[[], float] = clock or time.time
        """Wall clock, epoch seconds (injected for deterministic screenshots)."""
        self._reported_clashes: set[str] = set()
        self.sub_title = exchange
        self._ai_config = ai or AiConfig()
        self._db_path = db_path
        self._db: Database | None = None
        self._ai_session: AiSession | None = None

    async def ai_session(self) -> AiSession:
        """The AI session, created on first use (the database is opened then, if any)."""
        if self._ai_session is None:
            store = None
            if self._db_path is not None:
                db = Database(self._db_path)
                try:
                    await db.open()
                    self._db, store = db, ChatStore(db)
                except DatabaseError as exc:
                    self.notify(f"{exc}; chats are not saved", severity="warning", title="AI")
            self._ai_session = AiSession(self._ai_config, store=store)
        return self._ai_session

    async def action_chat(self) -> None:
        """Open the AI analyst on the selected symbol (the market when none is selected)."""
        from tui.screens.chat import ChatScreen

        if isinstance(self.screen, ChatScreen):
            self.screen.pane.query_one("#chat-input").focus()
            return
        symbol = getattr(self.screen, "symbol", None)
        if not isinstance(symbol, str):
            table = getattr(self.screen, "table", None)
            symbol = getattr(table, "cursor_symbol", None)
        session = await self.ai_session()
        self.push_screen(ChatScreen(self.service, session, symbol if symbol else None))

    async def on_unmount(self) -> None:
        if self._ai_session is not None:
            await self._ai_session.close()
        if self._db is not None:
            await self._db.close()

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.service, self.ui, exchange=self.exchange, clock=self.clock)

    def on_mount(self) -> None:
        if self.ui.theme in self.available_themes:
            self.theme = self.ui.theme
        else:
            self.notify(
                f"unknown theme {self.ui.theme!r} in [ui] theme; using {self.theme}",
                severity="warning",
                title="config",
            )
        self.set_keymap(self.ui.keymap)
        self.run_worker(
            self.service.run(),
            name=FEED_WORKER,
            group=FEED_GROUP,
            description="market pipeline: backfill, WebSocket feeds, engine",
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != FEED_GROUP:
            return
        if event.state is WorkerState.ERROR:
            error = worker.error
            self.feed_error = f"{type(error).__name__}: {error}"
            log.error("market worker stopped: %s", self.feed_error, exc_info=error)
            self.notify(self.feed_error, title="Market feed stopped", severity="error", timeout=15)
            if self.ui.bell:
                self.bell()
        elif event.state is WorkerState.SUCCESS:
            log.info("market worker finished")

    def action_help(self) -> None:
        """Show keys (from the active bindings), glyph legend and column meanings."""
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.screen
        pairs = [
            (active.binding, self.get_key_display(active.binding))
            for active in screen.active_bindings.values()
        ]
        snapshot = getattr(screen, "snapshot", None)
        timeframes = tuple(getattr(snapshot, "timeframes", ()))
        self.push_screen(HelpScreen(keys_from_bindings(pairs), timeframes))

    def get_system_commands(self, screen: Screen[object]) -> list[SystemCommand]:
        # Quit and keys are offered by PerpscopeCommands (as Quit / Help); keep the rest.
        return [
            command
            for command in super().get_system_commands(screen)
            if command.title not in ("Quit", "Keys")
        ]

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: DOMNode) -> None:
        ids = ", ".join(sorted(b.id or b.action for b in clashed_bindings))
        if ids in self._reported_clashes:
            return
        self._reported_clashes.add(ids)
        self.notify(
            f"keymap: these bindings now share a key: {ids}", severity="warning", title="config"
        )


def make_app(
    service: MarketService,
    ui: UiConfig,
    *,
    title_exchange: str = "binanceusdm",
    clock: Callable[[], float] | None = None,
    ai: AiConfig | None = None,
    db_path: Path | None = None,
) -> PerpscopeApp:
    """Build the app around a market service.

    Args:
        service: The running market pipeline (``engine.runner.MarketRunner`` or a replay);
            the app calls ``service.run()`` once in a worker and reads ``snapshot()`` /
            ``candles()`` from its screens.
        ui: The ``[ui]`` settings section.
        title_exchange: Exchange id shown before the first snapshot arrives.
        clock: Wall clock in epoch seconds for the status bar; ``time.time`` by default
            (tests pass a fixed one).
        ai: The ``[ai]`` section for the analyst chat (``c``); defaults when ``None``.
        db_path: SQLite file for chat threads and verdicts; ``None`` keeps them in memory
            (replays: verdicts on recorded data must not mix with live ones).

    Returns:
        The app; call ``run()`` on it (or ``run_test()`` in tests).
    """
    return PerpscopeApp(
        service, ui, exchange=title_exchange, clock=clock, ai=ai, db_path=db_path
    )
