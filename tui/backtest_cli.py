"""``perpscope backtest`` and ``perpscope export signals``.

::

    perpscope backtest PATH [--from T] [--to T] [--fees BPS] [--slippage BPS] [--folds K]
                            [--workers N] [--symbols A,B] [--json | --csv FILE]
                            [--save-calibration] [--store]
    perpscope export signals --format parquet|csv [--out PATH] [--source S]

The lead wires these into :mod:`tui.cli` with :func:`register` (parsers) and
:func:`run_backtest_cli` / :func:`run_export_cli` (exit status); the async bodies are
:func:`backtest_main` and :func:`export_main`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.backtest import BacktestOptions, BacktestReport, build_report, run_backtest
from engine.outcomes import OutcomeConfig
from feeds.replay.errors import ReplayDataError
from storage.db import DB_NAME, Database, DatabaseError
from storage.signals import CalibrationRow, SignalStore, StoredSignal

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


# --------------------------------------------------------------------------- parsers


def _time(text: str) -> int:
    # Same rules as the TUI's --start (ms or ISO 8601, UTC unless stated).
    from tui.cli import parse_time

    return parse_time(text)


def _bps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid basis points {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"basis points must be within 0..100, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: Any, common: Callable[[argparse.ArgumentParser], None] | None = None) -> (
    None
):
    """Add the ``backtest`` and ``export`` commands to the CLI's subparsers.

    Args:
        subparsers: The ``add_subparsers()`` object of the ``perpscope`` parser.
        common: Adds the shared options (``--config``, ``-v``) to a subparser, if given.
    """
    bt = subparsers.add_parser(
        "backtest", help="run the signal engine bar by bar over kline history; report "
                         "results, reliability and calibration",
    )
    if common is not None:
        common(bt)
    bt.add_argument("path", type=Path, help="kline folder or file (same formats as --replay)")
    bt.add_argument("--from", dest="from_ms", type=_time, metavar="T",
                    help="first bar (ISO UTC or ms); default: after the warm-up history")
    bt.add_argument("--to", dest="to_ms", type=_time, metavar="T", help="last bar close")
    bt.add_argument("--fees", type=_bps, default=None, metavar="BPS",
                    help="taker fee per side in bps (default: [outcomes] fees_bps)")
    bt.add_argument("--slippage", type=_bps, default=None, metavar="BPS",
                    help="slippage per side in bps (default: [outcomes] slippage_bps)")
    bt.add_argument("--folds", type=_count, default=5, metavar="K",
                    help="walk-forward test folds for calibration (default 5)")
    bt.add_argument("--workers", type=_count, default=2, metavar="N",
                    help="processes (default 2; BTC runs in each for the BTC gate)")
    bt.add_argument("--symbols", metavar="A,B", help="only these symbols (BTCUSDT,ETHUSDT)")
    out = bt.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--csv", type=Path, metavar="FILE", help="also write the group table as CSV")
    bt.add_argument("--save-calibration", action="store_true",
                    help="store the fitted calibration model (applied to live confidence)")
    bt.add_argument("--store", action="store_true",
                    help="store the backtest's signals and outcomes (source backtest:<name>) "
                         "for `perpscope export signals`")

    ex = subparsers.add_parser("export", help="export stored data")
    if common is not None:
        common(ex)
    what = ex.add_subparsers(dest="export_what", metavar="WHAT", required=True)
    sig = what.add_parser("signals", help="stored signals with features and outcomes")
    if common is not None:
        common(sig)
    sig.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    sig.add_argument("--out", type=Path, metavar="PATH",
                     help="output file (default: signals.<format> in the current directory)")
    sig.add_argument("--source", metavar="S",
                     help="only signals of this source (live:binanceusdm, backtest:<name>...)")


# --------------------------------------------------------------------------- backtest


def outcome_config(settings: Any, fees: float | None, slippage: float | None) -> OutcomeConfig:
    """The ``[outcomes]`` section (defaults when the settings have none) with CLI overrides."""
    base = getattr(settings, "outcomes", None)
    cfg = base if isinstance(base, OutcomeConfig) else OutcomeConfig()
    update: dict[str, float] = {}
    if fees is not None:
        update["fees_bps"] = fees
    if slippage is not None:
        update["slippage_bps"] = slippage
    return cfg.model_copy(update=update) if update else cfg


def _symbols(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(dict.fromkeys(s.strip().upper() for s in text.split(",") if s.strip()))


def run_backtest_cli(settings: Any, args: argparse.Namespace) -> int:
    """``perpscope backtest``; returns the exit status (errors: one line on stderr)."""
    if not args.path.exists():
        print(f"perpscope: backtest: kline path not found: {args.path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(backtest_main(settings, args))
    except (ReplayDataError, ValueError, DatabaseError) as exc:
        print(f"perpscope: backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def backtest_main(settings: Any, args: argparse.Namespace) -> int:
    """Run the backtest (in a thread: it is CPU bound), print, save; exit status.

    Raises:
        feeds.replay.errors.ReplayDataError: unusable kline data.
        ValueError: empty range, no usable symbol.
        storage.db.DatabaseError: the database cannot be opened (``--save-calibration``).
    """
    path: Path = args.path
    outcomes = outcome_config(settings, args.fees, args.slippage)
    source = f"backtest:{path.name}"
    options = BacktestOptions(
        start_ms=args.from_ms, end_ms=args.to_ms, symbols=_symbols(args.symbols),
        outcomes=outcomes, workers=args.workers, source=source,
    )
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("backtest"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} bars"),
        TimeRemainingColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("bars", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        run = await asyncio.to_thread(
            run_backtest, path, settings.engine_config(), options, report
        )
    result = build_report(run, source=source, outcomes=outcomes, folds=args.folds)
    if args.json:
        sys.stdout.write(report_json(result) + "\n")
    else:
        width = None if sys.stdout.isatty() else 160
        print_report(result, Console(width=width))
    if args.csv is not None:
        groups_frame(result).write_csv(args.csv)
    if args.save_calibration or args.store:
        async with Database(settings.data_path() / DB_NAME) as db:
            store = SignalStore(db)
            store.start()
            try:
                if args.store:
                    for item in run.signals:
                        store.submit(item.record)
                        if item.outcome is not None:
                            store.submit_outcome(item.record, item.outcome)
                if args.save_calibration:
                    if result.calibration is None:
                        print("perpscope: no resolved signals: no calibration saved",
                              file=sys.stderr)
                    else:
                        model = result.calibration
                        await store.save_calibration(CalibrationRow(
                            kind=model.kind, fitted_ms=model.fitted_ms,
                            data_from=model.data_from, data_to=model.data_to,
                            source=model.source, engine_version=model.engine_version,
                            samples=model.samples, ece_before=model.ece_before,
                            ece_after=model.ece_after, model=model.model_json(),
                        ))
            finally:
                await store.stop()
    return EXIT_OK


def _clean(value: Any) -> Any:
    """JSON cannot carry NaN/inf: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def report_json(report: BacktestReport) -> str:
    """The report as one JSON object (NaN/inf → null)."""
    return json.dumps(_clean(msgspec.to_builtins(report)))


