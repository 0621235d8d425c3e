"""Stream-name parsing, route classification (FEEDS.md §1.2) and builders."""

from __future__ import annotations

import pytest

from feeds.routing import (
    BOOK_TICKER_ALL,
    FORCE_ORDER_ALL,
    MARK_PRICE_ALL,
    MARK_PRICE_ALL_3S,
    TICKER_ALL,
    agg_trade_stream,
    book_ticker_stream,
    depth_stream,
    force_order_stream,
    kline_stream,
    mark_price_stream,
    parse_stream,
    route_of,
    stale_threshold_s,
    ticker_stream,
    trade_stream,
)

# FEEDS.md §1.2 table, every row, plus the depth@0ms stream seen in the recorded captures.
PUBLIC = [
    "btcusdt@depth",
    "btcusdt@depth@100ms",
    "btcusdt@depth@500ms",
    "btcusdt@depth@0ms",
    "btcusdt@depth5",
    "btcusdt@depth10@500ms",
    "btcusdt@depth20@100ms",
    "btcusdt@rpiDepth",
    "btcusdt@rpiDepth@500ms",
    "btcusdt@bookTicker",
    "!bookTicker",
    "btcusdt@trade",
]
MARKET = [
    "btcusdt@aggTrade",
    "1000pepeusdt@aggTrade",
    "btcusdt@kline_1m",
    "btcusdt@kline_4h",
    "btcusdt@kline_1M",
    "btcusdt_perpetual@continuousKline_1m",
    "btcusdt@markPrice",
    "btcusdt@markPrice@1s",
    "!markPrice@arr",
    "!markPrice@arr@1s",
    "btcusdt@forceOrder",
    "!forceOrder@arr",
    "btcusdt@ticker",
    "!ticker@arr",
    "btcusdt@miniTicker",
    "!miniTicker@arr",
    "!contractInfo",
    "btcusdt@compositeIndex",
    "btcusdt@assetIndex",
    "!assetIndex@arr",
]


@pytest.mark.parametrize("stream", PUBLIC)
def test_public_streams(stream: str) -> None:
    assert route_of(stream) == "public"


@pytest.mark.parametrize("stream", MARKET)
def test_market_streams(stream: str) -> None:
    assert route_of(stream) == "market"


def test_recorded_stream_names_route_as_binance_serves_them(cryptofeed_frames) -> None:
    routes = {frame.stream: route_of(frame.stream) for frame in cryptofeed_frames}
    assert len(routes) == 16
    for stream, route in routes.items():
        expected = "public" if "@depth" in stream or stream.endswith("@bookTicker") else "market"
        assert route == expected, stream


