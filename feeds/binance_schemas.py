"""Binance USDⓈ-M WebSocket wire schemas (msgspec) and their conversion to normalised events.

Each payload ``Struct`` mirrors one Binance message; the one-letter field comments are the
Binance docs' descriptions. The event type ``e`` is the struct tag, so a payload of the wrong
type fails validation instead of being misread. Unknown fields are ignored (Binance adds
fields: ``nq`` on aggTrade since 2025-12-31, ``st``/``ps`` since the 2026-06-30 CM–UM
integration). Prices and sizes arrive as decimal strings and become floats in ``to_event``.

Decoders are built once, at import. Every ``decode_*`` helper raises
:class:`BinanceDecodeError` (a ``ValueError``) naming what failed.
"""

from __future__ import annotations

import msgspec

from feeds.events import (
    BookTicker,
    DepthDiff,
    DepthSnapshot,
    Kline,
    Liquidation,
    MarkPrice,
    PriceLevel,
    Ticker,
    Trade,
)

COIN_M = 2
"""``st`` value of COIN-M symbols in merged all-market streams (1 = USDⓈ-M)."""


class BinanceDecodeError(ValueError):
    """A Binance frame or payload could not be decoded; the message names the stream."""


_Level = tuple[str, str]  # [price, qty] as sent by Binance

# Hot streams (depth, bookTicker, trades) declare prices and sizes as float and are decoded
# with ``strict=False``, so msgspec parses Binance's decimal strings itself: about 1.8x
# faster on depth frames than decoding str and calling float() per value (bench/decode.py).


def _levels(raw: list[_Level]) -> tuple[PriceLevel, ...]:
    return tuple([(float(price), float(qty)) for price, qty in raw])


def _rate(text: str) -> float:
    # Delivery contracts send "" for the funding rate and index-only fields.
    return float(text) if text else 0.0


# --------------------------------------------------------------------------- envelope


class BinanceWsError(msgspec.Struct, frozen=True, kw_only=True):
    """Error body of a rejected control request."""

    code: int = 0
    msg: str = ""


class BinanceFrame(msgspec.Struct, frozen=True, kw_only=True):
    """Any text frame on a combined-stream (``/stream``) connection.

    Data frames: ``{"stream":"btcusdt@aggTrade","data":{...}}``; ``data`` stays raw for the
    second decoding step. Control responses: ``{"result":null,"id":1}``,
    ``{"result":["btcusdt@aggTrade"],"id":3}`` (LIST_SUBSCRIPTIONS) or an error
    ``{"error":{"code":2,"msg":"Invalid request"},"id":1}`` (also accepted flat:
    ``{"code":2,"msg":"...","id":1}``).
    """

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw()
    id: int | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: BinanceWsError | None = None
    code: int | None = None
    msg: str | None = None

    @property
    def error_text(self) -> str | None:
        """``"code N: msg"`` when this is an error response, else ``None``."""
        if self.error is not None:
            return f"code {self.error.code}: {self.error.msg}"
        if self.code is not None:
            return f"code {self.code}: {self.msg or ''}"
        return None


# --------------------------------------------------------------------------- depth


class BinanceDepthUpdate(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="depthUpdate"
):
    """``depthUpdate``: diff depth (``@depth``) or partial top-N book (``@depth<N>``).

    Sample: ``{"e":"depthUpdate","E":1626992741037,"T":1626992741024,"s":"SUSHIUSDT",
    "U":600859599090,"u":600859600917,"pu":600859598061,"b":[["7.5040","813"]],
    "a":[["7.6150","1563"]]}``
    """

    E: int  # Event time
    T: int = 0  # Transaction time
    s: str  # Symbol
    U: int  # First update ID in event
    u: int  # Final update ID in event
    pu: int  # Final update Id in last stream (ie `u` in last stream)
    b: tuple[PriceLevel, ...]  # Bids to be updated [price level, quantity]
    a: tuple[PriceLevel, ...]  # Asks to be updated [price level, quantity]

    def to_event(self, recv_time: int) -> DepthDiff:
        """Diff-depth event (sizes absolute, 0 removes the level)."""
        return DepthDiff(
            symbol=self.s,
            first_update_id=self.U,
            final_update_id=self.u,
            prev_final_update_id=self.pu,
            bids=self.b,
            asks=self.a,
            exchange_time=self.E,
            recv_time=recv_time,
        )

    def to_snapshot(self, recv_time: int) -> DepthSnapshot:
        """Top-N book (partial depth push): replaces the top of the book, keyed by ``u``."""
        return DepthSnapshot(
            symbol=self.s,
            last_update_id=self.u,
            bids=self.b,
            asks=self.a,
            exchange_time=self.E,
            recv_time=recv_time,
        )


