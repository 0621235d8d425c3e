"""The AI analyst chat pane: grounded questions about one symbol, streamed Markdown answers.

The pane talks to :class:`ai.session.AiSession` only (which talks to Ollama); it never does
network I/O itself. One answer at a time: the input is locked while the model answers and
``escape`` cancels it. With no Ollama, the pane says so (and how to start one) and shows the
rule-based analysis instead.

Keys: ``enter`` ask, ``ctrl+r`` verdict (or type ``/verdict``), ``ctrl+o`` the exact prompt
sent, ``escape`` cancel; ``/clear`` clears the thread.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import Reactive, reactive
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Markdown, Select, Static
from textual.worker import Worker, WorkerState

from ai.client import AiError, OllamaUnavailable
from ai.session import AiSession, thread_of
from ai.verdict import VerdictError
from engine.service import MarketService

ANSWER_GROUP = "chat-answer"
"""Worker group of the running answer (exclusive: a new question cancels the old one)."""
VERDICT_COMMAND = "/verdict"
CLEAR_COMMAND = "/clear"
_FINISHED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


def no_ollama_notice(host: str, model: str) -> str:
    """The notice shown when no Ollama answers at ``host``."""
    return (
        f"**No Ollama at {host}**: start it with `ollama serve`, then `ollama pull {model}`; "
        "showing the rule-based analysis instead."
    )


class ChatMessageView(Markdown):
    """One message of the thread (class ``-user``, ``-assistant`` or ``-notice``)."""


class PromptScreen(ModalScreen[None]):
    """The exact prompt and context last sent to the model (``ctrl+o``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,ctrl+o,q", "dismiss", "Close", id="chat.prompt_close"),
    ]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > VerticalScroll {
        width: 90%; height: 90%; border: round $primary; background: $panel; padding: 0 1;
    }
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "prompt sent (esc closes)"
            yield Static(self._text, markup=False, id="prompt-text")


