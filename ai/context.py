"""Compact, structured market context for one question, built from an engine snapshot.

The context is plain text in labelled sections, highest priority first:

1. ``symbol``: price, mark, funding, 24 h change, market-data age (always kept);
2. ``signal``: fused direction, score, confidence, signal age and the ATR trade plan;
3. ``factors``: per timeframe, the vote and every indicator vote behind it;
4. ``indicators``: per timeframe, the latest indicator readings;
5. ``market``: breadth computed from the snapshot (advancers/decliners, long/short counts,
   strongest longs and shorts with their funding, open interest breadth);
6. ``candles``: recent closes of the symbol's base timeframe.

The ``track record`` part (after the indicators) gives the measured outcomes of past signals
of the same type, of the symbol, and of analyst verdicts: count, hit rate with its 95 % Wilson
interval, average R and expectancy, so the model can weigh the signal by how such signals
actually did.

The ``microstructure`` part (priority of the factors) adds premium, open interest and its
change, sampled liquidations, the order book (sync state, spread, imbalance, depth, walls),
taker flow (CVD, sweeps) and the microstructure score with its factors and unmet entry
conditions, when the symbol has any of them.

Every part carries its data age; a part older than its freshness limit is marked ``STALE``
(market data: ``AiConfig.market_stale_s``; a timeframe: ``AiConfig.stale_bars`` of its bars).
The text is bounded by ``AiConfig.context_tokens``, estimated conservatively as
``ceil(chars / 4)`` (OpenAI's rule of thumb for English; numbers tokenize worse, so the budget
is a ceiling rather than an exact count). Lowest-priority parts are dropped first and the
context says which were dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ai.config import AiConfig
from engine.history import TrackRecord
from engine.models import CandleSeries, Direction, EngineSnapshot, MicroView, SymbolState
from engine.track_record import TrackStats
from feeds.intervals import interval_ms

CHARS_PER_TOKEN = 4
"""Conservative characters-per-token estimate for the budget."""
TOP_N = 5
"""Strongest longs / shorts listed in the market part."""
RECENT_CLOSES = 12
"""Closes of the base timeframe listed in the candles part."""
STALE = "STALE"
"""Marker on every stale part; the system prompt tells the model what it means."""


def estimate_tokens(text: str) -> int:
    """Conservative token estimate: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ContextPart:
    """One section of the context.

    Attributes:
        name: Section name (``symbol``, ``signal``, ``factors``, ...).
        priority: Lower is more important; the highest number is dropped first.
        text: The section text, heading included.
        stale: True when any of its data is older than its freshness limit.
    """

    name: str
    priority: int
    text: str
    stale: bool = False


@dataclass(frozen=True)
class MarketContext:
    """The context sent with one question.

    Attributes:
        symbol: Symbol asked about (empty for the general thread).
        as_of: Close time (ms UTC) of the symbol's last closed bar used by its signal (0 when
            there is none); answers are cached per ``as_of``.
        time: Engine clock of the snapshot, ms UTC.
        text: The whole context text as sent.
        parts: Sections kept, in order.
        dropped: Names of sections dropped for the token budget.
        stale_parts: Names of kept sections marked STALE.
        tokens: Estimated tokens of ``text``.
        budget: The token budget it was built for.
    """

    symbol: str
    as_of: int
    time: int
    text: str
    parts: tuple[ContextPart, ...]
    dropped: tuple[str, ...]
    stale_parts: tuple[str, ...]
    tokens: int
    budget: int
    state: SymbolState | None = field(default=None, compare=False)
    snapshot: EngineSnapshot | None = field(default=None, compare=False, repr=False)


