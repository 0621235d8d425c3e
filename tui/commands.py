"""Command palette (ctrl+p): the actions of the current screen, plus help and quit.

Screens offer their commands by implementing :class:`OffersCommands`; the provider asks the
screen the palette was opened from, so only what that screen supports is listed (posting
``src/posting/commands.py`` checks the screen type the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteCommand:
    """One palette entry.

    Attributes:
        title: What the user types/sees (``Sort by score``).
        help: One-line explanation.
        run: Called when chosen.
        discover: Listed before the user types anything (False for long lists such as
            "Open SYMBOL" entries, which appear only when they match the query).
    """

    title: str
    help: str
    run: Callable[[], object]
    discover: bool = True


@runtime_checkable
class OffersCommands(Protocol):
    """A screen that offers palette commands."""

    def palette_commands(self) -> Iterable[PaletteCommand]:
        """The commands this screen supports right now."""
        ...


class PerpscopeCommands(Provider):
    """Provider listing the current screen's commands, then help and quit."""

    def _commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = []
        screen = self.screen
        if isinstance(screen, OffersCommands):
            commands.extend(screen.palette_commands())
        app = self.app
        commands.append(
            PaletteCommand(
                "Help", "Keys, glyph legend and column meanings", partial(app.run_action, "help")
            )
        )
        commands.append(PaletteCommand("Quit", "Quit perpscope", partial(app.run_action, "quit")))
        return commands

    async def discover(self) -> Hits:
        """Commands shown before anything is typed."""
        for command in self._commands():
            if command.discover:
                yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        """Commands matching ``query`` (fuzzy), best first."""
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    command.run,
                    text=command.title,
                    help=command.help,
                )
