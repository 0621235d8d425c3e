"""Headless ``perpscope picks [--json] [--all]``: open (or all) picks with status, PnL % and R
from the last known prices stored in the database, for scripts and cron.

Wiring (``tui.cli``): call :func:`register` with the sub-parsers, and dispatch
``args.command == "picks"`` to :func:`run_picks`. A missing or unusable database prints one
error line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.picks import pick_view
from storage.db import DB_NAME, Database, DatabaseError
from storage.picks import Pick, PickStore
from tui.settings import ConfigError, Settings, load_settings

EXIT_OK = 0
EXIT_USAGE = 2

JSON_FIELDS = (
    "id", "symbol", "side", "status", "live", "entry", "stop_loss", "take_profit_1",
    "take_profit_2", "size_quote", "risk_pct", "note", "signal_type", "signal_as_of",
    "opened_ms", "expires_ms", "closed_ms", "price", "price_ms", "pnl_pct", "pnl_r",
    "realized_r",
)
"""Keys of one ``--json`` line, in order."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``picks`` sub-command to the ``perpscope`` sub-parsers; returns its parser."""
    parser = sub.add_parser("picks", help="list open (or all) picks with status, PnL % and R "
                                          "from the last known prices, exit")
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $PERPSCOPE_CONFIG or the user config dir)")
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug details to stderr")
    parser.add_argument("--json", action="store_true", help="JSON lines, one object per pick")
    parser.add_argument("--all", action="store_true",
                        help="every pick (ended ones with their realised result), not only open")
    return parser


def pick_record(pick: Pick, now_ms: int, tp1_fraction: float = 0.5) -> dict[str, Any]:
    """The ``--json`` record of one pick.

    Keys (:data:`JSON_FIELDS`): the stored pick fields (prices in quote currency, times in
    ms UTC, ``risk_pct`` in percent, ``side`` ``LONG``/``SHORT``, ``status`` ``OPEN``/``TP1``/
    ``TP2``/``SL``/``CLOSED``/``EXPIRED``); ``live`` (still followed); ``price`` / ``price_ms``
    (last known price and its time for a live pick, close price and time for an ended one;
    ``None`` if unknown); ``pnl_pct`` (percent of entry) and ``pnl_r`` (R) of the whole
    position at that price (after TP1 the part taken at TP1 counts; the realised result for an
    ended pick); ``realized_r`` (``None`` while live).
    """
    view = pick_view(pick, price=pick.last_price, now_ms=now_ms, stale=False,
                     tp1_fraction=tp1_fraction)
    price_ms = pick.last_price_ms if pick.live else pick.closed_ms
    record: dict[str, Any] = {
        "id": pick.id, "symbol": pick.symbol, "side": pick.side.value,
        "status": pick.status.value, "live": pick.live, "entry": pick.entry,
        "stop_loss": pick.stop_loss, "take_profit_1": pick.take_profit_1,
        "take_profit_2": pick.take_profit_2, "size_quote": pick.size_quote,
        "risk_pct": pick.risk_pct, "note": pick.note, "signal_type": pick.signal_type or None,
        "signal_as_of": pick.signal_as_of, "opened_ms": pick.opened_ms,
        "expires_ms": pick.expires_ms, "closed_ms": pick.closed_ms, "price": view.price,
        "price_ms": price_ms if view.price is not None else None,
        "pnl_pct": _round(view.pnl_pct, 4), "pnl_r": _round(view.pnl_r, 4),
        "realized_r": _round(pick.realized_r, 4),
    }
    return record


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


async def load_picks(path: Path, everything: bool) -> list[Pick]:
    """Picks from the database file at ``path``: live ones, or all with ``everything``.

    Raises:
        DatabaseError: if the file is not a database or is of a newer schema.
    """
    async with Database(path) as db:
        store = PickStore(db)
        return await (store.all() if everything else store.open())


def run_picks(settings: Settings, args: argparse.Namespace) -> int:
    """``perpscope picks``: print the picks; returns the exit status (0, or 2 on a database
    error after one line on stderr)."""
    path = settings.data_path() / DB_NAME
    if not path.is_file():
        # Opening would create an empty database: a typo'd data dir must not look like "no picks".
        print(f"perpscope: no perpscope database at {path} (no picks taken yet?)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        picks = asyncio.run(load_picks(path, bool(getattr(args, "all", False))))
    except DatabaseError as exc:
        print(f"perpscope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = int(time.time() * 1000)
    picks_cfg = getattr(settings, "picks", None)  # the [picks] section, once wired
    fraction = float(getattr(picks_cfg, "tp1_fraction", 0.5))
    records = [pick_record(p, now, fraction) for p in picks]
    if getattr(args, "json", False):
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in records))
    else:
        print_picks(records, Console(width=None if sys.stdout.isatty() else 160), now)
    return EXIT_OK


def _fmt(value: float | None, fmt: str = "{:.6g}") -> str:
    return "–" if value is None else fmt.format(value)


def _age(ms: int) -> str:
    minutes = ms // 60_000
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h{minutes % 60:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def print_picks(records: list[dict[str, Any]], console: Console, now_ms: int) -> None:
    """A rich table of pick records (:func:`pick_record`)."""
    if not records:
        console.print("no picks")
        return
    table = Table(title=f"perpscope picks · {len(records)}", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for name in ("id", "symbol", "side", "status", "entry", "stop", "TP1", "TP2", "price",
                 "PnL %", "R", "opened (UTC)", "open"):
        left = name in ("symbol", "side", "status", "opened (UTC)")
        table.add_column(name, justify="left" if left else "right", no_wrap=True)
    for r in records:
        side_style = "green" if r["side"] == "LONG" else "red"
        r_value = r["pnl_r"]
        r_style = "" if r_value is None else ("green" if r_value > 0 else "red")
        end = now_ms if r["closed_ms"] is None else r["closed_ms"]
        opened = datetime.fromtimestamp(r["opened_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            str(r["id"]), r["symbol"], Text(r["side"], style=side_style),
            r["status"] + ("" if r["live"] else " ✓"), _fmt(r["entry"]), _fmt(r["stop_loss"]),
            _fmt(r["take_profit_1"]), _fmt(r["take_profit_2"]), _fmt(r["price"]),
            _fmt(r["pnl_pct"], "{:+.2f}"), Text(_fmt(r_value, "{:+.2f}"), style=r_style),
            opened, _age(max(0, end - r["opened_ms"])),
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m tui.picks_cli picks [--json] [--all]``), the same as
    ``perpscope picks`` once wired into :mod:`tui.cli`."""
    parser = argparse.ArgumentParser(prog="perpscope")
    parser.add_argument("--config", metavar="PATH", default=None)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"perpscope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_picks(settings, args)


if __name__ == "__main__":
    sys.exit(main())
