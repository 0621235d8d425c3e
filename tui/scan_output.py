"""Headless scan output: one record per symbol as JSON lines, CSV or a rich table."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.models import Breadth, EngineSnapshot, Factor, SymbolState
from feeds.intervals import interval_ms

CSV_FIELDS = (
    "symbol", "signal", "score", "confidence", "entry", "stop_loss", "take_profit_1",
    "take_profit_2", "risk_reward", "as_of", "last_price", "change_24h_pct", "funding_rate",
    "stale",
)


def _finite(value: float, digits: int = 6) -> float | None:
    """``value`` rounded, or ``None`` when NaN/infinite (JSON has no NaN)."""
    return round(value, digits) if math.isfinite(value) else None


def factor_record(factor: Factor) -> dict[str, Any]:
    """One factor of the breakdown as a JSON-ready dict (non-finite readings → ``None``)."""
    return {
        "name": factor.name,
        "category": factor.category,
        "timeframe": factor.timeframe or None,
        "value": _finite(factor.value),
        "weight": _finite(factor.weight),
        "contribution": _finite(factor.contribution),
        "note": factor.note,
    }


def scan_record(state: SymbolState, timeframes: Iterable[str]) -> dict[str, Any]:
    """The scan record of one symbol.

    Keys: ``symbol``; ``signal`` (LONG/SHORT/NEUTRAL, or NEUTRAL without data); ``score``
    (0-100); ``confidence`` (0-1); ``timeframes`` (timeframe → vote in [-1, 1], ``None`` while
    warming up); ``entry``/``stop_loss``/``take_profit_1``/``take_profit_2`` (quote currency,
    ``None`` without a plan); ``risk_reward``; ``as_of`` (ms UTC close time of the last closed
    bar used); ``last_price``; ``change_24h_pct`` (percent); ``funding_rate`` (fraction);
    ``stale``; ``type`` (``MOMENTUM_LONG``, ``REVERSION_SHORT``, ``STRONG_*``, ``WEAK_*``,
    ``NEUTRAL``...); ``regime`` (timeframe → ``trending``/``ranging``/``high_volatility``,
    ``None`` while warming up); ``momentum_score``/``reversion_score``/``balanced_score``
    (0-100); ``filters`` (names of the risk filters that fired); ``blocked``; ``risk_profile``;
    ``patterns`` (candlestick patterns on the entry timeframe's last candle); ``eta_minutes``
    (to TP1) and ``invalidation`` (quote currency) of the plan; ``factors`` (the full
    breakdown: ``name``, ``category``, ``timeframe``, ``value``, ``weight``,
    ``contribution``, ``note``).

    Derivatives and microstructure: ``mark_price`` (quote currency), ``next_funding_time``
    (ms UTC, ``None`` if unknown), ``open_interest_change`` (window → fraction, only windows
    the open-interest history covers), ``spread_bps``, ``imbalance`` (-1..1), ``micro_score``
    (0-100), ``micro_signal`` (``MICRO_LONG``/``MICRO_SHORT`` while within its cooldown, else
    ``None``), and ``book`` (``{"state": "synced"|"resyncing"|"none", "resyncs": n,
    "gaps": n}``) for symbols that have a book (``None`` otherwise).
    """
    signal = state.signal
    timeframes = list(timeframes)
    votes: dict[str, float | None] = {tf: None for tf in timeframes}
    regimes: dict[str, str | None] = {tf: None for tf in timeframes}
    plan = signal.plan if signal else None
    if signal:
        for tf_signal in signal.timeframes:
            votes[tf_signal.timeframe] = (
                None if tf_signal.vote is None else round(tf_signal.vote, 4)
            )
            regimes[tf_signal.timeframe] = tf_signal.regime or None
    eta = plan.eta_minutes if plan else None
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
        "type": signal.signal_type.value if signal else "NEUTRAL",
        "regime": regimes,
        "momentum_score": round(signal.momentum_score, 2) if signal else 50.0,
        "reversion_score": round(signal.reversion_score, 2) if signal else 0.0,
        "balanced_score": round(signal.balanced_score, 2) if signal else 50.0,
        "filters": list(signal.filters) if signal else [],
        "blocked": signal.blocked if signal else False,
        "risk_profile": signal.risk_profile if signal else None,
        "patterns": list(signal.patterns) if signal else [],
        "eta_minutes": None if eta is None else _finite(eta, 1),
        "invalidation": plan.invalidation if plan else None,
        "factors": [factor_record(f) for f in signal.factors] if signal else [],
        "mark_price": state.mark_price,
        "next_funding_time": state.next_funding_time or None,
        "open_interest_change": {k: _finite(v) for k, v in state.oi_change.items()},
        "spread_bps": _opt(state.spread_bps, 3),
        "imbalance": _opt(state.imbalance, 4),
        "micro_score": _opt(state.micro_score, 2),
        "micro_signal": (
            state.micro_signal.signal_type.value if state.micro_signal is not None else None
        ),
        "book": _book_record(state),
    }


def _opt(value: float | None, digits: int) -> float | None:
    return None if value is None else _finite(value, digits)


def _book_record(state: SymbolState) -> dict[str, Any] | None:
    book = state.book
    if book is None or book.state == "none":
        return None
    return {"state": book.state, "resyncs": book.resyncs, "gaps": book.gaps}


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


def breadth_record(breadth: Breadth, snapshot: EngineSnapshot) -> dict[str, Any]:
    """The breadth as a JSON-ready dict: every :class:`~engine.models.Breadth` field plus
    ``universe`` (the fresh symbols counted, sorted)."""
    record: dict[str, Any] = msgspec.to_builtins(breadth)
    record["universe"] = sorted(s for s, row in snapshot.symbols.items() if not row.stale)
    return record


def breadth_json(snapshot: EngineSnapshot) -> str:
    """One JSON object (see :func:`breadth_record`); ``{}`` before any data."""
    if snapshot.breadth is None:
        return "{}"
    return json.dumps(breadth_record(snapshot.breadth, snapshot), separators=(",", ":"))


def print_breadth(snapshot: EngineSnapshot, console: Console) -> None:
    """The breadth as a two-column rich table."""
    b = snapshot.breadth
    if b is None:
        console.print("no data")
        return

    def pct(value: float | None, fmt: str = "{:.1f}%") -> str:
        return "–" if value is None else fmt.format(value)

    table = Table(title=f"perpscope breadth · {b.symbols} symbols", box=box.SIMPLE_HEAD,
                  show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("advancers / decliners", f"{b.advancers} / {b.decliners}")
    table.add_row("median 24h change", pct(b.median_change_pct, "{:+.2f}%"))
    table.add_row("new 24h highs / lows", f"{b.new_highs} / {b.new_lows}")
    for tf in snapshot.timeframes:
        table.add_row(f"above EMA50 / EMA200 ({tf})",
                      f"{pct(b.above_ema50_pct.get(tf))} / {pct(b.above_ema200_pct.get(tf))}")
    table.add_row("median funding", pct(
        None if b.median_funding is None else b.median_funding * 100, "{:+.4f}%"))
    if b.max_funding is not None and b.min_funding is not None:
        table.add_row("funding extremes",
                      f"{b.max_funding_symbol} {b.max_funding * 100:+.4f}% · "
                      f"{b.min_funding_symbol} {b.min_funding * 100:+.4f}%")
    table.add_row("median ATR % / volatility", f"{pct(b.median_atr_pct, '{:.3f}%')} / "
                  f"{b.volatility_regime or '–'}")
    table.add_row("LONG / SHORT signals", f"{b.longs} / {b.shorts}")
    btc = "–" if b.btc_score is None else f"{b.btc_trend} {b.btc_score:.0f}"
    if b.btc_microtrend is not None:
        btc += f" · micro {b.btc_microtrend:+.2f}"
    table.add_row("BTC trend", btc)
    for window in sorted(b.oi_symbols, key=interval_ms):
        median = b.median_oi_change.get(window)
        table.add_row(
            f"open interest {window}",
            f"{b.oi_rising.get(window, 0)} up / {b.oi_falling.get(window, 0)} down of "
            f"{b.oi_symbols[window]} · median "
            + ("–" if median is None else f"{median * 100:+.2f}%"),
        )
    console.print(table)
