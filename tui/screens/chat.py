"""Chat screen: the AI analyst pane for one symbol (or the market), opened with ``c``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from ai.session import AiSession
from engine.service import MarketService
from tui.widgets.chat_pane import ChatPane


class ChatScreen(Screen[None]):
    """Full-screen chat with the AI analyst about ``symbol`` (``None``: the whole market)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="chat.close"),
    ]

    def __init__(self, service: MarketService, session: AiSession, symbol: str | None) -> None:
        super().__init__()
        self._service = service
        self._session = session
        self.symbol = symbol

    def compose(self) -> ComposeResult:
        yield ChatPane(self._service, self._session, self.symbol, id="chat")
        yield Footer()

    @property
    def pane(self) -> ChatPane:
        """The chat pane."""
        return self.query_one(ChatPane)

    def action_close(self) -> None:
        """Back to the previous screen (an answer still streaming is cancelled)."""
        self.pane.workers.cancel_group(self.pane, "chat-answer")
        self.dismiss()