class BinanceDepthSnapshotRest(msgspec.Struct, frozen=True, kw_only=True):
    """REST ``GET /fapi/v1/depth`` body (no symbol inside: the caller knows it).

    Sample: ``{"lastUpdateId":600859605926,"E":1626992741264,"T":1626992741261,
    "bids":[["7.6110","6"]],"asks":[["7.6120","297"]]}``
    """

    lastUpdateId: int  # Last update id of the book
    E: int = 0  # Message output time
    T: int = 0  # Transaction time
    bids: list[_Level]  # [price, quantity], best first
    asks: list[_Level]  # [price, quantity], best first

    def to_event(self, symbol: str, recv_time: int) -> DepthSnapshot:
        """Order book snapshot for ``symbol`` (upper-cased)."""
        return DepthSnapshot(
            symbol=symbol.upper(),
            last_update_id=self.lastUpdateId,
            bids=_levels(self.bids),
            asks=_levels(self.asks),
            exchange_time=self.E,
            recv_time=recv_time,
        )


# --------------------------------------------------------------------------- tickers/trades


class BinanceBookTicker(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="bookTicker"):
    """``bookTicker`` (``@bookTicker`` and ``!bookTicker``).

    Sample: ``{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2",
    "a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}``
    """

    u: int  # Order book updateId
    E: int  # Event time
    T: int = 0  # Transaction time
    s: str  # Symbol
    b: float  # Best bid price
    B: float  # Best bid qty
    a: float  # Best ask price
    A: float  # Best ask qty
    st: int | None = None  # Symbol type in merged all-market streams: 1 = UM, 2 = CM

    def to_event(self, recv_time: int) -> BookTicker:
        """Best bid/ask event."""
        return BookTicker(
            symbol=self.s,
            update_id=self.u,
            bid_price=self.b,
            bid_qty=self.B,
            ask_price=self.a,
            ask_qty=self.A,
            exchange_time=self.E,
            recv_time=recv_time,
        )


class BinanceAggTrade(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="aggTrade"):
    """``aggTrade``: trades aggregated per 100 ms at one price and taker side.

    Sample: ``{"e":"aggTrade","E":1626992741474,"a":39543040,"s":"CTKUSDT","p":"1.01100",
    "q":"7","f":70386391,"l":70386391,"T":1626992741319,"m":false}``
    """

    E: int  # Event time
    a: int  # Aggregate trade ID
    s: str  # Symbol
    p: float  # Price
    q: float  # Quantity (incl. RPI orders)
    nq: float | None = None  # Quantity without RPI orders (since 2025-12-31)
    f: int = 0  # First trade ID
    l: int = 0  # Last trade ID  # noqa: E741
    T: int  # Trade time
    m: bool  # Is the buyer the market maker?

    def to_event(self, recv_time: int) -> Trade:
        """Trade event keyed by the aggregate trade id ``a``."""
        return Trade(
            symbol=self.s,
            trade_id=self.a,
            price=self.p,
            quantity=self.q,
            buyer_is_maker=self.m,
            trade_time=self.T,
            exchange_time=self.E,
            recv_time=recv_time,
        )


class BinanceTrade(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="trade"):
    """``trade``: one raw trade.

    Sample: ``{"e":"trade","E":1680652700455,"T":1680652700452,"s":"BTCUSDT",
    "t":3535186032,"p":"28145.10","q":"0.002","X":"MARKET","m":true}``
    """

    E: int  # Event time
    T: int  # Trade time
    s: str  # Symbol
    t: int  # Trade ID
    p: float  # Price
    q: float  # Quantity
    X: str = "MARKET"  # Execution type: MARKET / LIQUIDATION / INSURANCE_FUND
    m: bool  # Is the buyer the market maker?

    def to_event(self, recv_time: int) -> Trade:
        """Trade event keyed by the trade id ``t``."""
        return Trade(
            symbol=self.s,
            trade_id=self.t,
            price=self.p,
            quantity=self.q,
            buyer_is_maker=self.m,
            trade_time=self.T,
            exchange_time=self.E,
            recv_time=recv_time,
        )


