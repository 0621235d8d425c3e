"""The app end to end: the real replay pipeline in the app's worker, OFFLINE against a dead
endpoint, symbol view, timeframes, help, palette, keymap, status bar and worker failure."""

from __future__ import annotations

import asyncio
import socket

import msgspec
from rich.console import Console
from textual.command import CommandPalette
from textual.message import Message
from textual.worker import Worker, WorkerState
from tui_service import (
    CUTOFF,
    SYMBOLS,
    FinishedReplay,
    HistoryService,
    app_with,
    replay_health,
    replay_runner,
)

from engine.config import EngineConfig
from engine.models import Direction
from engine.runner import MarketRunner
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tui.app import FEED_GROUP, FEED_WORKER
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.symbol import SymbolScreen
from tui.widgets.charts import PriceChart, RsiChart
from tui.widgets.signal_table import SignalTable
from tui.widgets.status_bar import REPLAY_HINT, StatusBar
from tui.widgets.trade_plan import TradePlanPanel
from tui.widgets.vote_table import VoteTable


def status_text(app: object) -> str:
    bar = app.screen.query_one(StatusBar)  # type: ignore[attr-defined]
    return str(bar.render().plain)


async def test_replay_streams_into_the_table_through_the_apps_worker() -> None:
    """The real pipeline in the app's "market" worker: replay server → REST backfill +
    WebSocket adapter → engine → snapshot timer → table."""
    runner = replay_runner(SYMBOLS[:6])
    app = app_with(runner)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.screen.query_one(SignalTable)
        async with asyncio.timeout(30):
            while len(table.symbols_shown) < 6 or any(
                state.signal is None
                for state in (table.snapshot.symbols.values() if table.snapshot else [])
            ):
                await pilot.pause(0.1)
        assert set(table.symbols_shown) == set(SYMBOLS[:6])
        assert "● REPLAY" in status_text(app)
        await pilot.press("enter")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, SymbolScreen)
        chart = screen.query_one(PriceChart)
        assert chart.candles is not None and len(chart.candles.close) > 100


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_exchange_shows_offline_with_reason_and_hint() -> None:
    """Live mode against a closed loopback port: the runner reports OFFLINE, the app shows
    why, the retry countdown and the replay hint, and keeps running."""
    port = _closed_port()
    runner = MarketRunner(
        endpoints=EndpointConfig(
            rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}"
        ),
        universe=UniverseConfig(mode="list", symbols=["BTCUSDT"]),
        feed=FeedConfig(rest_timeout_s=1.0),
        engine_config=EngineConfig(),
        data_dir=None,
    )
    app = app_with(runner)
    async with app.run_test(size=(140, 40)) as pilot:
        bar = app.screen.query_one(StatusBar)
        async with asyncio.timeout(30):
            while not bar.has_class("-offline"):
                await pilot.pause(0.1)
        text = status_text(app)
        assert "● OFFLINE" in text
        assert f"cannot reach http://127.0.0.1:{port}" in text
        assert "retry" in text and REPLAY_HINT in text
        assert app.feed_error == "", "OFFLINE is feed health, not a dead worker"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen), "the UI stays usable while offline"


async def test_enter_opens_the_symbol_view_and_escape_returns(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        await pilot.press("j")
        symbol = table.cursor_symbol
        assert symbol is not None
        await pilot.press("enter")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, SymbolScreen) and screen.symbol == symbol
        assert screen.timeframe == "1h"  # ui.chart_timeframe
        chart = screen.query_one(PriceChart)
        assert chart.candles is not None
        assert chart.candles.symbol == symbol and chart.candles.timeframe == "1h"
        assert screen.query_one(RsiChart).candles is chart.candles
        state = replay.snapshot().symbols[symbol]
        assert screen.query_one(VoteTable).signal == state.signal
        assert screen.query_one(TradePlanPanel).state == state

        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(SignalTable).cursor_symbol == symbol


async def test_timeframe_keys_switch_the_chart(replay: FinishedReplay) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.open_symbol("ETHUSDT")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, SymbolScreen)
        chart = screen.query_one(PriceChart)
        await pilot.pause(0.6)
        replots = chart.replots
        seen = []
        for key in ("t", "t", "T", "1", "3", "2"):
            await pilot.press(key)
            seen.append(screen.timeframe)
        assert seen == ["4h", "5m", "4h", "5m", "1h", "15m"]
        # Six switches in a burst: the chart redraws at most twice a second, then catches up.
        assert chart.replots - replots <= 2
        await pilot.pause(0.7)
        assert chart.candles is not None and chart.candles.timeframe == "15m"
        assert len(chart.candles.close) > 100
        replots = chart.replots
        await pilot.pause(0.7)
        assert chart.replots == replots, "unchanged candles are not redrawn"
        await pilot.press("backspace")
        assert isinstance(app.screen, MainScreen)


