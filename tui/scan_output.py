"""Headless scan output: one record per symbol as JSON lines, CSV or a rich table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.models import EngineSnapshot, SymbolState

CSV_FIELDS = (
    "symbol", "signal", "score", "confidence", "entry", "stop_loss", "take_profit_1",
    "take_profit_2", "risk_reward", "as_of", "last_price", "change_24h_pct", "funding_rate",
    "stale",
)


def scan_record(state: SymbolState, timeframes: Iterable[str]) -> dict[str, Any]:
    """The scan record of one symbol.

    Keys: ``symbol``; ``signal`` (LONG/SHORT/NEUTRAL, or NEUTRAL without data); ``score``
    (0-100); ``confidence`` (0-1); ``timeframes`` (timeframe → vote in [-1, 1], ``None`` while
    warming up); ``entry``/``stop_loss``/``take_profit_1``/``take_profit_2`` (quote currency,
    ``None`` without a plan); ``risk_reward``; ``as_of`` (ms UTC close time of the last closed
    bar used); ``last_price``; ``change_24h_pct`` (percent); ``funding_rate`` (fraction);
    ``stale``.
    """
    signal = state.signal
    votes: dict[str, float | None] = {tf: None for tf in timeframes}
    plan = signal.plan if signal else None
    if signal:
        for tf_signal in signal.timeframes:
            votes[tf_signal.timeframe] = (
                None if tf_signal.vote is None else round(tf_signal.vote, 4)
            )
    return {
        "symbol": state.symbol,
        "signal": signal.direction.value if signal else "NEUTRAL",
        "score": round(signal.score, 2) if signal else 50.0,
        "confidence": round(signal.confidence, 4) if signal else 0.0,
        "timeframes": votes,
        "entry": plan.entry if plan else None,
        "stop_loss": plan.stop_loss if plan else None,
        "take_profit_1": plan.take_profit_1 if plan else None,
        "take_profit_2": plan.take_profit_2 if plan else None,
        "risk_reward": round(plan.risk_reward, 3) if plan else None,
        "as_of": signal.as_of if signal else None,
        "last_price": state.last_price,
        "change_24h_pct": None if state.change_24h_pct is None else round(state.change_24h_pct, 3),
        "funding_rate": state.funding_rate,
        "stale": state.stale,
    }


def ranked(snapshot: EngineSnapshot, top: int | None) -> list[SymbolState]:
    """Symbols ordered strongest signal first (distance of the score from 50), then by name."""
    def key(state: SymbolState) -> tuple[float, str]:
        strength = abs(state.signal.score - 50.0) if state.signal else -1.0
        return (-strength, state.symbol)

    states = sorted(snapshot.symbols.values(), key=key)
    return states[:top] if top else states


def to_json_lines(snapshot: EngineSnapshot, top: int | None = None) -> str:
    """JSON lines, one object per symbol (see :func:`scan_record`)."""
    return "".join(
        json.dumps(scan_record(state, snapshot.timeframes), separators=(",", ":")) + "\n"
        for state in ranked(snapshot, top)
    )


def to_csv(snapshot: EngineSnapshot, top: int | None = None) -> str:
    """CSV with a header row; timeframe votes as ``vote_<tf>`` columns."""
    buffer = io.StringIO()
    vote_fields = [f"vote_{tf}" for tf in snapshot.timeframes]
    writer = csv.DictWriter(buffer, fieldnames=[*CSV_FIELDS, *vote_fields], lineterminator="\n")
    writer.writeheader()
    for state in ranked(snapshot, top):
        record = scan_record(state, snapshot.timeframes)
        votes = record.pop("timeframes")
        row = {key: ("" if record[key] is None else record[key]) for key in CSV_FIELDS}
        for tf in snapshot.timeframes:
            row[f"vote_{tf}"] = "" if votes[tf] is None else votes[tf]
        writer.writerow(row)
    return buffer.getvalue()


def _tick_decimals(tick: float) -> int:
    """Decimals of a price tick (0.001 → 3), from its shortest decimal text."""
    text = repr(float(tick))
    if "e" in text:
        text = f"{tick:.10f}".rstrip("0")
    fraction = text.partition(".")[2]
    return 0 if fraction in ("", "0") else min(8, len(fraction))


def _vote_glyph(vote: float | None) -> Text:
    if vote is None:
        return Text("…", style="dim")
    if vote > 0.2:
        return Text("▲", style="green")
    if vote < -0.2:
        return Text("▼", style="red")
    return Text("·")


def print_table(snapshot: EngineSnapshot, console: Console, top: int | None = None) -> None:
    """A rich table of the ranked records."""
    # Borderless: a scan is read in ordinary terminals and pipes, where every column counts.
    table = Table(
        title=f"perpscope scan · {len(snapshot.symbols)} symbols",
        expand=False,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    states = ranked(snapshot, top)
    longest = max((len(state.symbol) for state in states), default=6)
    # The symbol is the row's identity: never truncate it, let numbers squeeze instead.
    table.add_column("symbol", no_wrap=True, min_width=longest)
    for name, justify in (("last", "right"), ("24h %", "right"),
                          ("signal", "left"), ("score", "right"), ("conf", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for tf in snapshot.timeframes:
        table.add_column(tf, justify="center", no_wrap=True, min_width=max(2, len(tf)))
    for name in ("entry", "stop", "TP1", "TP2", "R:R"):
        table.add_column(name, justify="right", no_wrap=True)
    for state in states:
        record = scan_record(state, snapshot.timeframes)
        style = {"LONG": "green", "SHORT": "red"}.get(record["signal"], "")
        price_fmt = "{:.6g}"
        if state.tick_size:
            price_fmt = f"{{:.{_tick_decimals(state.tick_size)}f}}"

        def num(value: float | None, fmt: str = price_fmt) -> str:
            return "–" if value is None else fmt.format(value)

        table.add_row(
            record["symbol"], num(record["last_price"]),
            num(record["change_24h_pct"], "{:+.2f}"),
            Text(record["signal"], style=style), num(record["score"], "{:.0f}"),
            num(record["confidence"], "{:.2f}"),
            *[_vote_glyph(record["timeframes"][tf]) for tf in snapshot.timeframes],
            num(record["entry"]), num(record["stop_loss"]), num(record["take_profit_1"]),
            num(record["take_profit_2"]), num(record["risk_reward"], "{:.2f}"),
            style="dim" if record["stale"] else "",
        )
    console.print(table)