# --------------------------------------------------------------------------- klines


class BinanceKlineData(msgspec.Struct, frozen=True, kw_only=True):
    """The ``k`` object of a ``kline`` event."""

    t: int  # Kline start time
    T: int  # Kline close time
    s: str  # Symbol
    i: str  # Interval
    f: int = 0  # First trade ID
    L: int = 0  # Last trade ID
    o: str  # Open price
    c: str  # Close price
    h: str  # High price
    l: str  # Low price  # noqa: E741
    v: str  # Base asset volume
    n: int = 0  # Number of trades
    x: bool  # Is this kline closed?
    q: str = "0"  # Quote asset volume
    V: str = "0"  # Taker buy base asset volume
    Q: str = "0"  # Taker buy quote asset volume


class BinanceKline(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="kline"):
    """``kline`` (``@kline_<interval>``).

    Sample: ``{"e":"kline","E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,
    "T":1626992759999,"s":"CTKUSDT","i":"1m","f":23961275,"L":23961322,"o":"1.01000",
    "c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","n":48,"x":false,
    "q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}``
    """

    E: int  # Event time
    s: str  # Symbol
    k: BinanceKlineData  # The kline

    def to_event(self, recv_time: int) -> Kline:
        """Kline event; ``closed`` is ``k.x``."""
        k = self.k
        return Kline(
            symbol=self.s,
            interval=k.i,
            open_time=k.t,
            close_time=k.T,
            open=float(k.o),
            high=float(k.h),
            low=float(k.l),
            close=float(k.c),
            volume=float(k.v),
            quote_volume=float(k.q),
            trades=k.n,
            closed=k.x,
            exchange_time=self.E,
            recv_time=recv_time,
        )


# --------------------------------------------------------------------------- derivatives


class BinanceMarkPrice(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="markPriceUpdate"
):
    """``markPriceUpdate`` (``@markPrice[@1s]``; items of ``!markPrice@arr[@1s]``).

    Sample: ``{"e":"markPriceUpdate","E":1680652701000,"s":"BTCUSDT","p":"28147.27373413",
    "P":"28142.15563565","i":"28159.75642857","r":"0.00002754","T":1680652800000}``
    """

    E: int  # Event time
    s: str  # Symbol
    p: str  # Mark price
    i: str = ""  # Index price
    P: str = ""  # Estimated Settle Price, only useful in the last hour before the settlement
    r: str = ""  # Funding rate ("" for delivery contracts)
    T: int = 0  # Next funding time
    st: int | None = None  # Symbol type in merged all-market streams: 1 = UM, 2 = CM

    def to_event(self, recv_time: int) -> MarkPrice:
        """Mark price event; funding rate is a fraction per funding interval."""
        return MarkPrice(
            symbol=self.s,
            mark_price=float(self.p),
            index_price=_rate(self.i),
            funding_rate=_rate(self.r),
            next_funding_time=self.T,
            exchange_time=self.E,
            recv_time=recv_time,
        )


class BinanceForceOrderData(msgspec.Struct, frozen=True, kw_only=True):
    """The ``o`` object of a ``forceOrder`` event."""

    s: str  # Symbol
    S: str  # Side
    o: str = ""  # Order Type
    f: str = ""  # Time in Force
    q: str  # Original Quantity
    p: str  # Price
    ap: str  # Average Price
    X: str = ""  # Order Status
    l: str = "0"  # Order Last Filled Quantity  # noqa: E741
    z: str = "0"  # Order Filled Accumulated Quantity
    T: int  # Order Trade Time


class BinanceForceOrder(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="forceOrder"):
    """``forceOrder`` (``@forceOrder``, ``!forceOrder@arr``): latest liquidation per symbol
    within 1000 ms, a sample rather than a full tape.

    Sample (Binance docs, Liquidation Order Streams): ``{"e":"forceOrder","E":1568014460893,
    "o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910",
    "ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}``
    """

    E: int  # Event Time
    o: BinanceForceOrderData  # The liquidation order

    def to_event(self, recv_time: int) -> Liquidation:
        """Liquidation event (``SELL`` liquidates a long)."""
        order = self.o
        return Liquidation(
            symbol=order.s,
            side=order.S,
            price=float(order.p),
            quantity=float(order.q),
            avg_price=float(order.ap),
            trade_time=order.T,
            exchange_time=self.E,
            recv_time=recv_time,
        )