@pytest.mark.parametrize(
    ("stream", "fragment"),
    [
        ("BTCUSDT@aggTrade", "lower case"),
        ("Btcusdt@kline_1m", "lower case"),
        ("btcusdt@aggtrade", "kind 'aggtrade'"),
        ("btcusdt@AGGTRADE", "kind 'AGGTRADE'"),
        ("btcusdt@unknown", "kind 'unknown'"),
        ("btcusdt", "expected '<symbol>@<kind>'"),
        ("@aggTrade", "expected '<symbol>@<kind>'"),
        ("btcusdt@", "expected '<symbol>@<kind>'"),
        ("btc usdt@trade", "bad character"),
        ("btcusdt@kline_7m", "kline interval"),
        ("btcusdt@kline_", "kline interval"),
        ("btcusdt@kline_1m@1s", "no '@' modifier"),
        ("btcusdt@depth@300ms", "depth speed"),
        ("btcusdt@depth@100ms@100ms", "depth speed"),
        ("btcusdt@depth15", "kind 'depth15'"),
        ("btcusdt@markPrice@3s", "markPrice takes only"),
        ("btcusdt@aggTrade@100ms", "no '@' modifier"),
        ("btcusdt@continuousKline_1m", "<pair>_<contracttype>"),
        ("!ticker", "all-market streams are"),
        ("!BOOKTICKER", "all-market streams are"),
    ],
)
def test_bad_names_raise_value_error_naming_the_stream(stream: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        route_of(stream)
    assert repr(stream) in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("stream", ["", None, 5])
def test_empty_or_non_string_names_raise(stream: object) -> None:
    with pytest.raises(ValueError, match="empty or non-string"):
        route_of(stream)  # type: ignore[arg-type]


def test_parse_stream_fields() -> None:
    info = parse_stream("ethusdt@kline_15m")
    assert (info.route, info.kind, info.symbol, info.interval) == (
        "market",
        "kline",
        "ethusdt",
        "15m",
    )
    assert info.key == "kline" and not info.all_market
    depth20 = parse_stream("ethusdt@depth20@100ms")
    assert (depth20.kind, depth20.route) == ("partialDepth", "public")
    assert parse_stream("btcusdt@depth@100ms").kind == "depth"
    tickers = parse_stream("!ticker@arr")
    assert tickers.all_market and tickers.key == "!ticker" and tickers.symbol == ""


def test_builders_lowercase_and_route() -> None:
    assert kline_stream("BTCUSDT", "1h") == "btcusdt@kline_1h"
    assert agg_trade_stream("ETHUSDT") == "ethusdt@aggTrade"
    assert trade_stream("ethusdt") == "ethusdt@trade"
    assert depth_stream("ETHUSDT", 100) == "ethusdt@depth@100ms"
    assert depth_stream("ETHUSDT", 250) == "ethusdt@depth"
    assert depth_stream("ETHUSDT", 500, levels=20) == "ethusdt@depth20@500ms"
    assert depth_stream("ETHUSDT", 0) == "ethusdt@depth@0ms"
    assert book_ticker_stream("SOLUSDT") == "solusdt@bookTicker"
    assert mark_price_stream("SOLUSDT") == "solusdt@markPrice@1s"
    assert mark_price_stream("SOLUSDT", every_1s=False) == "solusdt@markPrice"
    assert force_order_stream("SOLUSDT") == "solusdt@forceOrder"
    assert ticker_stream("SOLUSDT") == "solusdt@ticker"
    routes = {
        kline_stream("btcusdt", "1m"): "market",
        agg_trade_stream("btcusdt"): "market",
        trade_stream("btcusdt"): "public",
        depth_stream("btcusdt", 100): "public",
        depth_stream("btcusdt", 100, levels=5): "public",
        book_ticker_stream("btcusdt"): "public",
        mark_price_stream("btcusdt"): "market",
        force_order_stream("btcusdt"): "market",
        ticker_stream("btcusdt"): "market",
        BOOK_TICKER_ALL: "public",
        MARK_PRICE_ALL_3S: "market",
        MARK_PRICE_ALL: "market",
        TICKER_ALL: "market",
        FORCE_ORDER_ALL: "market",
    }
    for stream, route in routes.items():
        assert route_of(stream) == route, stream


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: kline_stream("btcusdt", "7m"), "unknown kline interval '7m'"),
        (lambda: depth_stream("btcusdt", 300), "depth speed 300"),
        (lambda: depth_stream("btcusdt", 100, levels=15), "levels 15"),
        (lambda: agg_trade_stream(""), "bad symbol"),
        (lambda: book_ticker_stream("btc@usdt"), "bad symbol"),
    ],
)
def test_builders_reject_bad_arguments(call, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        call()


def test_stale_thresholds() -> None:
    assert stale_threshold_s("btcusdt@depth@100ms", 10.0) == 10.0
    assert stale_threshold_s("btcusdt@aggTrade", 10.0) == 10.0
    assert stale_threshold_s("!markPrice@arr@1s", 7.0) == 7.0
    # Klines only push while trading: a whole interval plus the normal threshold.
    assert stale_threshold_s("btcusdt@kline_1m", 10.0) == 70.0
    assert stale_threshold_s("btcusdt@kline_4h", 10.0) == 4 * 3600 + 10.0
    # Liquidations are sparse by nature: never stale.
    assert stale_threshold_s("btcusdt@forceOrder", 10.0) is None
    assert stale_threshold_s("!forceOrder@arr", 10.0) is None
    with pytest.raises(ValueError, match="BTCUSDT@trade"):
        stale_threshold_s("BTCUSDT@trade", 10.0)
