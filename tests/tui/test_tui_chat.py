"""The AI analyst chat (key `c`) on the real replay, against a loopback Ollama server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Select
from tui_service import FinishedReplay, fixed_clock

from ai.config import AiConfig
from tests.ai.ollama_loopback import OllamaLoopback, ThreadedOllama, closed_port_url
from tui.app import PerpscopeApp, make_app
from tui.screens.chat import ChatScreen
from tui.screens.main import MainScreen
from tui.ui_config import UiConfig
from tui.widgets.chat_pane import ChatMessageView, ChatPane, PromptScreen

SnapCompare = Callable[..., bool]


def chat_app(
    service: FinishedReplay, host: str, db_path: Path | None = None
) -> PerpscopeApp:
    config = AiConfig(host=host, read_timeout_s=5.0, answer_timeout_s=20.0)
    return make_app(
        service, UiConfig(refresh_hz=10.0), clock=fixed_clock, ai=config, db_path=db_path
    )


async def open_chat(pilot: Pilot[None], symbol: str = "BTCUSDT") -> ChatPane:
    await pilot.pause(0.2)
    main = pilot.app.screen
    assert isinstance(main, MainScreen)
    main.set_filter(symbol)
    await pilot.pause(0.1)
    await pilot.press("c")
    async with asyncio.timeout(10):
        while not isinstance(pilot.app.screen, ChatScreen):
            await pilot.pause(0.05)
    pane = pilot.app.screen.query_one(ChatPane)
    assert pane.symbol == symbol
    return pane


async def ask(pilot: Pilot[None], pane: ChatPane, text: str) -> None:
    """Type ``text`` and press enter; returns once the question (and its answer slot) shows."""
    field = pane.query_one("#chat-input", Input)
    assert field.has_focus
    before = len(messages(pane))
    field.value = text
    await pilot.press("enter")
    async with asyncio.timeout(10):
        while len(messages(pane)) < before + 2 and not text.startswith("/clear"):
            await pilot.pause(0.02)


async def wait_idle(pilot: Pilot[None], pane: ChatPane) -> None:
    async with asyncio.timeout(15):
        while pane.answering:
            await pilot.pause(0.05)
    await pilot.pause(0.1)


def messages(pane: ChatPane) -> list[tuple[str, str]]:
    out = []
    for view in pane.query(ChatMessageView):
        role = next(c for c in ("-user", "-assistant", "-notice") if view.has_class(c))
        out.append((role[1:], view.source))
    return out


async def test_ask_streams_a_grounded_answer(replay: FinishedReplay) -> None:
    async with OllamaLoopback() as server:
        app = chat_app(replay, server.url)
        async with app.run_test(size=(120, 36)) as pilot:
            pane = await open_chat(pilot)
            await ask(pilot, pane, "why is BTC short?")
            await wait_idle(pilot, pane)
            assert messages(pane) == [
                ("user", "why is BTC short?"),
                ("assistant", server.reply),
            ]
            assert not pane.query_one("#chat-input", Input).disabled
            system = server.requests[-1]["messages"][0]["content"]
            state = replay.snapshot().symbols["BTCUSDT"]
            assert "## symbol BTCUSDT" in system and f"{state.last_price:.6g}" in system
            # ctrl+o shows exactly what was sent.
            await pilot.press("ctrl+o")
            await pilot.pause(0.1)
            assert isinstance(app.screen, PromptScreen)
            shown = str(app.screen.query_one("#prompt-text").render())
            assert system.splitlines()[-1] in shown and "why is BTC short?" in shown
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert isinstance(app.screen, ChatScreen)
            # Verdict mode (ctrl+r): validated JSON rendered as a verdict.
            await pilot.press("ctrl+r")
            async with asyncio.timeout(10):
                while len(messages(pane)) < 4:
                    await pilot.pause(0.02)
            await wait_idle(pilot, pane)
            role, text = messages(pane)[-1]
            assert role == "assistant" and "**Verdict on BTCUSDT: LONG**" in text
            server.json_reply = '{"decision": "up only"}'
            await ask(pilot, pane, "/verdict with a broken model")
            await wait_idle(pilot, pane)
            role, text = messages(pane)[-1]
            assert role == "notice" and text.startswith("**Invalid verdict** (not shown)")
            assert "Verdict on" not in text


async def test_escape_cancels_the_answer_then_closes(replay: FinishedReplay) -> None:
    async with OllamaLoopback() as server:
        server.chunk_delay_s = 0.15
        app = chat_app(replay, server.url)
        async with app.run_test(size=(120, 36)) as pilot:
            pane = await open_chat(pilot, "ETHUSDT")
            await ask(pilot, pane, "what would invalidate this?")
            async with asyncio.timeout(10):
                while not (messages(pane)[-1][1] or "").strip():
                    await pilot.pause(0.05)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert not pane.answering
            role, text = messages(pane)[-1]
            assert role == "assistant" and text.endswith("*(cancelled)*")
            assert len(text) < len(server.reply) + 20
            assert isinstance(app.screen, ChatScreen)
            # The UI stayed responsive and the input is usable again.
            assert not pane.query_one("#chat-input", Input).disabled
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert isinstance(app.screen, MainScreen)


async def test_switch_model(replay: FinishedReplay) -> None:
    async with OllamaLoopback() as server:
        app = chat_app(replay, server.url)
        async with app.run_test(size=(120, 36)) as pilot:
            pane = await open_chat(pilot)
            select: Select[str] = pane.query_one("#chat-model", Select)
            async with asyncio.timeout(10):
                while len(select._options) < len(server.models):
                    await pilot.pause(0.05)
            assert select.value == "qwen2.5:7b"
            assert "Ollama: 6 models" in str(pane.query_one("#chat-status").render())
            select.value = "llama3.2:3b"
            await pilot.pause(0.1)
            await ask(pilot, pane, "compare funding on the top longs")
            await wait_idle(pilot, pane)
            assert server.requests[-1]["model"] == "llama3.2:3b"
            # A model the server lacks: its own clear message, then the rule-based analysis.
            pane.session.model = "mistral:7b"
            await ask(pilot, pane, "and now?")
            await wait_idle(pilot, pane)
            role, text = messages(pane)[-1]
            assert role == "notice" and "ollama pull mistral:7b" in text
            assert "**Rule-based analysis**" in text


async def test_no_server_shows_notice_and_rule_based_answer(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    url = closed_port_url()
    db = tmp_path / "perpscope.db"
    app = chat_app(replay, url, db)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = await open_chat(pilot)
        async with asyncio.timeout(10):
            while "no Ollama" not in str(pane.query_one("#chat-status").render()):
                await pilot.pause(0.05)
        await ask(pilot, pane, "why?")
        await wait_idle(pilot, pane)
        role, text = messages(pane)[-1]
        assert role == "notice"
        assert text.startswith(
            f"**No Ollama at {url}**: start it with `ollama serve`, then "
            "`ollama pull qwen2.5:7b`; showing the rule-based analysis instead."
        )
        assert "**Verdict on BTCUSDT:" in text and "by rules" in text
    # The thread was saved and reloads in a new session; /clear empties it.
    app = chat_app(replay, url, db)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = await open_chat(pilot)
        await pilot.pause(0.2)
        assert [role for role, _ in messages(pane)] == ["user", "notice"]
        await ask(pilot, pane, "/clear")
        await pilot.pause(0.2)
        assert messages(pane) == []
        assert await pane.session.load_thread("BTCUSDT") == []


def test_chat_pane_snapshot(snap_compare: SnapCompare, replay: FinishedReplay) -> None:
    """Chat on BTCUSDT: model picker (qwen2.5:7b of 6), the question and the streamed
    Markdown answer (bold symbol, bullet), input unlocked again, footer keys."""

    async def run_before(pilot: Pilot[None]) -> None:
        pane = await open_chat(pilot)
        select: Select[str] = pane.query_one("#chat-model", Select)
        async with asyncio.timeout(10):
            while len(select._options) < 6:
                await pilot.pause(0.05)
        await ask(pilot, pane, "why is BTC short?")
        await wait_idle(pilot, pane)
        pane.query_one("#chat-input", Input).cursor_blink = False
        await pilot.pause(0.3)

    with ThreadedOllama() as server:
        app = chat_app(replay, server.url)
        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


async def test_c_on_the_symbol_view_opens_its_thread(replay: FinishedReplay) -> None:
    app = chat_app(replay, closed_port_url())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.2)
        main = app.screen
        assert isinstance(main, MainScreen)
        main.open_symbol("CRVUSDT")
        await pilot.pause(0.3)
        await pilot.press("c")
        async with asyncio.timeout(10):
            while not isinstance(app.screen, ChatScreen):
                await pilot.pause(0.05)
        assert app.screen.pane.symbol == "CRVUSDT"
        assert app.screen.pane.border_title == "AI analyst · CRVUSDT"
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert getattr(app.screen, "symbol", None) == "CRVUSDT"
