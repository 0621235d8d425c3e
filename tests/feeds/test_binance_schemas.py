"""Wire schemas and the payload decoder: all-market arrays, schema drift, bad payloads.

All-market arrays (``!ticker@arr``, ``!markPrice@arr``, ``!forceOrder@arr``) are not in the
recorded captures; their payloads here are the response examples of the Binance USDⓈ-M docs
(All Market Tickers / Mark Price for All market / Liquidation Order Streams) and, for the
COIN-M entry, the COIN-M docs' 24hrTicker example, with the ``ps``/``st`` fields added by the
2026-06-30 CM–UM integration (FEEDS.md §1.3).
"""

from __future__ import annotations

import json

import msgspec
import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import (
    BinanceDecodeError,
    decode_depth_snapshot,
    decode_frame,
)
from feeds.events import DepthDiff, DepthSnapshot, Liquidation, MarkPrice, Ticker, Trade

UM_TICKER = {
    "e": "24hrTicker",
    "E": 123456789,
    "s": "BTCUSDT",
    "p": "0.0015",
    "P": "250.00",
    "w": "0.0018",
    "c": "0.0025",
    "Q": "10",
    "o": "0.0010",
    "h": "0.0025",
    "l": "0.0010",
    "v": "10000",
    "q": "18",
    "O": 0,
    "C": 86400000,
    "F": 0,
    "L": 18150,
    "n": 18151,
}
CM_TICKER = {
    "e": "24hrTicker",
    "E": 1591268262453,
    "s": "BTCUSD_200626",
    "ps": "BTCUSD",
    "p": "-43.4",
    "P": "-0.452",
    "w": "0.00147974",
    "c": "9548.5",
    "Q": "2",
    "o": "9591.9",
    "h": "10000.0",
    "l": "7000.0",
    "v": "487850",
    "q": "32968676323.46222700",
    "O": 1591181820000,
    "C": 1591268262442,
    "F": 512014,
    "L": 615289,
    "n": 103272,
}
MARK_PRICE = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11185.87786614",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00030000",
    "T": 1562306400000,
}
FORCE_ORDER = {
    "e": "forceOrder",
    "E": 1568014460893,
    "o": {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9910",
        "ap": "9910",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": 1568014460893,
    },
}


def _raw(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def decoder() -> BinanceFrameDecoder:
    return BinanceFrameDecoder()


@pytest.fixture
def agg_trade_frame(cryptofeed_frames) -> dict:
    return json.loads(next(f.raw for f in cryptofeed_frames if f.stream.endswith("@aggTrade")))


def test_ticker_array_keeps_usdm_and_drops_coin_m(decoder: BinanceFrameDecoder) -> None:
    payload = [
        {**UM_TICKER, "ps": "BTCUSDT", "st": 1},
        {**CM_TICKER, "st": 2},
        UM_TICKER | {"s": "ETHUSDT"},  # older data: no ``st`` at all
    ]
    events = decoder.decode_data("!ticker@arr", _raw(payload), 77)
    assert [e.symbol for e in events] == ["BTCUSDT", "ETHUSDT"]
    assert events[0] == Ticker(
        symbol="BTCUSDT",
        last_price=0.0025,
        open_price=0.001,
        high_price=0.0025,
        low_price=0.001,
        price_change_pct=250.0,
        volume=10000.0,
        quote_volume=18.0,
        exchange_time=123456789,
        recv_time=77,
    )
    assert decoder.coin_m_dropped == 1
    single = decoder.decode_data("btcusdt@ticker", _raw(UM_TICKER), 1)
    assert isinstance(single[0], Ticker) and single[0].last_price == 0.0025


def test_mark_price_array_and_delivery_contract_blanks(decoder: BinanceFrameDecoder) -> None:
    delivery = MARK_PRICE | {"s": "BTCUSDT_240927", "r": "", "T": 0}
    events = decoder.decode_data("!markPrice@arr@1s", _raw([MARK_PRICE, delivery]), 5)
    assert events == [
        MarkPrice(
            symbol="BTCUSDT",
            mark_price=11185.87786614,
            index_price=11784.62659091,
            funding_rate=0.0003,
            next_funding_time=1562306400000,
            exchange_time=1562305380000,
            recv_time=5,
        ),
        MarkPrice(
            symbol="BTCUSDT_240927",
            mark_price=11185.87786614,
            index_price=11784.62659091,
            funding_rate=0.0,
            next_funding_time=0,
            exchange_time=1562305380000,
            recv_time=5,
        ),
    ]
    assert decoder.decode_data("!markPrice@arr", _raw([MARK_PRICE | {"st": 2}]), 5) == []


def test_force_order_single_object_and_array(decoder: BinanceFrameDecoder) -> None:
    expected = Liquidation(
        symbol="BTCUSDT",
        side="SELL",
        price=9910.0,
        quantity=0.014,
        avg_price=9910.0,
        trade_time=1568014460893,
        exchange_time=1568014460893,
        recv_time=9,
    )
    assert decoder.decode_data("btcusdt@forceOrder", _raw(FORCE_ORDER), 9) == (expected,)
    assert decoder.decode_data("!forceOrder@arr", _raw(FORCE_ORDER), 9) == (expected,)
    assert decoder.decode_data("!forceOrder@arr", _raw([FORCE_ORDER, FORCE_ORDER]), 9) == (
        expected,
        expected,
    )


def test_unknown_fields_and_key_order_are_tolerated(
    decoder: BinanceFrameDecoder, agg_trade_frame: dict
) -> None:
    data = agg_trade_frame["data"]
    stream = agg_trade_frame["stream"]
    (plain,) = decoder.decode_data(stream, _raw(data), 1)
    drifted = dict(reversed(list((data | {"nq": data["q"], "zz": {"new": [1, 2]}}).items())))
    (event,) = decoder.decode_data(stream, _raw(drifted), 1)
    assert event == plain
    assert isinstance(event, Trade) and event.trade_id == data["a"]


def test_partial_depth_push_becomes_a_top_of_book_snapshot(
    decoder: BinanceFrameDecoder, cryptofeed_frames
) -> None:
    frame = json.loads(next(f.raw for f in cryptofeed_frames if "@depth" in f.stream))
    data = frame["data"]
    (diff,) = decoder.decode_data("sushiusdt@depth@100ms", _raw(data), 3)
    (snap,) = decoder.decode_data("sushiusdt@depth20@100ms", _raw(data), 3)
    assert isinstance(diff, DepthDiff) and isinstance(snap, DepthSnapshot)
    assert snap.last_update_id == data["u"] == diff.final_update_id
    assert (snap.bids, snap.asks) == (diff.bids, diff.asks)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "p"}, "missing required field `p`"),
        (lambda d: d | {"p": "abc"}, "Expected `float`, got `str` - at `$.p`"),
        (lambda d: d | {"a": "not-an-int"}, "Expected `int`"),
        (lambda d: d | {"e": "bookTicker"}, "Invalid value 'bookTicker'"),
        (lambda d: [d], "Expected `object`, got `array`"),
    ],
)
def test_bad_payloads_raise_decode_error_naming_the_stream(
    decoder: BinanceFrameDecoder, agg_trade_frame: dict, mutate, fragment: str
) -> None:
    stream = agg_trade_frame["stream"]
    with pytest.raises(BinanceDecodeError) as info:
        decoder.decode_data(stream, _raw(mutate(agg_trade_frame["data"])), 1)
    assert repr(stream) in str(info.value)
    assert fragment in str(info.value)


