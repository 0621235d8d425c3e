"""Market services for TUI tests, all on recorded Binance USDⓈ-M klines (never invented data).

* :func:`build_replay`: the real pipeline, :class:`engine.runner.MarketRunner` in replay mode
  (loopback replay server → ccxt REST backfill + WebSocket adapter → engine) over a slice of
  the 55-symbol folder, run to its end *before* the app starts so screenshots are
  deterministic; :class:`FinishedReplay` then serves its snapshots and candles.
* :class:`HistoryService`: the real :class:`engine.engine.Engine` fed directly with the same
  recorded 5m klines, for tests that need to step the data forward candle by candle
  (diff updates), change the universe, or hold one symbol back until it is stale. Feed
  health is the only thing those tests choose.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from engine.config import EngineConfig
from engine.desk import Desk
from engine.engine import Engine
from engine.history import TrackRecord
from engine.models import CandleSeries, EngineSnapshot, FeedHealth, MicroView
from engine.runner import MarketRunner, ReplayOptions
from engine.service import MarketService
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from feeds.events import Kline, MarkPrice
from feeds.intervals import interval_ms
from tests.recorded import klines_from_rows
from tui.app import PerpscopeApp, make_app
from tui.ui_config import UiConfig

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
"""Real recorded exchange data beside the repo (never copied into it)."""
KLINES_DIR = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"
"""55 USDT perpetuals, 5m klines + 8h funding/mark, 2023-07-04..2023-08-03."""

SYMBOLS = (
    "AAVEUSDT",
    "BAKEUSDT",
    "BATUSDT",
    "BTCUSDT",
    "CRVUSDT",
    "CTSIUSDT",
    "DASHUSDT",
    "DOGEUSDT",
    "DOTUSDT",
    "EOSUSDT",
    "ETCUSDT",
    "ETHUSDT",
    "THETAUSDT",
    "XLMUSDT",
    "ZILUSDT",
)
"""A slice of the 55-symbol folder with LONG, SHORT and neutral signals at the end of the
recording (2023-08-03 12:30Z) and at :data:`CUTOFF`."""

REPLAY_START_MS = 1_691_060_400_000
"""2023-08-03 11:00Z: the replay streams the last ~1.5 h; everything before is backfill."""

REPLAY_END_MS = 1_691_065_800_000
"""2023-08-03 12:30Z: close of the last recorded 5m candle (the replay clock at the end)."""

STALE_SYMBOL = "ZILUSDT"
"""Gets no data in the last 45 s before the snapshot, so it is stale (dimmed)."""

CUTOFF = "2023-08-01 08:00:00"
"""Candles up to this open time (UTC) are loaded; later ones are kept for "next" data."""

FIXED_CLOCK_S = 1_691_065_823.0
"""Wall clock the app shows (2023-08-03 12:30:23Z), so screenshots never change."""


def _frame(symbol: str, kind: str) -> pl.DataFrame:
    base = symbol.removesuffix("USDT")
    path = KLINES_DIR / f"{base}_USDT_USDT-{kind}.feather"
    return pl.read_ipc(path).with_columns(pl.col("date").dt.epoch("ms").alias("t"))


def _klines(symbol: str, frame: pl.DataFrame, interval: str) -> list[Kline]:
    rows = frame.select("t", "open", "high", "low", "close", "volume").iter_rows()
    return klines_from_rows(rows, symbol, interval)


class HistoryService:
    """Test-only MarketService: the real engine, fed with recorded klines (module docstring).

    Args:
        symbols: Symbols to load.
        cutoff: Last 5m open time (UTC text) loaded now; later candles wait in ``pending``.
        health: Feed health reported with every snapshot.
    """

    def __init__(self, symbols: tuple[str, ...], cutoff: str, health: FeedHealth) -> None:
        self.health = health
        self.now_ms = 0
        self.engine = Engine(EngineConfig(), clock=lambda: self.now_ms)
        self.symbols = symbols
        self._cutoff_ms = int(
            pl.Series([cutoff]).str.to_datetime(time_zone="UTC").dt.epoch("ms")[0]
        )
        self.pending: dict[str, list[Kline]] = {}
        """Recorded 5m klines after the cut-off, per symbol (fed by :meth:`advance`)."""
        self.wanted_books: dict[str, bool] = {}
        """``want_book`` calls by symbol (last wish wins)."""

    async def load(self) -> None:
        """Load history up to the cut-off, funding and mark prices, and evaluate everything."""
        engine = self.engine
        engine.set_universe(self.symbols)
        last_close = 0
        for symbol in self.symbols:
            frame = _frame(symbol, "5m-futures")
            klines = _klines(symbol, frame, "5m")
            loaded = [k for k in klines if k.open_time <= self._cutoff_ms]
            self.pending[symbol] = [k for k in klines if k.open_time > self._cutoff_ms]
            last_close = max(last_close, loaded[-1].close_time + 1)
            self.now_ms = last_close
            engine.load_history(symbol, "5m", loaded)
        # Everything evaluated at the last candle close, then 45 s pass in which every
        # symbol but one receives its (recorded) mark price / funding rate.
        self.now_ms = last_close + 1_500
        while await engine.recompute():
            pass
        self.now_ms = last_close + 45_000
        for symbol in self.symbols:
            if symbol != STALE_SYMBOL:
                engine.on_event(self._mark_price(symbol, last_close))

    def _mark_price(self, symbol: str, before_ms: int) -> MarkPrice:
        funding = _frame(symbol, "8h-funding_rate").filter(pl.col("t") <= before_ms).tail(1)
        mark = _frame(symbol, "8h-mark").filter(pl.col("t") <= before_ms).tail(1)
        funding_time = int(funding["t"][0])
        return MarkPrice(
            symbol=symbol,
            mark_price=float(mark["close"][0]),
            index_price=float(mark["close"][0]),
            funding_rate=float(funding["open"][0]),
            next_funding_time=funding_time + interval_ms("8h"),
            exchange_time=before_ms,
        )

    async def advance(self, bars: int = 1) -> None:
        """Feed the next ``bars`` recorded 5m klines of every fresh symbol and re-evaluate."""
        for _ in range(bars):
            for symbol in self.symbols:
                if symbol == STALE_SYMBOL or not self.pending[symbol]:
                    continue
                kline = self.pending[symbol].pop(0)
                self.now_ms = max(self.now_ms, kline.close_time + 1)
                self.engine.on_event(kline)
        while await self.engine.recompute():
            pass

    # -- MarketService ---------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        """The engine's snapshot with this service's feed health."""
        return self.engine.snapshot(self.health)

    def set_risk_profile(self, name: str) -> None:
        self.engine.set_risk_profile(name)

    def candles(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """Candles from the engine's store."""
        return self.engine.candles(symbol, timeframe, limit)

    def micro(self, symbol: str) -> MicroView | None:
        """The engine's view (no books here: kline history has no depth)."""
        return self.engine.micro_view(symbol)

    def track_record(self) -> TrackRecord | None:
        """No signal history behind this service."""
        return None

    def desk(self) -> Desk | None:
        """No database behind this service: no picks, watchlist or alerts."""
        return None

    def record_verdict(self, symbol: str, decision: str, target: float | None) -> bool:
        """No database: verdicts are not tracked."""
        return False

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Recorded klines hold no depth: nothing to subscribe."""
        self.wanted_books[symbol] = wanted

    async def run(self) -> None:
        """Nothing to stream: the recorded data was loaded up front. Waits until cancelled."""
        await asyncio.Event().wait()


REPLAY_HEALTH = FeedHealth(
    mode="REPLAY",
    exchange="binanceusdm",
    connections=1,
    connections_total=1,
    streams=len(SYMBOLS) + 2,
    msgs_per_s=0.0,
    last_msg_age_ms=1_500,
)
"""What a finished replay of the recorded files reports."""


def replay_health(**changes: Any) -> FeedHealth:
    """:data:`REPLAY_HEALTH` with some fields changed (e.g. ``mode="OFFLINE"``)."""
    return msgspec.structs.replace(REPLAY_HEALTH, **changes)


def build_service(health: FeedHealth | None = None) -> HistoryService:
    """Load a fresh :class:`HistoryService` (blocking; ~1 s)."""
    service = HistoryService(SYMBOLS, CUTOFF, health or replay_health())
    asyncio.run(service.load())
    return service


class FinishedReplay:
    """MarketService over a :class:`MarketRunner` whose replay already ran to its end.

    ``snapshot()`` and ``candles()`` are the runner's own; ``run()`` has nothing left to do
    (running the pipeline again would restart the replay) and waits until cancelled.
    """

    def __init__(self, runner: MarketRunner) -> None:
        self.runner = runner
        self.wanted_books: dict[str, bool] = {}
        """``want_book`` calls by symbol (last wish wins)."""

    def snapshot(self) -> EngineSnapshot:
        """The finished runner's snapshot."""
        return self.runner.snapshot()

    def set_risk_profile(self, name: str) -> None:
        self.runner.set_risk_profile(name)

    def candles(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """The finished runner's candles."""
        return self.runner.candles(symbol, timeframe, limit)

    def micro(self, symbol: str) -> MicroView | None:
        """The finished runner's order book view."""
        return self.runner.micro(symbol)

    def track_record(self) -> TrackRecord | None:
        """The finished runner's track record."""
        return self.runner.track_record()

    def desk(self) -> Desk | None:
        """The finished runner's desk (``None``: it ran without a database)."""
        return self.runner.desk()

    def record_verdict(self, symbol: str, decision: str, target: float | None) -> bool:
        """The finished runner's verdict tracking."""
        return self.runner.record_verdict(symbol, decision, target)

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Recorded for assertions; the replay is over, so nothing is subscribed."""
        self.wanted_books[symbol] = wanted

    async def run(self) -> None:
        """The replay is over; wait until the app cancels the worker."""
        await asyncio.Event().wait()


def replay_runner(symbols: tuple[str, ...] = SYMBOLS) -> MarketRunner:
    """A replay :class:`MarketRunner` over ``symbols`` of the recorded folder, max speed."""
    return MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=list(symbols)),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=KLINES_DIR, speed=None, start_ms=REPLAY_START_MS),
        wall_clock=lambda: REPLAY_END_MS + 1_500,
    )


def build_replay() -> FinishedReplay:
    """Replay the slice to its end through the real pipeline (blocking; ~2 s)."""
    runner = replay_runner()
    asyncio.run(runner.run_to_completion(timeout_s=60))
    return FinishedReplay(runner)


CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
"""30 s raw capture of 4 USDT perpetuals with diff depth, aggTrade and bookTicker."""


def build_capture_replay(path: Path = CAPTURE) -> FinishedReplay:
    """Replay a raw capture to its end (books synced from the recorded snapshots and diffs)
    through the real pipeline (blocking; a few seconds)."""
    runner = MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="all"),
        feed=FeedConfig(),
        engine_config=EngineConfig(),
        data_dir=None,
        replay=ReplayOptions(path=path, speed=None),
    )
    asyncio.run(runner.run_to_completion(timeout_s=60))
    return FinishedReplay(runner)


def fixed_clock() -> float:
    """The app's wall clock in tests."""
    return FIXED_CLOCK_S


def app_with(service: MarketService, **ui: object) -> PerpscopeApp:
    """The perpscope app around ``service`` with a fixed clock and ``[ui]`` overrides."""
    settings: dict[str, object] = {"refresh_hz": 10.0, **ui}
    return make_app(service, UiConfig.model_validate(settings), clock=fixed_clock)