class ChatPane(Vertical):
    """Chat about ``symbol`` (or the whole market when ``None``) with the AI analyst.

    Args:
        service: The market pipeline (snapshots and candles for the context).
        session: The AI session (Ollama client, cache, persistence).
        symbol: Symbol the thread is about, or ``None`` for the general thread.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel answer", id="chat.cancel"),
        Binding("ctrl+r", "verdict", "Verdict", id="chat.verdict"),
        Binding("ctrl+o", "show_prompt", "Prompt", id="chat.prompt"),
    ]
    DEFAULT_CSS = """
    ChatPane { height: 1fr; border: round $primary; border-title-align: left; }
    ChatPane #chat-head { height: 3; }
    ChatPane #chat-status { width: 1fr; padding: 1 1 0 1; color: $text-muted; }
    ChatPane #chat-model { width: 36; }
    ChatPane #chat-log { height: 1fr; padding: 0 1; }
    ChatPane ChatMessageView { margin: 0 0 1 0; padding: 0 1; }
    ChatPane ChatMessageView.-user { background: $boost; color: $text-accent; }
    ChatPane ChatMessageView.-notice { color: $warning; }
    ChatPane #chat-input { dock: bottom; }
    """

    answering: Reactive[bool] = reactive(False)
    """True while an answer streams (input locked)."""

    def __init__(
        self,
        service: MarketService,
        session: AiSession,
        symbol: str | None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._service = service
        self.session = session
        self.symbol = symbol
        self.thread = thread_of(symbol)
        self._current: ChatMessageView | None = None

    def compose(self) -> ComposeResult:
        self.border_title = f"AI analyst · {self.symbol or 'market'}"
        with Horizontal(id="chat-head"):
            yield Label("models: asking the server…", id="chat-status")
            yield Select[str](
                [(self.session.model, self.session.model)],
                value=self.session.model,
                allow_blank=False,
                id="chat-model",
            )
        yield VerticalScroll(id="chat-log")
        yield Input(
            placeholder=f"ask about {self.symbol or 'the market'}  "
            "(/verdict, /clear; ctrl+o prompt, esc cancels)",
            id="chat-input",
        )

    async def on_mount(self) -> None:
        log = self.query_one("#chat-log", VerticalScroll)
        log.anchor()
        for message in await self.session.load_thread(self.thread):
            await self._add(message.role, message.content)
        self._load_models()
        self.query_one("#chat-input", Input).focus()

    # ---------------------------------------------------------------- models

    @work(exclusive=True, group="chat-models", exit_on_error=False)
    async def _load_models(self) -> None:
        status = self.query_one("#chat-status", Label)
        try:
            models = await self.session.models()
        except AiError as exc:
            status.update(f"no models: {exc}" if not isinstance(exc, OllamaUnavailable)
                          else "no Ollama: rule-based analysis only")
            return
        select: Select[str] = self.query_one("#chat-model", Select)
        current = self.session.model
        names = models if current in models else [current, *models]
        select.set_options([(n if n in models else f"{n} (not pulled)", n) for n in names])
        select.value = current
        status.update(f"Ollama: {len(models)} model{'s' if len(models) != 1 else ''}")

    @on(Select.Changed, "#chat-model")
    def _model_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.session.model = event.value

    # ---------------------------------------------------------------- asking

    @on(Input.Submitted, "#chat-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.answering:
            return
        event.input.value = ""
        if text == CLEAR_COMMAND:
            await self.clear_thread()
            return
        verdict = text.startswith(VERDICT_COMMAND)
        question = text.removeprefix(VERDICT_COMMAND).strip() if verdict else text
        await self.ask(question, verdict=verdict)

    async def ask(self, question: str, *, verdict: bool = False) -> None:
        """Ask ``question`` (verdict mode: a JSON verdict); the answer streams in a worker."""
        shown = f"{VERDICT_COMMAND} {question}".strip() if verdict else question
        await self._add("user", shown)
        self._current = await self._add("assistant", "")
        self.answering = True
        self._answer(question, verdict, shown)

    @work(exclusive=True, group=ANSWER_GROUP, exit_on_error=False)
    async def _answer(self, question: str, verdict: bool, shown: str) -> None:
        target = self._current
        assert target is not None
        session = self.session
        snapshot = self._service.snapshot()
        base = snapshot.timeframes[0] if snapshot.timeframes else "5m"
        candles = self._service.candles(self.symbol, base) if self.symbol else None
        micro = self._service.micro(self.symbol) if self.symbol else None
        request = await session.prepare(
            snapshot, self.symbol, question, candles=candles, micro=micro,
            track=self._service.track_record(), verdict=verdict,
        )
        await session.record(self.thread, "user", shown)
        if verdict:
            try:
                result = await session.verdict(request)
            except VerdictError as exc:
                await self._finish(target, f"**Invalid verdict** (not shown): {exc}", "notice")
            except AiError as exc:
                rules = await session.rule_verdict(request)
                text = self._fallback_head(exc) + "\n\n" + rules.to_markdown(
                    request.context.symbol, "rules"
                )
                await self._finish(target, text, "notice")
            else:
                text = result.to_markdown(request.context.symbol, request.model)
                await self._finish(target, text, "assistant", request.model)
            return
        stream = Markdown.get_stream(target)
        parts: list[str] = []
        try:
            async for chunk in session.stream(request):
                parts.append(chunk)
                await stream.write(chunk)
        except AiError as exc:
            await stream.stop()
            partial = "".join(parts)
            if partial:
                text = partial + f"\n\n**Answer stopped**: {exc}"
                await self._finish(target, text, "assistant", request.model)
            else:
                text = self._fallback_head(exc) + "\n\n" + session.rule_summary(request)
                await self._finish(target, text, "notice")
            return
        finally:
            await stream.stop()
        await self._finish(target, "".join(parts), "assistant", request.model)

    def _fallback_head(self, exc: AiError) -> str:
        if isinstance(exc, OllamaUnavailable):
            return no_ollama_notice(self.session.host, self.session.model)
        return f"**{exc}**; showing the rule-based analysis instead."

    async def _finish(
        self, target: ChatMessageView, text: str, role: str, model: str = ""
    ) -> None:
        await target.update(text)
        target.set_class(role == "notice", "-notice")
        target.set_class(role == "assistant", "-assistant")
        await self.session.record(self.thread, role, text, model)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != ANSWER_GROUP or event.state not in _FINISHED:
            return
        if event.state is WorkerState.ERROR and self._current is not None:
            self.run_worker(
                self._current.update(f"**Could not answer**: {event.worker.error}"),
                group="chat-ui",
            )
        self.answering = False

    def watch_answering(self, answering: bool) -> None:
        field = self.query_one("#chat-input", Input)
        field.disabled = answering
        if not answering:
            field.focus()
        self.refresh_bindings()

    async def _add(self, role: str, text: str) -> ChatMessageView:
        view = ChatMessageView(text, classes=f"-{role}")
        await self.query_one("#chat-log", VerticalScroll).mount(view)
        return view

    # ---------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.answering
        if action == "verdict":
            return not self.answering
        return True

    async def action_cancel(self) -> None:
        """Cancel the answer being streamed (what arrived so far stays, marked cancelled)."""
        if not self.answering:
            return
        self.workers.cancel_group(self, ANSWER_GROUP)
        target = self._current
        if target is not None:
            text = (target.source or "") + "\n\n*(cancelled)*"
            await target.update(text.strip())
        self.answering = False

    async def action_verdict(self) -> None:
        """Ask for a verdict on the symbol."""
        if not self.answering:
            await self.ask("", verdict=True)

    def action_show_prompt(self) -> None:
        """Show the exact prompt and context last sent."""
        request = self.session.last_request
        text = request.prompt_text if request is not None else "Nothing sent yet."
        self.app.push_screen(PromptScreen(text))

    async def clear_thread(self) -> None:
        """Forget this thread (stored messages too)."""
        await self.session.clear_thread(self.thread)
        await self.query_one("#chat-log", VerticalScroll).remove_children()
