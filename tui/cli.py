"""The ``perpscope`` command line.

::

    perpscope [--config PATH] [--replay PATH [--speed N|max] [--start TIME]]   the TUI
    perpscope scan [--replay PATH] [--json | --csv] [--top N]                   one-shot scan
    perpscope record --out FILE [--duration D]                                  record frames
    perpscope ask SYMBOL "question" [--replay PATH] [--verdict]                 ask the analyst
    perpscope breadth [--replay PATH] [--json]                                  market state

Errors in arguments, configuration or replay data end the program with one clear message on
stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tui.settings import ConfigError, Settings, load_settings

EXIT_USAGE = 2
EXIT_RUNTIME = 1


class CliError(Exception):
    """A user-facing error; the message is printed as is."""


def parse_speed(text: str) -> float | None:
    """``--speed`` value: a positive multiple of real time, or ``max`` (returns None)."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid speed {text!r}: use a positive number (e.g. 10) or 'max'"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}: must be greater than 0")
    return value


def parse_time(text: str) -> int:
    """``--start`` value: ms since the epoch, or an ISO 8601 time (UTC unless it says otherwise).

    Returns:
        Time in ms UTC.
    """
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601 like 2023-08-01T00:00 (UTC) or ms since epoch"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``--duration`` value like ``90``, ``30s``, ``5m``, ``2h``, ``1d``; returns seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a positive number with an optional unit s, m, h or d"
        )
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * scale


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="config file (default: $PERPSCOPE_CONFIG or the user config dir)")
    parser.add_argument("--replay", metavar="PATH", type=Path, default=default,
                        help="replay recorded data (kline history folder/file or WS capture) "
                             "through a loopback exchange server instead of going live")
    parser.add_argument("--speed", type=parse_speed, default=argparse.SUPPRESS, metavar="N|max",
                        help="replay speed: N times real time, or max (default: 1 in the TUI, "
                             "max for scan)")
    parser.add_argument("--start", type=parse_time, metavar="TIME", default=default,
                        help="replay start (ISO UTC or ms); earlier data is served as backfill")
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="log debug details to stderr (headless) or the log file (TUI)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and help output)."""
    parser = argparse.ArgumentParser(
        prog="perpscope",
        description="Live monitor and multi-timeframe signal scanner for USDT-margined "
                    "perpetual futures (Binance USDⓈ-M). Read-only, public data.",
    )
    _common_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser("scan", help="backfill (or replay to the end), print one record per "
                                        "symbol, exit")
    _common_options(scan, suppress=True)
    fmt = scan.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines, one object per symbol")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    scan.add_argument("--top", type=_positive_int, metavar="N",
                      help="only the N strongest signals (by distance of score from 50)")

    record = sub.add_parser("record", help="record raw live WebSocket frames for later --replay")
    _common_options(record, suppress=True)
    record.add_argument("--out", type=Path, required=True, metavar="FILE",
                        help="output file (gzip line format, e.g. session.psrec.gz)")
    record.add_argument("--duration", type=parse_duration, metavar="D",
                        help="stop after D (e.g. 90s, 10m, 2h); default: until Ctrl-C")

    ask = sub.add_parser("ask", help="ask the AI analyst about a symbol (local Ollama; "
                                      "rule-based analysis when none answers)")
    _common_options(ask, suppress=True)
    ask.add_argument("symbol", help="symbol, e.g. BTCUSDT (or BTC)")
    ask.add_argument("question", nargs="?", default="Summarise the signal and what would "
                     "invalidate it.", help="the question (default: a signal summary)")
    ask.add_argument("--verdict", action="store_true",
                     help="print a JSON verdict (decision, target_price, rationale, risk_flags, "
                          "confidence_explained) instead of a free answer")
    ask.add_argument("--model", metavar="NAME", help="Ollama model (default: [ai] model)")
    ask.add_argument("--show-prompt", action="store_true",
                     help="print the exact prompt and context sent to stderr")
    breadth = sub.add_parser("breadth", help="backfill (or replay to the end), print the "
                                              "market state (breadth), exit")
    _common_options(breadth, suppress=True)
    breadth.add_argument("--json", action="store_true", help="one JSON object")
    from tui.backtest_cli import register as register_backtest
    from tui.picks_cli import register as register_picks

    register_picks(sub)
    register_backtest(sub, common=_config_options)
    return parser


def _config_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``-v`` for commands that take no replay options."""
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $PERPSCOPE_CONFIG or the user config dir)")
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug details to stderr")


def _configure_logging(verbose: bool, log_file: Path | None) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``perpscope`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.replay is not None and not args.replay.exists():
            raise CliError(f"replay path not found: {args.replay}")
        if args.command == "scan":
            _configure_logging(args.verbose, None)
            from tui.headless import run_scan

            return run_scan(settings, args)
        if args.command == "breadth":
            _configure_logging(args.verbose, None)
            from tui.headless import run_breadth

            return run_breadth(settings, args)
        if args.command == "record":
            _configure_logging(args.verbose, None)
            from tui.headless import run_record

            return run_record(settings, args)
        if args.command == "ask":
            _configure_logging(args.verbose, None)
            from tui.ask import run_ask

            return run_ask(settings, args)
        if args.command == "picks":
            _configure_logging(args.verbose, None)
            from tui.picks_cli import run_picks

            return run_picks(settings, args)
        if args.command in ("backtest", "export"):
            _configure_logging(args.verbose, None)
            from tui.backtest_cli import run_backtest_cli, run_export_cli

            run = run_backtest_cli if args.command == "backtest" else run_export_cli
            return run(settings, args)
        _configure_logging(args.verbose, settings.data_path() / "perpscope.log")
        return _run_tui(settings, args)
    except ConfigError as exc:
        print(f"perpscope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"perpscope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run_tui(settings: Settings, args: argparse.Namespace) -> int:
    from tui.app import make_app
    from tui.headless import build_runner

    runner = build_runner(settings, args, default_speed=1.0, desk=True)
    from storage.db import DB_NAME

    # Replays keep chats in memory: verdicts on recorded data must not mix with live ones.
    db_path = None if args.replay is not None else settings.data_path() / DB_NAME
    app = make_app(
        runner, settings.ui, title_exchange=settings.general.exchange, ai=settings.ai,
        db_path=db_path, data_dir=settings.data_path(),
    )
    app.run()
    return int(app.return_code or 0)


if __name__ == "__main__":  # `python -m tui.cli`
    sys.exit(main())
