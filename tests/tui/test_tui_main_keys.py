"""Main-screen keys added with market breadth: the breadth pane (b) and risk profile (r)."""

from __future__ import annotations

from tui_service import FinishedReplay, app_with

from tui.screens.main import MainScreen
from tui.widgets.breadth import BreadthNumbers, BreadthPane, breadth_summary
from tui.widgets.status_bar import StatusBar, header_breadth


async def test_b_toggles_the_breadth_pane_and_the_header_summarises_it(
    replay: FinishedReplay,
) -> None:
    snapshot = replay.snapshot()
    assert snapshot.breadth is not None
    app = app_with(replay)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        pane = app.screen.query_one(BreadthPane)
        assert not pane.display
        header = str(app.screen.query_one(StatusBar).render().plain)
        assert header_breadth(snapshot.breadth) in header
        assert f"adv {snapshot.breadth.advancers} dec {snapshot.breadth.decliners}" in header
        await pilot.press("b")
        await pilot.pause()
        assert pane.display
        assert pane.query_one(BreadthNumbers).snapshot is snapshot
        assert pane.border_subtitle == breadth_summary(snapshot.breadth)
        await pilot.press("b")
        assert not pane.display


async def test_r_cycles_the_risk_profile_and_signals_follow(replay: FinishedReplay) -> None:
    engine = replay.runner.engine
    assert engine.risk_profile == "balanced"
    app = app_with(replay)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            await pilot.press("r")
            assert engine.risk_profile == "aggressive"
            await engine.recompute()
            profiles = {
                s.signal.risk_profile
                for s in replay.snapshot().symbols.values()
                if s.signal is not None
            }
            assert profiles == {"aggressive"}
            await pilot.press("r")
            assert engine.risk_profile == "conservative"
            await pilot.press("r")
            assert engine.risk_profile == "balanced"
    finally:
        # The replay fixture is shared: leave it as the other tests expect it.
        engine.set_risk_profile("balanced")
        await engine.recompute()