def fmt_time(ms: int) -> str:
    """``YYYY-MM-DD HH:MM UTC`` of a ms UTC time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(ms: int) -> str:
    """Compact age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = max(0, ms) // 1000
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 120:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def fmt_num(value: float | None, digits: int = 6) -> str:
    """A number with ``digits`` significant digits (``n/a`` for None/NaN)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2f}%"


def _age_tag(age_ms: int, limit_ms: float) -> tuple[str, bool]:
    stale = age_ms > limit_ms
    return (f"age {fmt_age(age_ms)}" + (f" {STALE}" if stale else "")), stale


def build_context(
    snapshot: EngineSnapshot,
    symbol: str | None,
    config: AiConfig,
    candles: CandleSeries | None = None,
    micro: MicroView | None = None,
    track: TrackRecord | None = None,
) -> MarketContext:
    """Build the bounded context for a question about ``symbol`` (or the whole market).

    Args:
        snapshot: The engine snapshot the answer must be grounded in.
        symbol: Symbol asked about; ``None`` or unknown → market part only (general thread).
        config: Token budget and freshness limits.
        candles: The symbol's base-timeframe candles (``MarketService.candles``), optional.
        micro: The symbol's order book / flow / derivatives view (``MarketService.micro``),
            optional; without it the microstructure part uses the snapshot row only.
        track: The track record of emitted signals (``MarketService.track_record``), optional.

    Returns:
        The context; ``text`` fits ``config.context_tokens`` unless even the always-kept
        ``symbol`` part alone exceeds it.
    """
    state = snapshot.symbols.get(symbol) if symbol else None
    parts: list[ContextPart] = []
    if state is not None:
        parts.append(_symbol_part(snapshot, state, config))
        parts.extend(_signal_parts(snapshot, state, config))
        micro_part = _micro_part(state, micro if micro and micro.symbol == state.symbol else None)
        if micro_part is not None:
            parts.append(micro_part)
        track_part = _track_part(state, track)
        if track_part is not None:
            parts.append(track_part)
        if candles is not None and candles.close:
            parts.append(_candles_part(snapshot, candles, config))
    parts.append(_market_part(snapshot, config, priority=5 if state is not None else 0))
    head = (
        f"# perpscope market context\n"
        f"snapshot time: {fmt_time(snapshot.time)}; feed: {snapshot.health.mode}; "
        f"timeframes: {' '.join(snapshot.timeframes)}\n"
        "units: prices in USDT, funding as percent per 8h interval, ages before snapshot time\n"
    )
    if symbol and state is None:
        head += f"symbol {symbol}: not in the scanned universe (no data)\n"
    kept, dropped = _fit(head, parts, config.context_tokens)
    text = _join(head, kept, dropped)
    signal = state.signal if state is not None else None
    return MarketContext(
        symbol=state.symbol if state is not None else "",
        as_of=signal.as_of if signal is not None else 0,
        time=snapshot.time,
        text=text,
        parts=tuple(kept),
        dropped=tuple(dropped),
        stale_parts=tuple(p.name for p in kept if p.stale),
        tokens=estimate_tokens(text),
        budget=config.context_tokens,
        state=state,
        snapshot=snapshot,
    )


def _join(head: str, parts: Sequence[ContextPart], dropped: Sequence[str]) -> str:
    out = head
    if dropped:
        out += f"omitted to fit the context budget: {', '.join(dropped)}\n"
    for part in sorted(parts, key=lambda p: p.priority):
        out += "\n" + part.text
    return out


def _fit(
    head: str, parts: list[ContextPart], budget: int
) -> tuple[list[ContextPart], list[str]]:
    kept = sorted(parts, key=lambda p: p.priority)
    dropped: list[str] = []
    # Drop from the lowest priority until the estimate fits; priority 0 is never dropped.
    while estimate_tokens(_join(head, kept, dropped)) > budget and kept[-1].priority > 0:
        dropped.append(kept.pop().name)
    return kept, dropped


def _symbol_part(snapshot: EngineSnapshot, state: SymbolState, config: AiConfig) -> ContextPart:
    tag, stale = _age_tag(state.age_ms, config.market_stale_s * 1000)
    stale = stale or state.stale
    if state.stale and STALE not in tag:
        tag += f" {STALE}"
    funding = (
        "n/a" if state.funding_rate is None else f"{state.funding_rate * 100:+.4f}%"
    )
    next_funding = fmt_time(state.next_funding_time) if state.next_funding_time else "n/a"
    lines = [
        f"## symbol {state.symbol} (market data {tag})",
        f"last price: {fmt_num(state.last_price)}",
        f"mark price: {fmt_num(state.mark_price)}",
        f"24h change: {_pct(state.change_24h_pct)}",
        f"24h quote volume: {fmt_num(state.quote_volume_24h, 4)}",
        f"funding rate: {funding} (next funding {next_funding})",
        f"last market update: {fmt_time(state.last_update) if state.last_update else 'n/a'}",
    ]
    return ContextPart("symbol", 0, "\n".join(lines) + "\n", stale)


def _tf_stale(snapshot: EngineSnapshot, as_of: int, timeframe: str, config: AiConfig) -> bool:
    return as_of <= 0 or snapshot.time - as_of > config.stale_bars * interval_ms(timeframe)


def _signal_parts(
    snapshot: EngineSnapshot, state: SymbolState, config: AiConfig
) -> list[ContextPart]:
    signal = state.signal
    if signal is None:
        return [ContextPart("signal", 1, "## signal\nnone yet (no closed candles)\n", False)]
    base = snapshot.timeframes[0] if snapshot.timeframes else "5m"
    age = snapshot.time - signal.as_of
    stale = _tf_stale(snapshot, signal.as_of, base, config) or state.stale
    tag = f"age {fmt_age(age)}" + (f" {STALE}" if stale else "")
    lines = [
        f"## signal (last closed bar {fmt_time(signal.as_of + 1)}, {tag})",
        f"direction: {signal.direction.value}",
        f"score: {signal.score:.1f} (0-100, 50 neutral, above leans long)",
        f"confidence: {signal.confidence:.2f} (0-1, agreement of timeframes and indicators)",
    ]
    # Newer engine fields (signal type, risk filters, regime) are read when present.
    signal_type = getattr(signal, "signal_type", None)
    if signal_type is not None:
        lines.append(f"signal type: {getattr(signal_type, 'value', signal_type)}")
    filters = tuple(getattr(signal, "filters", ()) or ())
    if filters:
        blocked = " (blocked the signal)" if getattr(signal, "blocked", False) else ""
        lines.append(f"risk filters fired: {', '.join(filters)}{blocked}")
    plan = signal.plan
    if plan is None:
        lines.append("trade plan: none (neutral signal or ATR not ready)")
    else:
        lines += [
            f"trade plan ({plan.timeframe} ATR {fmt_num(plan.atr)}): entry {fmt_num(plan.entry)}, "
            f"stop loss {fmt_num(plan.stop_loss)}, take profit 1 {fmt_num(plan.take_profit_1)}, "
            f"take profit 2 {fmt_num(plan.take_profit_2)}, R:R {plan.risk_reward:.2f}",
        ]
        invalidation = getattr(plan, "invalidation", None)
        if isinstance(invalidation, float):
            lines.append(f"invalidation (setup void beyond): {fmt_num(invalidation)}")
    out = [ContextPart("signal", 1, "\n".join(lines) + "\n", stale)]

    factor_lines = ["## factors (vote per timeframe in [-1, 1], +1 fully long)"]
    value_lines = ["## indicators (latest readings per timeframe)"]
    factors_stale = False
    for tf in signal.timeframes:
        tf_stale = tf.vote is not None and _tf_stale(snapshot, tf.as_of, tf.timeframe, config)
        factors_stale = factors_stale or tf_stale
        if tf.vote is None:
            factor_lines.append(
                f"{tf.timeframe}: warming up ({tf.bars}/{tf.bars_needed} bars), no vote"
            )
            continue
        when = f"bar closed {fmt_time(tf.as_of + 1)}" + (f" {STALE}" if tf_stale else "")
        votes = ", ".join(
            f"{v.name} {v.vote:+.2f} (w {v.weight:.2f}, value {fmt_num(v.value, 5)})"
            for v in tf.indicators
        )
        regime = getattr(tf, "regime", "")
        when += f", regime {regime}" if regime else ""
        factor_lines.append(f"{tf.timeframe}: vote {tf.vote:+.2f} [{when}]: {votes}")
        readings = ", ".join(f"{k} {fmt_num(v, 6)}" for k, v in tf.values.items())
        value_lines.append(f"{tf.timeframe}: {readings}")
    out.append(ContextPart("factors", 2, "\n".join(factor_lines) + "\n", factors_stale))
    if len(value_lines) > 1:
        out.append(ContextPart("indicators", 3, "\n".join(value_lines) + "\n", factors_stale))
    return out


def _market_part(snapshot: EngineSnapshot, config: AiConfig, *, priority: int) -> ContextPart:
    states = list(snapshot.symbols.values())
    fresh = [s for s in states if not s.stale]
    adv = sum(1 for s in fresh if (s.change_24h_pct or 0.0) > 0)
    dec = sum(1 for s in fresh if (s.change_24h_pct or 0.0) < 0)
    counts = {d: 0 for d in Direction}
    for s in fresh:
        if s.signal is not None:
            counts[s.signal.direction] += 1
    lines = [
        f"## market ({len(states)} symbols, {len(states) - len(fresh)} stale and excluded "
        "from these counts)",
        f"24h advancers / decliners: {adv} / {dec}",
        f"signals long / short / neutral: {counts[Direction.LONG]} / "
        f"{counts[Direction.SHORT]} / {counts[Direction.NEUTRAL]}",
    ]
    lines.extend(_engine_breadth_lines(getattr(snapshot, "breadth", None)))
    for direction, reverse in ((Direction.LONG, True), (Direction.SHORT, False)):
        ranked = sorted(
            (s for s in fresh if s.signal is not None and s.signal.direction is direction),
            key=lambda s: s.signal.score if s.signal is not None else 50.0,
            reverse=reverse,
        )[:TOP_N]
        if not ranked:
            continue
        rows = "; ".join(
            f"{s.symbol} score {s.signal.score:.1f} funding "
            + ("n/a" if s.funding_rate is None else f"{s.funding_rate * 100:+.4f}%")
            + f" 24h {_pct(s.change_24h_pct)}"
            for s in ranked
            if s.signal is not None
        )
        lines.append(f"strongest {direction.value.lower()}s: {rows}")
    return ContextPart("market", priority, "\n".join(lines) + "\n", False)


def _engine_breadth_lines(breadth: object) -> list[str]:
    """Extra breadth lines from the engine's own market-state summary, when it has one."""
    if breadth is None:
        return []

    def get(name: str) -> object:
        return getattr(breadth, name, None)

    def pct(value: object, scale: float = 1.0, digits: int = 2) -> str:
        return f"{value * scale:+.{digits}f}%" if isinstance(value, int | float) else "n/a"

    lines = [
        f"median 24h change {pct(get('median_change_pct'))}; at 24h high / low: "
        f"{get('new_highs')} / {get('new_lows')}",
        f"funding median {pct(get('median_funding'), 100, 4)}, highest "
        f"{pct(get('max_funding'), 100, 4)} {get('max_funding_symbol') or ''}, lowest "
        f"{pct(get('min_funding'), 100, 4)} {get('min_funding_symbol') or ''}".rstrip(),
    ]
    regime = get("volatility_regime")
    if regime:
        lines.append(f"volatility regime: {regime}")
    trend = get("btc_trend")
    if trend:
        score = get("btc_score")
        shown = f" (score {score:.1f})" if isinstance(score, float) else ""
        lines.append(f"BTC trend: {trend}{shown}")
    oi_symbols = get("oi_symbols")
    if isinstance(oi_symbols, dict) and oi_symbols:
        window = max(oi_symbols, key=interval_ms)
        rising, falling = get("oi_rising"), get("oi_falling")
        median = get("median_oi_change")
        lines.append(
            f"open interest {window}: {rising.get(window, 0) if isinstance(rising, dict) else 0}"
            f" rising / {falling.get(window, 0) if isinstance(falling, dict) else 0} falling "
            f"of {oi_symbols[window]}, median "
            + pct(median.get(window) if isinstance(median, dict) else None, 100)
        )
    return lines


