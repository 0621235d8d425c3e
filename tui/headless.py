"""Headless commands: ``perpscope scan``, ``breadth`` and ``record``, and the runner factory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

from rich.console import Console

from engine.models import EngineSnapshot
from engine.runner import MarketRunner, ReplayOptions
from feeds.replay.loaders import ReplayDataError
from feeds.rest import RestError
from storage.db import DB_NAME
from tui.scan_output import breadth_json, print_breadth, print_table, to_csv, to_json_lines
from tui.settings import Settings

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


def build_runner(
    settings: Settings,
    args: argparse.Namespace,
    *,
    default_speed: float | None,
    desk: bool = False,
) -> MarketRunner:
    """A :class:`MarketRunner` from settings and the common CLI options.

    ``default_speed`` applies when ``--speed`` was not given (``None`` = as fast as consumed).
    ``desk`` enables picks, watchlist and alerts (the TUI); headless commands only store signal
    history, so a cron ``scan`` never sends alerts.
    """
    replay = None
    if getattr(args, "replay", None) is not None:
        speed = getattr(args, "speed", default_speed)
        replay = ReplayOptions(path=args.replay, speed=speed, start_ms=args.start)
    return MarketRunner(
        endpoints=settings.endpoints,
        universe=settings.universe,
        feed=settings.feed,
        engine_config=settings.engine_config(),
        data_dir=settings.data_path(),
        replay=replay,
        books=settings.book,
        open_interest=settings.open_interest,
        micro=settings.micro,
        # Replays keep their history in memory: recorded sessions must not mix with live ones.
        db_path=":memory:" if replay is not None else settings.data_path() / DB_NAME,
        outcomes=settings.outcomes,
        picks=settings.picks,
        alerts=settings.alerts,
        desk=desk,
    )


def run_to_end(
    settings: Settings, args: argparse.Namespace, command: str
) -> EngineSnapshot | int:
    """Backfill (or replay to the end) and return the snapshot, or the exit status after a
    one-line error on stderr."""
    # Headless commands want the result, not a real-time show: replay at max speed.
    runner = build_runner(settings, args, default_speed=None)
    try:
        return asyncio.run(_with_progress(runner))
    except ReplayDataError as exc:
        _error(f"perpscope: replay data error: {exc}")
        return EXIT_USAGE
    except RestError as exc:
        _error(f"perpscope: {exc}")
        if args.replay is None:
            _error(f"hint: no network? try `perpscope {command} --replay PATH` on recorded data")
        return EXIT_RUNTIME


def run_scan(settings: Settings, args: argparse.Namespace) -> int:
    """``perpscope scan``: print one record per symbol; returns the exit status."""
    snapshot = run_to_end(settings, args, "scan")
    if isinstance(snapshot, int):
        return snapshot
    if args.json:
        sys.stdout.write(to_json_lines(snapshot, args.top))
    elif args.csv:
        sys.stdout.write(to_csv(snapshot, args.top))
    else:
        # Piped output has no terminal width; rich's 80-column default would fold every cell.
        width = None if sys.stdout.isatty() else 220
        print_table(snapshot, Console(width=width), args.top)
    return EXIT_OK


def run_breadth(settings: Settings, args: argparse.Namespace) -> int:
    """``perpscope breadth``: print the market state at the end of the run; exit status."""
    snapshot = run_to_end(settings, args, "breadth")
    if isinstance(snapshot, int):
        return snapshot
    if snapshot.breadth is None:
        _error("perpscope: no symbol data, no breadth")
        return EXIT_RUNTIME
    if args.json:
        sys.stdout.write(breadth_json(snapshot) + "\n")
    else:
        print_breadth(snapshot, Console(width=None if sys.stdout.isatty() else 120))
    return EXIT_OK


async def _with_progress(runner: MarketRunner) -> EngineSnapshot:
    """Run the scan; on a terminal, show backfill / replay progress on stderr meanwhile."""
    if not sys.stderr.isatty():
        return await runner.run_to_completion()

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            health = runner.snapshot().health
            line = (
                f"backfill {health.backfill_done}/{health.backfill_total} series"
                if health.backfill_total
                else "loading the symbol universe"
            )
            server = runner.replay_server
            if server is not None and runner.ready.is_set():
                line = f"replaying: {server.frames_sent:,} frames"
            sys.stderr.write(f"\r{line:<60}")
            sys.stderr.flush()

    task = asyncio.create_task(report())
    try:
        return await runner.run_to_completion()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sys.stderr.write("\r" + " " * 60 + "\r")


def _error(message: str) -> None:
    # Plain lines: a console would wrap long paths at 80 columns.
    print(message, file=sys.stderr)


def run_record(settings: Settings, args: argparse.Namespace) -> int:
    """``perpscope record``: write raw live frames with receive times to ``--out``."""
    from feeds.binance_futures import BinanceFuturesFeed
    from feeds.replay.recording import RecordingWriter
    from feeds.rest import BinanceRest
    from feeds.routing import MARK_PRICE_ALL, TICKER_ALL, kline_stream

    endpoints = settings.endpoints
    live_progress = sys.stderr.isatty()

    async def record() -> int:
        rest = BinanceRest(endpoints, settings.feed)
        try:
            symbols = await rest.universe(settings.universe)
        finally:
            await rest.close()
        base = settings.timeframes.timeframes[0]
        streams = [kline_stream(s, base) for s in symbols] + [MARK_PRICE_ALL, TICKER_ALL]
        writer = RecordingWriter(args.out, ws_url=endpoints.ws_url)
        feed = BinanceFuturesFeed(endpoints, settings.feed, frame_hook=writer.write_frame)
        feed.set_streams(streams)
        started = time.monotonic()
        task = asyncio.create_task(feed.run(lambda _event: None))
        try:
            while args.duration is None or time.monotonic() - started < args.duration:
                await asyncio.sleep(1.0)
                if live_progress:
                    sys.stderr.write(
                        f"\rrecording {len(symbols)} symbols: {feed.stats.frames} frames"
                    )
                    sys.stderr.flush()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            writer.close()
            if live_progress:
                sys.stderr.write("\n")
            _error(f"wrote {args.out}: {feed.stats.frames} frames from {len(symbols)} symbols")
        return EXIT_OK

    try:
        return asyncio.run(record())
    except RestError as exc:
        _error(f"perpscope: {exc}")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_OK