class BinanceTicker24h(msgspec.Struct, frozen=True, kw_only=True, tag_field="e", tag="24hrTicker"):
    """``24hrTicker`` (``@ticker``; items of ``!ticker@arr``).

    Sample (Binance docs, All Market Tickers Streams): ``{"e":"24hrTicker","E":123456789,
    "s":"BTCUSDT","p":"0.0015","P":"250.00","w":"0.0018","c":"0.0025","Q":"10",
    "o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,
    "F":0,"L":18150,"n":18151}``; since 2026-06-30 also ``"ps"`` and ``"st"``.
    """

    E: int  # Event time
    s: str  # Symbol
    p: str = "0"  # Price change
    P: str  # Price change percent
    w: str = "0"  # Weighted average price
    c: str  # Last price
    Q: str = "0"  # Last quantity
    o: str  # Open price
    h: str  # High price
    l: str  # Low price  # noqa: E741
    v: str  # Total traded base asset volume
    q: str  # Total traded quote asset volume
    O: int = 0  # Statistics open time  # noqa: E741
    C: int = 0  # Statistics close time
    F: int = 0  # First trade ID
    L: int = 0  # Last trade Id
    n: int = 0  # Total number of trades
    ps: str | None = None  # Pair (after the CM–UM integration)
    st: int | None = None  # Symbol type: 1 = UM, 2 = CM (absent on older data)

    def to_event(self, recv_time: int) -> Ticker:
        """24 h ticker event; ``price_change_pct`` is in percent, as Binance sends it."""
        return Ticker(
            symbol=self.s,
            last_price=float(self.c),
            open_price=float(self.o),
            high_price=float(self.h),
            low_price=float(self.l),
            price_change_pct=float(self.P),
            volume=float(self.v),
            quote_volume=float(self.q),
            exchange_time=self.E,
            recv_time=recv_time,
        )


# --------------------------------------------------------------------------- decoders

FRAME_DECODER = msgspec.json.Decoder(BinanceFrame)
DEPTH_UPDATE_DECODER = msgspec.json.Decoder(BinanceDepthUpdate, strict=False)
DEPTH_SNAPSHOT_DECODER = msgspec.json.Decoder(BinanceDepthSnapshotRest)
BOOK_TICKER_DECODER = msgspec.json.Decoder(BinanceBookTicker, strict=False)
AGG_TRADE_DECODER = msgspec.json.Decoder(BinanceAggTrade, strict=False)
TRADE_DECODER = msgspec.json.Decoder(BinanceTrade, strict=False)
KLINE_DECODER = msgspec.json.Decoder(BinanceKline)
MARK_PRICE_DECODER = msgspec.json.Decoder(BinanceMarkPrice)
MARK_PRICE_ARRAY_DECODER = msgspec.json.Decoder(list[BinanceMarkPrice])
FORCE_ORDER_DECODER = msgspec.json.Decoder(BinanceForceOrder)
# The docs show ``!forceOrder@arr`` pushing single objects despite its name; accept both.
FORCE_ORDER_ANY_DECODER = msgspec.json.Decoder(BinanceForceOrder | list[BinanceForceOrder])
TICKER_DECODER = msgspec.json.Decoder(BinanceTicker24h)
TICKER_ARRAY_DECODER = msgspec.json.Decoder(list[BinanceTicker24h])
LIST_RESULT_DECODER = msgspec.json.Decoder(list[str] | None)


def decode_frame(raw: bytes | str) -> BinanceFrame:
    """First decoding step: the combined-stream envelope (or a control response).

    Raises:
        BinanceDecodeError: on malformed JSON or a non-object frame.
    """
    try:
        return FRAME_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise BinanceDecodeError(f"malformed frame: {exc}") from None


def decode_depth_snapshot(symbol: str, raw: bytes | str, recv_time: int = 0) -> DepthSnapshot:
    """Decode a REST ``GET /fapi/v1/depth`` body into a :class:`DepthSnapshot`.

    Args:
        symbol: The symbol the snapshot was requested for (the body does not name it).
        raw: Response body, JSON.
        recv_time: Local receive time, ms UTC.

    Raises:
        BinanceDecodeError: naming the symbol, on malformed JSON or missing fields.
    """
    try:
        return DEPTH_SNAPSHOT_DECODER.decode(raw).to_event(symbol, recv_time)
    except (msgspec.DecodeError, ValueError) as exc:
        raise BinanceDecodeError(f"depth snapshot for {symbol}: {exc}") from None
