"""Screenshots of the main screen and the symbol view (pytest-textual-snapshot).

Deterministic: the recorded slice replayed to its end through the real pipeline before the
app starts (or, for the OFFLINE/stale picture, fed straight into the real engine), a fixed
wall clock, fixed terminal sizes, and no blinking cursors. Review the SVG diff
(``snapshot_report.html``) before running with ``--snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input
from tui_service import FinishedReplay, app_with, build_service, replay_health

from tui.screens.main import MainScreen

SnapCompare = Callable[..., bool]


async def _steady(pilot: Pilot[None]) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.3)


def _open(symbol: str) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause(0.2)
        screen = pilot.app.screen
        assert isinstance(screen, MainScreen)
        screen.open_symbol(symbol)
        # Charts draw on the first candle poll; wait past one redraw interval.
        await pilot.pause(0.8)
        await _steady(pilot)

    return run_before


def test_main_screen(snap_compare: SnapCompare, replay: FinishedReplay) -> None:
    """15 replayed symbols sorted by score: LONG (green), SHORT (red), neutral rows; 4h votes
    warming up (○, 30 days < 210 bars); REPLAY status; cursor on the second row."""
    assert snap_compare(app_with(replay), terminal_size=(140, 40), run_before=_steady, press=["j"])


def test_main_screen_80x24(snap_compare: SnapCompare, replay: FinishedReplay) -> None:
    """Narrow terminal: fund, R:R, conf and 24h % columns dropped; status bar shortened."""
    assert snap_compare(app_with(replay), terminal_size=(80, 24), run_before=_steady)


def test_main_screen_offline_with_stale_row(snap_compare: SnapCompare) -> None:
    """OFFLINE: second status line with retry countdown, replay hint and reason; ZILUSDT got
    no data for 45 s so its row is dimmed with age 45s and no funding rate."""
    service = build_service(
        replay_health(
            mode="OFFLINE",
            reason="cannot reach https://fapi.binance.com: Cannot connect to host "
            "fapi.binance.com:443",
            retry_in=4.2,
            last_msg_age_ms=None,
        )
    )
    assert snap_compare(app_with(service), terminal_size=(120, 16), run_before=_steady)


def test_symbol_view(snap_compare: SnapCompare, replay: FinishedReplay) -> None:
    """CRVUSDT 1h: candles + EMA 9/21/50/200, RSI(14) with 30/70 bands, LONG trade plan
    (entry/SL/TP1/TP2, R:R) and the indicator × timeframe votes (4h warming up)."""
    assert snap_compare(app_with(replay), terminal_size=(140, 40), run_before=_open("CRVUSDT"))


def test_symbol_view_neutral_80x24(snap_compare: SnapCompare, replay: FinishedReplay) -> None:
    """BTCUSDT on 15m in a small terminal: "no plan (NEUTRAL)", RSI hidden, plan and votes
    under the chart (scrollable)."""

    async def run_before(pilot: Pilot[None]) -> None:
        await _open("BTCUSDT")(pilot)  # type: ignore[misc]
        await pilot.press("2")
        await pilot.pause(0.8)

    assert snap_compare(app_with(replay), terminal_size=(80, 24), run_before=run_before)