def groups_frame(report: BacktestReport) -> pl.DataFrame:
    """The per-group table (one row per type × timeframe × regime, then ``ALL``)."""
    return pl.DataFrame([msgspec.to_builtins(g) for g in report.groups])


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "∞"
    return format(value, spec)


def print_report(report: BacktestReport, console: Console) -> None:
    """Rich tables: header, per-group results, reliability (confidence deciles)."""
    console.print(
        f"[bold]backtest[/] {report.source}  {_iso(report.start_ms)} → {_iso(report.end_ms)} UTC"
        f"  {len(report.symbols)} symbols  {report.bars:,} bars in {report.seconds:.1f}s "
        f"({report.bars_per_s:,.0f} bars/s)  fees {report.fees_bps:g} bps + slippage "
        f"{report.slippage_bps:g} bps/side  engine {report.engine_version}"
    )
    table = Table(title="results per signal type × plan timeframe × regime")
    for name in ("type", "tf", "regime", "signals", "resolved", "hit rate (95% CI)",
                 "expectancy R", "profit factor", "max DD R", "avg time"):
        table.add_column(name, justify="left" if name in ("type", "tf", "regime") else "right")
    for g in report.groups:
        hours = g.avg_minutes / 60
        table.add_row(
            g.signal_type, g.timeframe, g.regime, f"{g.signals}", f"{g.resolved}",
            f"{g.hit_rate:.0%} ({g.hit_low:.0%}-{g.hit_high:.0%})" if g.resolved else "-",
            _num(g.expectancy_r if g.resolved else None, "+.2f"),
            _num(g.profit_factor if g.resolved else None, ".2f"),
            _num(g.max_drawdown_r if g.resolved else None, ".1f"),
            f"{hours:.1f} h" if g.resolved else "-",
            style="bold" if g.signal_type == "ALL" else None,
        )
    console.print(table)
    rel = Table(title=(
        f"reliability (confidence deciles, out-of-fold: {report.oof_samples} signals, "
        f"{report.folds} folds)  ECE {_num(report.ece_before, '.3f')} raw → "
        f"{_num(report.ece_after, '.3f')} calibrated"
    ))
    for name in ("confidence", "signals", "predicted", "calibrated", "observed TP1<SL"):
        rel.add_column(name, justify="right")
    for b in report.reliability:
        rel.add_row(
            f"{b.lower:.1f}-{b.upper:.1f}", f"{b.count}", _num(b.predicted, ".2f"),
            _num(b.calibrated, ".2f"), _num(b.observed, ".2f"),
        )
    console.print(rel)


