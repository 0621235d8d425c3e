"""The perpscope Textual app: wires the market service to the screens, holds global keys.

A thin App (frogmouth ``frogmouth/app/app.py``; posting ``make_posting``): it starts
``service.run()`` in one App-owned worker, applies theme and keymap, and pushes screens.
Layout, screen keys and the snapshot timer live in :mod:`tui.screens.main`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import platformdirs
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ai.config import AiConfig
from ai.session import AiSession
from engine.alerts.dispatcher import ChannelHealth
from engine.alerts.message import body_lines, title
from engine.alerts.rules import Alert
from engine.desk import Desk
from engine.history import TrackRecord
from engine.service import MarketService
from storage.chat import ChatStore
from storage.db import Database, DatabaseError
from storage.picks import PickTransition
from tui.commands import PerpscopeCommands
from tui.screens.help import HelpScreen, keys_from_bindings
from tui.screens.main import MainScreen
from tui.ui_config import UiConfig

log = logging.getLogger(__name__)

FEED_WORKER = "market"
"""Name of the worker running ``service.run()``."""
FEED_GROUP = "feeds"
"""Worker group of the market feed."""
DESK_POLL_S = 0.5
"""How often the app looks for the desk (it exists once the pipeline opened its database),
the alert channels' health and a new track record."""
TOAST_S = 8.0
"""How long an alert or pick-status toast stays up, seconds."""
APP_NAME = "perpscope"
"""Application name for the default data directory (platformdirs)."""


