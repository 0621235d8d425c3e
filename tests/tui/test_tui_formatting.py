"""Cell formatting and table rules that need no running app."""

from __future__ import annotations

import pytest
from tui_service import STALE_SYMBOL, FinishedReplay, HistoryService

from engine.models import Direction
from tui import formatting as fmt
from tui.widgets.signal_table import (
    BASE_COLUMNS,
    TAIL_COLUMNS,
    build_columns,
    fit_columns,
    matches_filter,
    parse_filter,
)


@pytest.mark.parametrize(
    ("age_ms", "text"),
    [
        (None, "—"),
        (-20, "0.0s"),
        (412, "0.4s"),
        (9_949, "9.9s"),
        (12_000, "12s"),
        (185_000, "3m"),
        (7_300_000, "2h"),
        (3 * 86_400_000, "3d"),
    ],
)
def test_format_age(age_ms: int | None, text: str) -> None:
    assert fmt.format_age(age_ms) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.0001, "+0.0100%"), (-0.00013183, "-0.0132%"), (0.0, "+0.0000%"), (None, "—")],
)
def test_format_funding_is_percent_with_four_decimals(rate: float | None, text: str) -> None:
    assert fmt.format_funding(rate) == text


@pytest.mark.parametrize(
    ("price", "decimals"),
    [(28922.1, 1), (1833.07, 2), (0.10391, 5), (6605.0, 0), (0.0205, 4), (3e-05, 5)],
)
def test_price_decimals_recover_the_exchange_precision(price: float, decimals: int) -> None:
    assert fmt.price_decimals(price) == decimals


def test_price_decimals_are_sticky_per_symbol() -> None:
    ctx = fmt.CellContext()
    assert ctx.price_decimals("WAVESUSDT", 1.8912) == 4
    # A later price ending in zeros keeps the symbol's 4 decimals (no column jitter).
    assert ctx.price_decimals("WAVESUSDT", 1.89) == 4
    assert fmt.format_price(1.89, ctx.price_decimals("WAVESUSDT", 1.89)) == "1.8900"
    assert ctx.price_decimals("BTCUSDT", 28922.0) == 0


@pytest.mark.parametrize(
    ("value", "text"), [(6.2, "+6.20%"), (-0.001, "+0.00%"), (-16.37, "-16.37%"), (None, "—")]
)
def test_format_pct_has_a_sign_and_no_negative_zero(value: float | None, text: str) -> None:
    assert fmt.format_pct(value) == text


def test_format_clock_is_utc() -> None:
    assert fmt.format_clock(1_690_877_123.0) == "08:05:23Z"


def test_vote_glyphs_follow_thresholds(replay: FinishedReplay) -> None:
    states = replay.snapshot().symbols.values()
    seen = set()
    for state in states:
        assert state.signal is not None
        for tf_signal in state.signal.timeframes:
            glyph = fmt.vote_glyph(tf_signal)
            seen.add(glyph)
            if tf_signal.vote is None:
                assert glyph == fmt.GLYPH_WARMING
            elif tf_signal.vote > fmt.VOTE_THRESHOLD:
                assert glyph == fmt.GLYPH_LONG
            elif tf_signal.vote < -fmt.VOTE_THRESHOLD:
                assert glyph == fmt.GLYPH_SHORT
            else:
                assert glyph == fmt.GLYPH_FLAT
    # The recorded month has long, short, flat and (4h: 30 days < 210 bars) warming votes.
    assert seen == {fmt.GLYPH_LONG, fmt.GLYPH_SHORT, fmt.GLYPH_FLAT, fmt.GLYPH_WARMING}
    assert fmt.vote_glyph(None) == fmt.GLYPH_MISSING


def test_cells_say_long_short_in_text_and_dim_stale_rows(history: HistoryService) -> None:
    # The engine fed directly: one symbol held back until it is stale.
    ctx = fmt.CellContext()
    symbols = history.snapshot().symbols
    for state in symbols.values():
        assert state.signal is not None
        cell = fmt.cell_signal(state, ctx)
        # Mono terminals: the word carries the meaning, the colour only repeats it.
        assert (
            cell.plain
            == {Direction.LONG: "LONG", Direction.SHORT: "SHORT", Direction.NEUTRAL: "neutral"}[
                state.signal.direction
            ]
        )
    stale = symbols[STALE_SYMBOL]
    assert stale.stale
    stale_cell = fmt.cell_symbol(stale, ctx)
    assert any(span.style == ctx.palette.stale for span in stale_cell.spans)
    fresh = next(s for s in symbols.values() if not s.stale)
    assert not fmt.cell_symbol(fresh, ctx).spans


def test_plan_rows_give_distances_and_r_multiples(replay: FinishedReplay) -> None:
    plans = [
        s.signal.plan
        for s in replay.snapshot().symbols.values()
        if s.signal is not None and s.signal.plan is not None
    ]
    assert plans
    for plan in plans:
        rows = {label: (price, pct, r) for label, price, pct, r in fmt.plan_rows(plan)}
        assert rows["SL"][2] == "-1.00R"
        assert rows["TP1"][2] == f"{plan.risk_reward:+.2f}R"
        assert rows["SL"][1] == pytest.approx((plan.stop_loss / plan.entry - 1) * 100)


def test_parse_filter_splits_direction_tokens_from_symbol_text() -> None:
    assert parse_filter("long") == (frozenset({Direction.LONG}), ())
    assert parse_filter("btc Short eth") == (frozenset({Direction.SHORT}), ("BTC", "ETH"))
    assert parse_filter("  ") == (frozenset(), ())


def test_matches_filter_on_recorded_signals(replay: FinishedReplay) -> None:
    symbols = replay.snapshot().symbols
    btc = symbols["BTCUSDT"]
    assert matches_filter(btc, *parse_filter("btc"))
    assert not matches_filter(btc, *parse_filter("eth"))
    assert btc.signal is not None
    side = btc.signal.direction.value.lower()
    assert matches_filter(btc, *parse_filter(f"{side} btc"))
    other = "long" if side != "long" else "short"
    assert not matches_filter(btc, *parse_filter(other))


def test_fit_columns_drops_least_important_first() -> None:
    columns = build_columns(("5m", "15m", "1h", "4h"))
    wide = fit_columns(columns, 200)
    assert wide == columns
    narrow = [c.key for c in fit_columns(columns, 76)]
    assert "fund" not in narrow and "rr" not in narrow and "conf" not in narrow
    for key in ("symbol", "last", "signal", "score", "tf:5m", "tf:4h", "age"):
        assert key in narrow
    tiny = [c.key for c in fit_columns(columns, 40)]
    # Never dropped: symbol, signal, score, age.
    assert {"symbol", "signal", "score", "age"} <= set(tiny)
    assert all(c.meaning for c in BASE_COLUMNS + TAIL_COLUMNS)


@pytest.mark.parametrize(
    ("tick", "decimals"), [(0.001, 3), (0.00001, 5), (0.1, 1), (0.5, 1), (1.0, 0), (10.0, 0)]
)
def test_tick_decimals(tick: float, decimals: int) -> None:
    assert fmt.tick_decimals(tick) == decimals


def test_contract_tick_beats_the_decimals_seen_in_prices() -> None:
    # CRVUSDT trades in 0.001 ticks; a first price of 0.59 must still show as 0.590.
    ctx = fmt.CellContext()
    assert ctx.price_decimals("CRVUSDT", 0.59) == 2
    assert ctx.price_decimals("CRVUSDT", 0.59, 0.001) == 3
    assert fmt.format_price(0.59, ctx.price_decimals("CRVUSDT", 0.59, 0.001)) == "0.590"