async def test_symbol_view_shows_plan_or_why_not(replay: FinishedReplay) -> None:
    signals = {s: state.signal for s, state in replay.snapshot().symbols.items()}
    neutral = next(s for s, sig in signals.items() if sig and sig.direction is Direction.NEUTRAL)
    planned = next(s for s, sig in signals.items() if sig and sig.plan is not None)
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.open_symbol(neutral)
        await pilot.pause(0.2)
        assert str(app.screen.query_one(TradePlanPanel).render()) == "no plan (NEUTRAL)"
        await pilot.press("escape")
        main.open_symbol(planned)
        await pilot.pause(0.2)
        panel = app.screen.query_one(TradePlanPanel)
        panel_text = app.screen.query_one(TradePlanPanel).render()
        assert panel.state is not None and panel.state.signal is not None
        plan = panel.state.signal.plan
        assert plan is not None
        console = Console(width=60, record=True)
        console.print(panel_text)
        text = console.export_text()
        for label in ("entry", "SL", "TP1", "TP2", f"R:R {plan.risk_reward:.2f}"):
            assert label in text
        votes = Console(width=140, record=True)
        votes.print(app.screen.query_one(VoteTable).render())
        vote_text = votes.export_text()
        assert "warming up" in vote_text and "/210 bars" in vote_text  # 4h: 30 days of data
        for name in ("ema_stack", "rsi", "macd", "adx"):
            assert name in vote_text


async def test_help_is_generated_from_bindings_and_keymap(replay: FinishedReplay) -> None:
    app = app_with(replay, keymap={"table.sort": "o"})
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(SignalTable)
        await pilot.press("s")
        assert table.sort_column == "score", "s is no longer bound"
        await pilot.press("o")
        assert table.sort_column == "change"
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = {line.binding_id: line.keys for line in help_screen.keys}
        assert keys["table.sort"] == "o"
        for binding_id in ("table.filter", "table.open", "table.down", "app.quit", "app.help"):
            assert binding_id in keys
        assert "j" in keys["table.down"]
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_offers_only_the_current_screens_commands(
    replay: FinishedReplay,
) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        titles = [c.title for c in main.palette_commands()]
        assert "Sort by fund" in titles and "Filter longs" in titles and "Open BTCUSDT" in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"sort by fund")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert main.query_one(SignalTable).sort_column == "fund"

        main.open_symbol("BTCUSDT")
        await pilot.pause(0.2)
        symbol_screen = app.screen
        assert isinstance(symbol_screen, SymbolScreen)
        titles = [c.title for c in symbol_screen.palette_commands()]
        assert "Timeframe 4h" in titles and "Back to signals" in titles
        assert not any(title.startswith("Sort by") for title in titles)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"timeframe 15m")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert symbol_screen.timeframe == "15m"


async def test_offline_status_line_and_recovery(fresh_history: HistoryService) -> None:
    fresh_history.health = replay_health(
        mode="OFFLINE",
        reason="cannot reach https://fapi.binance.com: Cannot connect to host",
        retry_in=4.2,
        last_msg_age_ms=None,
    )
    app = app_with(fresh_history)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(StatusBar)
        assert bar.has_class("-offline")
        text = status_text(app)
        assert "● OFFLINE" in text
        assert "cannot reach https://fapi.binance.com" in text
        assert "retry in 4s" in text
        assert REPLAY_HINT in text
        # The feed comes back: the bar follows the next snapshot.
        fresh_history.health = replay_health(mode="LIVE", msgs_per_s=18234.0)
        await fresh_history.advance(1)
        await pilot.pause(0.3)
        assert not bar.has_class("-offline")
        text = status_text(app)
        assert "● LIVE" in text and "18.2k msg/s" in text and "OFFLINE" not in text


async def test_status_bar_shows_backfill_errors_and_clock(fresh_history: HistoryService) -> None:
    fresh_history.health = replay_health(backfill_done=12, backfill_total=60, decode_errors=0)
    app = app_with(fresh_history)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        text = status_text(app)
        assert "backfill" in text and "12/60" in text
        assert "decode errors" not in text, "only shown when there are some"
        assert text.rstrip().endswith("12:30:23Z")
        assert "15 sym" in text
        fresh_history.health = msgspec.structs.replace(
            fresh_history.health, backfill_done=60, decode_errors=3, reconnects=2
        )
        await fresh_history.advance(1)
        await pilot.pause(0.3)
        text = status_text(app)
        assert "backfill" not in text, "hidden once done"
        assert "decode errors 3" in text and "reconnects 2" in text


class FailingService(HistoryService):
    """A service whose pipeline dies (MarketService.run must never raise; this one does)."""

    async def run(self) -> None:
        await asyncio.sleep(0.05)
        raise ConnectionResetError("socket closed by peer")


async def test_worker_error_is_a_red_status_not_a_crash() -> None:
    failing = FailingService(SYMBOLS, CUTOFF, replay_health())
    await failing.load()
    app = app_with(failing)
    messages: list[Message] = []
    async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
        await pilot.pause(0.3)
        states = [
            (m.worker.name, m.worker.group, m.state)
            for m in messages
            if isinstance(m, Worker.StateChanged)
        ]
        assert (FEED_WORKER, FEED_GROUP, WorkerState.ERROR) in states
        assert app.feed_error == "ConnectionResetError: socket closed by peer"
        bar = app.screen.query_one(StatusBar)
        assert bar.has_class("-failed")
        assert "FEED STOPPED" in status_text(app)
        assert any("socket closed by peer" in str(n.message) for n in app._notifications)
        # Still usable: the table works and the symbol view opens with the same red status.
        await pilot.press("j", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SymbolScreen)
        assert "FEED STOPPED" in status_text(app)
    assert app.return_code in (None, 0)
