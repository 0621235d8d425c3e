"""CSV exports on a real replay: the signal table as shown (e), picks (e in the picks pane),
and the symbol view's candles with indicators (e), each parsed back and compared with what
the app shows or the engine computed."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
from desk_service import DeskReplay
from tui_service import FinishedReplay, app_with

from feeds.intervals import interval_ms
from tui import export
from tui.screens.main import MainScreen
from tui.screens.picks import PicksScreen
from tui.screens.symbol import SymbolScreen

FIXED_NAME_S = 1_691_065_823.0


async def test_table_export_equals_the_filtered_sorted_rows(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    desk = await service.open_desk(tmp_path / "picks.db")
    await desk.toggle_watch("DOGEUSDT")
    snapshot = replay.snapshot()
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, MainScreen)
            screen.export_dir = tmp_path / "exports"
            screen.set_filter("short")
            screen.table.sort_by("change")
            await pilot.pause()
            shown = screen.table.symbols_shown
            assert 1 < len(shown) < len(snapshot.symbols)
            await pilot.press("e")
            await pilot.pause()
            path = screen.last_export
            assert path is not None and path.parent == tmp_path / "exports"
            assert path.name.startswith("perpscope-table-") and path.suffix == ".csv"
            assert any(str(path) in n.message for n in app._notifications)
    finally:
        await service.close_desk()
    frame = pl.read_csv(path, infer_schema_length=None)
    assert frame["symbol"].to_list() == shown
    assert frame.columns[: len(export.TABLE_FIELDS)] == list(export.TABLE_FIELDS)
    assert [c for c in frame.columns if c.startswith("vote_")] == [
        f"vote_{tf}" for tf in snapshot.timeframes
    ]
    for row in frame.iter_rows(named=True):
        state = snapshot.symbols[row["symbol"]]
        assert state.signal is not None
        assert row["direction"] == "SHORT" == state.signal.direction.value
        assert row["last_price"] == state.last_price
        assert row["score"] == state.signal.score
        assert row["change_24h_pct"] == state.change_24h_pct
        plan = state.signal.plan
        assert plan is not None and row["stop_loss"] == plan.stop_loss
        assert row["watched"] is (row["symbol"] == "DOGEUSDT")


async def test_picks_export_lists_open_and_ended_picks(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    service = DeskReplay(replay)
    desk = await service.open_desk(tmp_path / "picks.db")
    snapshot = replay.snapshot()
    picks = [desk.default_pick(s, snapshot) for s in ("ETHUSDT", "AAVEUSDT")]
    assert picks[0] is not None and picks[1] is not None
    short = await desk.add_pick(picks[0])
    long = await desk.add_pick(picks[1])
    closed = await desk.close_pick(short.id, price=1830.0)
    app = app_with(service)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            await pilot.press("P")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PicksScreen)
            screen.export_dir = tmp_path / "exports"
            await pilot.press("e")
            await pilot.pause()
            path = screen.last_export
            assert path is not None and path.name.startswith("perpscope-picks-")
    finally:
        await service.close_desk()
    frame = pl.read_csv(path, infer_schema_length=None)
    assert frame.columns == list(export.PICK_FIELDS)
    rows = {r["id"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {short.id, long.id}
    assert rows[long.id]["status"] == "OPEN"
    assert rows[long.id]["price"] == snapshot.symbols["AAVEUSDT"].last_price
    assert rows[short.id]["status"] == "CLOSED"
    assert rows[short.id]["close_price"] == 1830.0
    assert closed.realized_r is not None
    assert math.isclose(rows[short.id]["realized_r"], closed.realized_r)
    # (1835.01 - 1830) / (1844.94 - 1835.01): a SHORT closed below its entry wins.
    assert math.isclose(closed.realized_r, (1835.01 - 1830.0) / (1844.94 - 1835.01))


async def test_symbol_view_exports_candles_with_the_engines_indicators(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.export_dir = tmp_path / "exports"
        main.open_symbol("ETHUSDT")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, SymbolScreen)
        timeframe = screen.timeframe
        await pilot.press("e")
        await pilot.pause()
        path = screen.last_export
        assert path is not None and path.name.startswith(f"perpscope-ETHUSDT-{timeframe}-")
    series = replay.candles("ETHUSDT", timeframe, 5000)
    assert series is not None
    frame = pl.read_csv(path, infer_schema_length=None)
    assert frame["open_time"].to_list() == list(series.open_time)
    assert frame["close"].to_list() == list(series.close)
    closed = frame.filter(pl.col("closed"))
    last = closed.row(-1, named=True)
    state = replay.snapshot().symbols["ETHUSDT"]
    assert state.signal is not None
    tf_signal = next(t for t in state.signal.timeframes if t.timeframe == timeframe)
    # The export's last closed candle is the one the engine's signal was computed on.
    assert last["open_time"] + interval_ms(timeframe) - 1 == tf_signal.as_of
    # Same TA-Lib functions over the same closed history: the engine's last-bar readings.
    compared: list[str] = [
        k for k in ("rsi", "atr", "adx", "macd", "bb_width") if k in tf_signal.values
    ]
    compared += [k for k in tf_signal.values if k.startswith("ema_")]
    assert len(compared) >= 4
    for name in compared:
        assert math.isclose(last[name], tf_signal.values[name], rel_tol=1e-9), name


def test_export_path_is_timestamped_and_never_overwrites(tmp_path: Path) -> None:
    first = export.export_path(tmp_path / "x", "table", FIXED_NAME_S)
    assert first.name == "perpscope-table-20230803-123023.csv"
    first.write_text("a\n")
    second = export.export_path(tmp_path / "x", "table", FIXED_NAME_S)
    assert second.name == "perpscope-table-20230803-123023-2.csv"


async def test_export_to_an_unwritable_place_says_so(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = app_with(replay)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.export_dir = blocker / "exports"
        await pilot.press("e")
        await pilot.pause()
        assert screen.last_export is None
        assert any("table export failed" in n.message for n in app._notifications)