def failing_channels(channels: dict[str, ChannelHealth]) -> tuple[tuple[str, str], ...]:
    """Alert channels that are failing, for the status bar.

    Args:
        channels: Channel name → health, from :attr:`engine.desk.DeskSnapshot.channels`.

    Returns:
        ``(name, reason)`` per failing channel, in the desk's order; disabled channels are
        left out (they were turned off on purpose or cannot run, which the alert log says).
    """
    return tuple((name, h.reason) for name, h in channels.items() if h.state == "failing")


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
        Binding(
            "a",
            "alert_log",
            "Alerts",
            show=False,
            tooltip="Alert log: every alert and where it was delivered",
            id="app.alert_log",
        ),
        Binding(
            "A",
            "alert_rules",
            "Alert rules",
            show=False,
            tooltip="Add, edit, disable or delete alert rules and price alerts",
            id="app.alert_rules",
        ),
        Binding(
            "R",
            "track_record",
            "Track record",
            show=False,
            tooltip="Track record of the signals: hit rate (Wilson 95 %), avg R, expectancy",
            id="app.track_record",
        ),
        Binding(
            "ctrl+s",
            "svg_screenshot",
            "Screenshot",
            show=False,
            tooltip="Save an SVG screenshot to the data directory",
            id="app.screenshot",
        ),
    ]

    feed_error: Reactive[str] = reactive("")
    """Why the market worker stopped (empty while it runs); status bars show it in red."""
    alert_failures: Reactive[tuple[tuple[str, str], ...]] = reactive(())
    """Failing alert channels as ``(name, reason)`` (:func:`failing_channels`; empty when
    all deliver); status bars show them as a warning."""
    track_record: Reactive[TrackRecord | None] = reactive(None)
    """Latest track record of the emitted signals (``None`` without a database); the signal
    table's track column follows it."""
    watchlist: Reactive[tuple[str, ...]] = reactive(())
    """Watched symbols (the desk's :attr:`engine.desk.DeskSnapshot.watchlist`, followed at
    each desk poll; empty without a database); the signal table marks them."""

    def __init__(
        self,
        service: MarketService,
        ui: UiConfig,
        *,
        exchange: str = "binanceusdm",
        clock: Callable[[], float] | None = None,
        ai: AiConfig | None = None,
        db_path: Path | None = None,
        data_dir: Path | None = None,
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
        self.data_dir = data_dir or Path(platformdirs.user_data_dir(APP_NAME))
        """Where ``ctrl+s`` screenshots are saved."""
        self._desk: Desk | None = None
        self.alerts_toasted = 0
        """In-app alerts shown as toasts since start."""

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
            # Verdicts go to the pipeline too, so their outcomes are tracked like signals.
            self._ai_session = AiSession(
                self._ai_config, store=store, on_verdict=self.service.record_verdict
            )
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
        return MainScreen(
            self.service, self.ui, exchange=self.exchange, clock=self.clock,
            export_dir=self.data_dir / "exports",
        )

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
        self.set_interval(DESK_POLL_S, self._poll_desk, name="desk")
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

    # -- desk: in-app alerts, pick status toasts, channel health ----------------------------

    def _poll_desk(self) -> None:
        """Register on a new desk, follow channel health and the track record."""
        desk = self.service.desk()
        if desk is not self._desk:
            if self._desk is not None:
                self._desk.on_alert(None)
            self._desk = desk
            if desk is not None:
                desk.on_alert(self._on_alert)
                desk.on_pick_change(self._on_pick_change)
        if desk is not None:
            snapshot = desk.snapshot()
            self.alert_failures = failing_channels(snapshot.channels)
            self.watchlist = snapshot.watchlist
        else:
            self.alert_failures = ()
            self.watchlist = ()
        record = self.service.track_record()
        if record is not self.track_record:
            self.track_record = record

    def _on_alert(self, alert: Alert) -> None:
        """The in-app alert channel: a toast, and the bell when ``[alerts.in_app] bell``."""
        desk = self._desk
        config = desk.alerts_config().in_app if desk is not None else None
        if config is not None and not config.enabled:
            return
        severity: SeverityLevel = (
            "warning" if alert.kind == "pick" and alert.type == "SL" else "information"
        )
        self.notify(
            "\n".join(body_lines(alert)) or title(alert),
            title=title(alert),
            severity=severity,
            timeout=TOAST_S,
            markup=False,
        )
        self.alerts_toasted += 1
        if config is None or config.bell:
            self.bell()

    def _on_pick_change(self, transition: PickTransition) -> None:
        """A stored pick status change: a toast, and the bell when ``[picks] bell``."""
        pick = transition.pick
        price = f" at {transition.price:g}" if transition.price is not None else ""
        text = f"{transition.previous.value} → {pick.status.value}{price}"
        if transition.note:
            text += f"\n{transition.note}"
        self.notify(
            text,
            title=f"{pick.symbol} {pick.side.value} pick {pick.status.value}",
            severity="warning" if pick.status.value == "SL" else "information",
            timeout=TOAST_S,
            markup=False,
        )
        desk = self._desk
        if desk is None or desk.picks_config.bell:
            self.bell()

    # -- screens -------------------------------------------------------------------------

    def action_alert_log(self) -> None:
        """Open the alert log."""
        from tui.screens.alerts import AlertLogScreen

        if not isinstance(self.screen, AlertLogScreen):
            self.push_screen(AlertLogScreen(self.service))

    def action_alert_rules(self) -> None:
        """Open the alert rules editor."""
        from tui.screens.alert_rules import AlertRulesScreen

        if not isinstance(self.screen, AlertRulesScreen):
            self.push_screen(AlertRulesScreen(self.service))

    def action_track_record(self) -> None:
        """Open the track record (signal stats) screen."""
        from tui.screens.stats import StatsScreen

        if not isinstance(self.screen, StatsScreen):
            self.push_screen(StatsScreen(self.service))

    def action_svg_screenshot(self) -> None:
        """Save an SVG screenshot to the data directory (``ctrl+s``)."""
        self.svg_screenshot()

    def svg_screenshot(self) -> Path | None:
        """Save an SVG screenshot of the screen to the data directory and toast its path.

        Returns:
            The file written, or ``None`` when it could not be written (the toast says why).
        """
        stamp = datetime.fromtimestamp(self.clock(), tz=UTC).strftime("%Y%m%d-%H%M%S")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path = Path(self.save_screenshot(f"perpscope-{stamp}.svg", path=str(self.data_dir)))
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc}", title="Screenshot", severity="error")
            return None
        self.notify(str(path), title="Screenshot saved", timeout=TOAST_S, markup=False)
        return path

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
    data_dir: Path | None = None,
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
        data_dir: Where ``ctrl+s`` saves SVG screenshots; the platform's user data
            directory (platformdirs) when ``None``.

    Returns:
        The app; call ``run()`` on it (or ``run_test()`` in tests).
    """
    return PerpscopeApp(
        service,
        ui,
        exchange=title_exchange,
        clock=clock,
        ai=ai,
        db_path=db_path,
        data_dir=data_dir,
    )