def _candles_part(snapshot: EngineSnapshot, candles: CandleSeries, config: AiConfig) -> ContextPart:
    closed = len(candles.close) - (1 if candles.forming_included else 0)
    if closed <= 0:
        return ContextPart("candles", 6, "## candles\nno closed candles\n", False)
    step = interval_ms(candles.timeframe)
    last_close_time = candles.open_time[closed - 1] + step
    stale = snapshot.time - last_close_time > config.stale_bars * step
    tag = f"age {fmt_age(snapshot.time - last_close_time)}" + (f" {STALE}" if stale else "")
    start = max(0, closed - RECENT_CLOSES)
    closes = " ".join(fmt_num(c) for c in candles.close[start:closed])
    highs, lows = candles.high[:closed], candles.low[:closed]
    lines = [
        f"## candles {candles.timeframe} (last closed {fmt_time(last_close_time)}, {tag})",
        f"last {closed - start} closes, oldest first: {closes}",
        f"range of the last {closed} bars: low {fmt_num(min(lows))}, high {fmt_num(max(highs))}",
    ]
    return ContextPart("candles", 6, "\n".join(lines) + "\n", stale)


def _quote(value: float | None) -> str:
    """Quote-currency amount, compact (``1.23M``)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def _micro_part(state: SymbolState, view: MicroView | None) -> ContextPart | None:
    """Derivatives, order book, flow and microstructure score of one symbol."""
    derivs = view.derivatives if view is not None else None
    lines = ["## microstructure"]
    premium = derivs.premium_bps if derivs is not None else state.premium_bps
    if premium is not None:
        lines.append(f"premium (mark vs index): {premium:+.2f} bps")
    oi = derivs.open_interest if derivs is not None else state.open_interest
    changes = derivs.oi_change if derivs is not None else state.oi_change
    if oi is not None or changes:
        shown = ", ".join(f"{w} {c * 100:+.2f}%" for w, c in changes.items()) or "n/a"
        lines.append(f"open interest: {fmt_num(oi)} (change {shown})")
    if derivs is not None and derivs.oi_divergence:
        lines.append(f"open interest divergence: {derivs.oi_divergence.replace('_', ' ')}")
    if derivs is not None and derivs.liquidation_notional:
        liq = ", ".join(
            f"{k} {_quote(v)}" for k, v in derivs.liquidation_notional.items() if v
        )
        lines.append(
            "liquidations (sampled: at most one per symbol per second): " + (liq or "none")
        )
    book = view.book if view is not None else state.book
    if book is not None and book.state != "none":
        lines.append(
            f"order book: {book.state} (resyncs {book.resyncs}, gaps {book.gaps})"
            + (f", last resync: {book.last_reason}" if book.state != "synced" else "")
        )
    features = view.features if view is not None else None
    spread = features.spread_bps if features is not None else state.spread_bps
    if spread is not None:
        lines.append(f"spread: {spread:.2f} bps")
    imbalance = features.imbalance if features is not None else state.imbalance
    if imbalance is not None:
        lines.append(f"book imbalance: {imbalance:+.2f} (-1 all asks, +1 all bids)")
    if features is not None:
        bands = ", ".join(
            f"{band} bid {_quote(features.bid_depth[band])} / ask "
            f"{_quote(features.ask_depth.get(band))}"
            for band in features.bid_depth
        )
        lines.append(f"depth (USDT): {bands}")
        for wall in features.walls[:4]:
            lines.append(
                f"wall: {wall.side} {fmt_num(wall.price)} size {fmt_num(wall.size, 4)} "
                f"({_quote(wall.notional)} USDT, {wall.multiple:.1f}x median, "
                f"{wall.distance_bps:.0f} bps away)"
            )
    flow = view.flow if view is not None else None
    if flow is not None:
        cvd = ", ".join(f"{w} {_quote(v)}" for w, v in flow.cvd.items())
        lines.append(f"taker flow: CVD {cvd} USDT; {flow.trade_rate:.1f} trades/s")
        for sweep in flow.sweeps[-3:]:
            lines.append(
                f"sweep: {sweep.side} {_quote(sweep.notional)} USDT through {sweep.levels} "
                f"levels at {fmt_time(sweep.time)}"
            )
    score = view.score if view is not None else None
    if score is not None:
        lean = "long" if score.direction > 0 else "short" if score.direction < 0 else "neutral"
        factors = ", ".join(f"{f.name} {f.contribution:+.1f}" for f in score.factors)
        lines.append(f"micro score: {score.score:.1f} ({lean} lean); factors: {factors}")
        lines.append(
            "micro entry: "
            + ("conditions met" if score.entry_ok else "unmet " + ", ".join(score.unmet))
        )
    elif state.micro_score is not None:
        lines.append(f"micro score: {state.micro_score:.1f}")
    signal = view.signal if view is not None else state.micro_signal
    if signal is not None and signal.plan is not None:
        plan = signal.plan
        lines.append(
            f"micro signal: {signal.signal_type.value} at {fmt_time(signal.as_of)}, entry "
            f"{fmt_num(plan.entry)}, stop {fmt_num(plan.stop_loss)}, TP1 "
            f"{fmt_num(plan.take_profit_1)}, TP2 {fmt_num(plan.take_profit_2)}"
        )
    if len(lines) == 1:
        return None
    return ContextPart("microstructure", 2, "\n".join(lines) + "\n", False)


def _stats_line(label: str, stats: TrackStats) -> str:
    return (
        f"{label}: {stats.count} resolved, hit rate {stats.hit_rate * 100:.0f}% "
        f"(95% interval {stats.hit_low * 100:.0f}-{stats.hit_high * 100:.0f}%), average "
        f"{stats.avg_r:+.2f}R, expectancy {stats.expectancy:+.2f}R"
    )


def _track_part(state: SymbolState, track: TrackRecord | None) -> ContextPart | None:
    """Measured outcomes of earlier signals like this one (``None`` with no record)."""
    if track is None:
        return None
    lines = [f"## track record ({track.source}; outcome = TP1 before the stop)"]
    signal = state.signal
    if signal is not None:
        kind = signal.signal_type.value
        for label, stats in (
            (f"{kind} signals, all symbols", track.by_type.get(kind)),
            (f"{kind} signals on {state.symbol}", track.by_symbol_type.get(
                f"{state.symbol}/{kind}"
            )),
        ):
            lines.append(_stats_line(label, stats) if stats else f"{label}: none resolved yet")
    mine = track.by_symbol.get(state.symbol)
    if mine is not None:
        lines.append(_stats_line(f"all signals on {state.symbol}", mine))
    for side in ("VERDICT_LONG", "VERDICT_SHORT"):
        verdicts = track.by_type.get(side)
        if verdicts is not None:
            lines.append(_stats_line(f"analyst {side.split('_')[1].lower()} verdicts", verdicts))
    if track.overall is not None:
        lines.append(_stats_line("everything", track.overall))
    if len(lines) == 1:
        lines.append("no resolved signals yet")
    return ContextPart("track record", 4, "\n".join(lines) + "\n", False)
