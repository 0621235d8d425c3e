"""A raw WebSocket capture replayed through the real pipeline, for the order book pane tests.

The cryptofeed capture (30 s of Binance USDⓈ-M ``aggTrade``, ``depth@100ms``, ``kline_1m``
and ``bookTicker`` for four perpetuals, with the REST depth snapshots taken during it) goes
through the loopback exchange, the WebSocket adapter, book sync and the engine's
microstructure tracker, exactly as ``perpscope --replay`` runs it. Real data only.
"""

from __future__ import annotations

import asyncio

from tui_service import SHARED_DATA, FinishedReplay

from engine.config import EngineConfig
from engine.models import MicroView
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig

CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
"""30 s capture of AKROUSDT, CTKUSDT, KEEPUSDT and SUSHIUSDT (2021-07-22)."""

BOOK_SYMBOL = "SUSHIUSDT"
"""The most liquid book of the capture: 996/998 levels held at the end, four sweeps."""

CAPTURE_END_CLOCK_S = 1_626_992_775.0
"""Wall clock the app shows for the capture (a few seconds after its last frame)."""


class FinishedCapture(FinishedReplay):
    """:class:`FinishedReplay` plus the order book calls, answered by the finished runner.

    ``want_book`` calls are recorded (and passed on) so tests can check the symbol view
    asks for a book on open and releases it on close.
    """

    def __init__(self, runner: MarketRunner) -> None:
        super().__init__(runner)
        self.book_requests: list[tuple[str, bool]] = []
        """``(symbol, wanted)`` of every ``want_book`` call, in order."""

    def micro(self, symbol: str) -> MicroView | None:
        """The runner's microstructure view of ``symbol``."""
        return self.runner.micro(symbol)

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Record the call, then pass it to the runner."""
        self.book_requests.append((symbol, wanted))
        self.runner.want_book(symbol, wanted)


def capture_runner(speed: float | None = None) -> MarketRunner:
    """A replay :class:`MarketRunner` over :data:`CAPTURE` (``speed=None``: max speed)."""
    return MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="all"),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=CAPTURE, speed=speed),
        wall_clock=lambda: int(CAPTURE_END_CLOCK_S * 1000),
    )


def build_capture() -> FinishedCapture:
    """Replay the capture to its end (blocking; ~2 s)."""
    runner = capture_runner()
    asyncio.run(runner.run_to_completion(timeout_s=60))
    return FinishedCapture(runner)


def capture_clock() -> float:
    """The app's wall clock for capture tests."""
    return CAPTURE_END_CLOCK_S
