"""The microstructure part of the AI context, on a real capture replayed to its end."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ai.analyst import rule_summary, rule_verdict
from ai.config import AiConfig
from ai.context import build_context, fmt_num
from engine.config import EngineConfig
from engine.models import Direction, EngineSnapshot, MicroView
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from tests.conftest import SHARED_DATA

CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"


@pytest.fixture(scope="module")
def capture() -> tuple[MarketRunner, EngineSnapshot]:
    runner = MarketRunner(
        endpoints=EndpointConfig(), universe=UniverseConfig(mode="all"), feed=FeedConfig(),
        engine_config=EngineConfig(), data_dir=None,
        replay=ReplayOptions(path=CAPTURE, speed=None),
    )
    snapshot = asyncio.run(runner.run_to_completion(timeout_s=60))
    return runner, snapshot


def test_context_carries_book_flow_and_micro_score(
    capture: tuple[MarketRunner, EngineSnapshot],
) -> None:
    runner, snapshot = capture
    view = runner.micro("SUSHIUSDT")
    assert isinstance(view, MicroView) and view.features is not None and view.score is not None
    text = build_context(snapshot, "SUSHIUSDT", AiConfig(), micro=view).text
    assert "## microstructure" in text
    assert "order book: synced (resyncs 0, gaps 0)" in text
    assert f"spread: {view.features.spread_bps:.2f} bps" in text
    assert f"book imbalance: {view.features.imbalance:+.2f}" in text
    assert f"micro score: {view.score.score:.1f}" in text
    for wall in view.features.walls[:4]:
        assert f"wall: {wall.side} {fmt_num(wall.price)}" in text
    assert view.flow is not None and f"{view.flow.trade_rate:.1f} trades/s" in text
    # Without the view, the row's numbers still reach the model.
    row = snapshot.symbols["SUSHIUSDT"]
    assert row.spread_bps is not None and row.micro_score is not None
    plain = build_context(snapshot, "SUSHIUSDT", AiConfig()).text
    assert f"spread: {row.spread_bps:.2f} bps" in plain
    assert f"micro score: {row.micro_score:.1f}" in plain
    # Another symbol's view is never mixed in: AKROUSDT's part comes from its row only.
    other = build_context(snapshot, "AKROUSDT", AiConfig(), micro=view).text
    assert "depth (USDT)" in text and "depth (USDT)" not in other
    akro = snapshot.symbols["AKROUSDT"]
    assert akro.spread_bps is not None and f"spread: {akro.spread_bps:.2f} bps" in other


def test_rule_summary_reports_the_book(capture: tuple[MarketRunner, EngineSnapshot]) -> None:
    _, snapshot = capture
    row = snapshot.symbols["KEEPUSDT"]
    assert row.spread_bps is not None and row.imbalance is not None
    assert row.micro_score is not None
    summary = rule_summary(build_context(snapshot, "KEEPUSDT", AiConfig()))
    assert (
        f"Order book synced: spread {row.spread_bps:.2f} bps, imbalance {row.imbalance:+.2f}, "
        f"micro score {row.micro_score:.0f}" in summary
    )


def test_rule_verdict_flags_a_book_against_the_signal(
    capture: tuple[MarketRunner, EngineSnapshot],
    replayed: tuple[MarketRunner, EngineSnapshot],
) -> None:
    """A kline-replay signal joined with a captured book's readings (both real): the book
    numbers become risk flags when they oppose the signal, and none when they agree."""
    _, books = capture
    _, klines = replayed
    state = next(
        s for s in klines.symbols.values()
        if s.signal is not None and s.signal.direction is not Direction.NEUTRAL
    )
    assert state.signal is not None
    sign = 1 if state.signal.direction is Direction.LONG else -1
    book_row = books.symbols["KEEPUSDT"]
    assert book_row.imbalance is not None and book_row.spread_bps is not None
    imbalance = -sign * max(abs(book_row.imbalance), 0.31)
    against = msgspec.structs.replace(
        state, imbalance=imbalance, spread_bps=book_row.spread_bps,
        micro_score=50 - sign * 20, book=book_row.book,
    )
    symbols = {**klines.symbols, state.symbol: against}
    context = build_context(msgspec.structs.replace(klines, symbols=symbols), state.symbol,
                            AiConfig())
    flags = rule_verdict(context).risk_flags
    assert f"order book imbalance {imbalance:+.2f} against the position" in flags
    assert f"microstructure score {50 - sign * 20:.0f} leans the other way" in flags
    assert (f"wide spread {book_row.spread_bps:.1f} bps" in flags) == (book_row.spread_bps > 10)
    along = msgspec.structs.replace(against, imbalance=-imbalance, micro_score=50 + sign * 20)
    symbols = {**klines.symbols, state.symbol: along}
    context = build_context(msgspec.structs.replace(klines, symbols=symbols), state.symbol,
                            AiConfig())
    flags = rule_verdict(context).risk_flags
    assert not [f for f in flags if "imbalance" in f or "microstructure" in f]