def test_truncated_and_non_json_frames(decoder: BinanceFrameDecoder, cryptofeed_frames) -> None:
    raw = cryptofeed_frames[0].raw
    for bad in (raw[: len(raw) // 2], "hello", "", "[1, 2]"):
        with pytest.raises(BinanceDecodeError, match="malformed frame"):
            decoder.decode_frame(bad, 1)
    with pytest.raises(BinanceDecodeError, match="no 'stream'"):
        decoder.decode_frame('{"result":null,"id":1}', 1)


@pytest.mark.parametrize(
    "stream",
    [
        "btcusdt@miniTicker",
        "btcusdt@rpiDepth@500ms",
        "!contractInfo",
        "btcusdt_perpetual@continuousKline_1m",
    ],
)
def test_kinds_without_decoder_are_refused(decoder: BinanceFrameDecoder, stream: str) -> None:
    with pytest.raises(ValueError, match="no decoder"):
        decoder.handler_for(stream)
    with pytest.raises(BinanceDecodeError, match="no decoder"):
        decoder.decode_data(stream, b"{}", 1)


def test_unknown_stream_in_a_frame(decoder: BinanceFrameDecoder) -> None:
    with pytest.raises(BinanceDecodeError, match="sushiusdt@nonsense"):
        decoder.decode_frame('{"stream":"sushiusdt@nonsense","data":{}}', 1)


def test_control_responses_parse() -> None:
    ack = decode_frame('{"result":null,"id":7}')
    assert (ack.stream, ack.id, ack.error_text) == ("", 7, None)
    nested = decode_frame('{"error":{"code":2,"msg":"Invalid request"},"id":8}')
    assert nested.error_text == "code 2: Invalid request"
    flat = decode_frame('{"code":0,"msg":"Unknown property","id":9}')
    assert flat.error_text == "code 0: Unknown property"
    listed = decode_frame('{"result":["btcusdt@aggTrade"],"id":3}')
    assert msgspec.json.decode(listed.result) == ["btcusdt@aggTrade"]


def test_depth_snapshot_errors_name_the_symbol() -> None:
    with pytest.raises(BinanceDecodeError, match="BTCUSDT"):
        decode_depth_snapshot("BTCUSDT", b'{"lastUpdateId":1,"bids":[["1","2"]]')
    with pytest.raises(BinanceDecodeError, match=r"ETHUSDT.*asks"):
        decode_depth_snapshot("ETHUSDT", b'{"lastUpdateId":1,"bids":[]}')