# --------------------------------------------------------------------------- export


def factor_columns(stored: StoredSignal) -> dict[str, float]:
    """A signal's factor breakdown flattened: ``<name>@<timeframe>`` (``<name>`` for fused
    factors) → value, and ``…:contribution`` → signed contribution."""
    out: dict[str, float] = {}
    for f in stored.record.factors:
        key = f"{f.name}@{f.timeframe}" if f.timeframe else f.name
        out[f"factor.{key}"] = f.value
        out[f"factor.{key}:contribution"] = f.contribution
    return out


def signal_row(stored: StoredSignal) -> dict[str, Any]:
    """One export row: the stored signal's columns, its factors, and its outcome (nulls while
    open) plus ``hit`` (TP1 before SL)."""
    r = stored.record
    row: dict[str, Any] = {
        "id": stored.id, "symbol": r.symbol, "kind": r.kind, "signal_type": r.signal_type,
        "direction": r.direction, "as_of": r.as_of, "timeframes": ",".join(r.timeframes),
        "score": r.score, "confidence": r.confidence, "calibrated": r.calibrated,
        "entry": r.entry, "stop_loss": r.stop_loss, "take_profit_1": r.take_profit_1,
        "take_profit_2": r.take_profit_2, "risk_reward": r.risk_reward,
        "plan_timeframe": r.plan_timeframe, "atr": r.atr, "regime": r.regime,
        "risk_profile": r.risk_profile, "source": r.source, "engine_version": r.engine_version,
        "stored_ms": stored.stored_ms,
    }
    o = stored.outcome
    row.update({
        "result": o.result if o else None,
        "hit": o.win if o else None,
        "exit_time": o.exit_time if o else None,
        "exit_price": o.exit_price if o else None,
        "bars": o.bars if o else None,
        "time_to_outcome_ms": o.time_to_outcome_ms if o else None,
        "mfe_r": o.mfe_r if o else None,
        "mae_r": o.mae_r if o else None,
        "realized_r": o.realized_r if o else None,
        "resolved_by": o.resolved_by if o else None,
    })
    row.update(factor_columns(stored))
    return row


def signals_frame(signals: list[StoredSignal]) -> pl.DataFrame:
    """All export rows as one frame (factor columns are the union; missing ones null)."""
    rows = [signal_row(s) for s in signals]
    if not rows:
        return pl.DataFrame({"id": pl.Series([], dtype=pl.Int64)})
    return pl.DataFrame(rows, infer_schema_length=None)


def run_export_cli(settings: Any, args: argparse.Namespace) -> int:
    """``perpscope export signals``; returns the exit status."""
    try:
        return asyncio.run(export_main(settings, args))
    except (DatabaseError, OSError) as exc:
        print(f"perpscope: export: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


async def export_main(settings: Any, args: argparse.Namespace, db_path: Path | None = None) -> (
    int
):
    """Write stored signals (features and outcomes) to ``--out`` with polars.

    Raises:
        storage.db.DatabaseError: the database cannot be opened.
        OSError: the output cannot be written.
    """
    path = db_path or settings.data_path() / DB_NAME
    out: Path = args.out or Path(f"signals.{args.format}")
    started = time.perf_counter()
    async with Database(path) as db:
        store = SignalStore(db)
        signals = await store.history(source=args.source)
    frame = signals_frame(signals)
    if args.format == "parquet":
        frame.write_parquet(out)
    else:
        # CSV has no nested or null-typed columns issue here: every column is a scalar.
        frame.write_csv(out)
    print(
        f"wrote {out}: {len(signals)} signals, {frame.width} columns "
        f"({time.perf_counter() - started:.1f}s)", file=sys.stderr,
    )
    return EXIT_OK
