"""Picks screen: open picks followed live, the history with totals, close / remove / export.

Pulls ``desk.snapshot(service.snapshot())`` at ``ui.refresh_hz`` into the
:class:`tui.widgets.picks_pane.PicksPane`. Closing and removing ask for confirmation first and
toast only after the desk committed the change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Static

from engine.desk import Desk
from engine.service import MarketService
from storage.picks import PickError
from tui import export
from tui.ui_config import UiConfig
from tui.widgets.picks_pane import PicksPane

log = logging.getLogger(__name__)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; dismisses with True on ``y`` / Yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; max-width: 100%; height: auto; border: thick $warning;
        background: $surface; padding: 0 1;
    }
    ConfirmScreen #confirm-buttons { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 1; }
    """

    def __init__(self, question: str) -> None:
        """Create the dialog.

        Args:
            question: What is asked (one or two lines).
        """
        super().__init__()
        self.question = question
        """The question shown."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("No (n)", id="no")
                yield Button("Yes (y)", id="yes", variant="warning")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Answer the question."""
        self.dismiss(yes)


class PicksScreen(Screen[None]):
    """Open picks and the pick history of the desk."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", id="picks.back"),
        Binding("h", "toggle_history", "History", tooltip="Open picks / ended picks with totals",
                id="picks.history"),
        Binding("c", "close_pick", "Close", tooltip="Close the selected pick at the last price",
                id="picks.close"),
        Binding("delete", "remove_pick", "Remove", tooltip="Delete the selected pick",
                id="picks.remove"),
        Binding("e", "export", "Export CSV", tooltip="Write every pick to a CSV file",
                id="picks.export"),
    ]

    def __init__(
        self,
        service: MarketService,
        desk: Desk,
        ui: UiConfig,
        *,
        export_dir: Path | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (engine snapshots for live prices and staleness).
            desk: Picks of the pipeline.
            ui: UI settings (refresh rate).
            export_dir: Where CSV exports go (default :func:`tui.export.default_export_dir`).
            clock: Wall clock in epoch seconds for export file names.
        """
        super().__init__()
        self._service = service
        self.desk = desk
        """The desk shown."""
        self._ui = ui
        self.export_dir = export_dir or export.default_export_dir()
        """Where CSV exports go."""
        self._clock = clock
        self._timer: Timer | None = None
        self.last_export: Path | None = None
        """The latest CSV written (for tests and the toast)."""

    def compose(self) -> ComposeResult:
        yield PicksPane(id="picks")
        yield Footer()

    @property
    def pane(self) -> PicksPane:
        """The picks pane."""
        return self.query_one(PicksPane)

    def on_mount(self) -> None:
        self._tick()
        self._timer = self.set_interval(1 / self._ui.refresh_hz, self._tick, name="picks")
        self.pane.table.focus()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._tick()
            self._timer.resume()

    def _tick(self) -> None:
        snapshot = self.desk.snapshot(self._service.snapshot())
        pane = self.pane
        if snapshot is not pane.desk:
            pane.desk = snapshot

    # ---------------------------------------------------------------- actions

    def action_back(self) -> None:
        """Return to the previous screen."""
        self.dismiss()

    def action_toggle_history(self) -> None:
        """Switch between the open picks and the history with totals."""
        self.pane.history = not self.pane.history

    def action_close_pick(self) -> None:
        """Ask, then close the selected live pick at the price the pane shows (the symbol's
        last price; without one, the desk's last traded price)."""
        pick = self.pane.selected()
        if pick is None or not pick.live:
            self.notify("select an open pick to close", severity="warning")
            return
        shown = self.pane.desk.open_picks if self.pane.desk is not None else ()
        price = next((v.price for v in shown if v.pick.id == pick.id), None)

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                closed = await self.desk.close_pick(pick.id, price)
            except (PickError, ValueError) as exc:
                self.notify(str(exc), title="pick not closed", severity="error")
                return
            self._tick()
            self.notify(
                f"#{closed.id} {closed.symbol} closed at {closed.close_price:g}"
                f" ({_r(closed.realized_r)})",
                title="pick closed",
            )

        self.app.push_screen(
            ConfirmScreen(f"Close pick #{pick.id} {pick.symbol} {pick.side.value} at "
                          f"{'the last price' if price is None else f'{price:g}'}?"),
            answered,
        )

    def action_remove_pick(self) -> None:
        """Ask, then delete the selected pick (a mistake, not a trade: no result is kept)."""
        pick = self.pane.selected()
        if pick is None:
            self.notify("no pick selected", severity="warning")
            return

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                await self.desk.remove_pick(pick.id)
            except (PickError, ValueError) as exc:
                self.notify(str(exc), title="pick not removed", severity="error")
                return
            self._tick()
            self.notify(f"#{pick.id} {pick.symbol} removed", title="pick removed")

        self.app.push_screen(
            ConfirmScreen(f"Remove pick #{pick.id} {pick.symbol} {pick.side.value}?\n"
                          "It is deleted with its history (use c to close a trade)."),
            answered,
        )

    async def action_export(self) -> None:
        """Write open and ended picks to a timestamped CSV in the export dir."""
        snapshot = self.desk.snapshot(self._service.snapshot())
        now = self._clock() if self._clock is not None else None
        try:
            path = export.export_path(self.export_dir, "picks", now)
            rows = await asyncio.to_thread(
                export.write_picks_csv, path, snapshot.open_picks, snapshot.history
            )
        except OSError as exc:
            log.error("picks export failed: %s", exc)
            self.notify(f"picks export failed: {exc}", severity="error")
            return
        self.last_export = path
        self.notify(f"{rows} picks → {path}", title="exported")


def _r(value: float | None) -> str:
    return "no result" if value is None else f"{value:+.2f}R"
