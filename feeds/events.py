"""Normalised, venue-agnostic market events.

Every event is a frozen, slotted ``msgspec.Struct``. Units everywhere:

* prices in quote currency (USDT for USDT-margined perpetuals),
* sizes in base units (contracts of 1 base unit on Binance USDⓈ-M),
* times in milliseconds since the Unix epoch, UTC,
* rates as fractions (``0.0001`` is 0.01 %).

``exchange_time`` is the venue's event time (Binance ``E``); ``recv_time`` is the local
wall-clock time the frame was received (ms UTC), used for lag and staleness.
"""

from __future__ import annotations

import enum

import msgspec


class Kline(msgspec.Struct, frozen=True, kw_only=True):
    """One candlestick (Binance ``kline``), forming or closed.

    Attributes:
        symbol: Venue symbol, upper case (``BTCUSDT``).
        interval: Interval code (``1m``, ``5m``, ``15m``, ``1h``, ``4h``, ``1d``).
        open_time: Open time of the candle, ms UTC; identifies the candle.
        close_time: Close time, ms UTC (next open time minus 1 ms).
        open: First trade price in the candle, quote currency.
        high: Highest trade price, quote currency.
        low: Lowest trade price, quote currency.
        close: Last trade price so far (final once ``closed``), quote currency.
        volume: Traded volume, base units.
        quote_volume: Traded volume, quote currency.
        trades: Number of trades.
        closed: True on the final update of the candle (Binance ``k.x``).
        exchange_time: Venue event time, ms UTC (0 for REST backfill rows).
        recv_time: Local receive time, ms UTC (0 for REST backfill rows).
    """

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float = 0.0
    trades: int = 0
    closed: bool
    exchange_time: int = 0
    recv_time: int = 0


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """A (possibly aggregated) trade (Binance ``aggTrade`` or ``trade``).

    Attributes:
        symbol: Venue symbol.
        trade_id: Aggregate trade id (``a``) or trade id (``t``); monotonic per symbol.
        price: Price, quote currency.
        quantity: Size, base units.
        buyer_is_maker: True when the taker sold (Binance ``m``).
        trade_time: Trade time, ms UTC (``T``).
        exchange_time: Event time, ms UTC (``E``).
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    trade_id: int
    price: float
    quantity: float
    buyer_is_maker: bool
    trade_time: int
    exchange_time: int
    recv_time: int = 0


class BookTicker(msgspec.Struct, frozen=True, kw_only=True):
    """Best bid/ask (Binance ``bookTicker``).

    Attributes:
        symbol: Venue symbol.
        update_id: Order book update id (``u``).
        bid_price: Best bid price, quote currency.
        bid_qty: Size at the best bid, base units.
        ask_price: Best ask price, quote currency.
        ask_qty: Size at the best ask, base units.
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    exchange_time: int
    recv_time: int = 0


PriceLevel = tuple[float, float]
"""One book level: (price in quote currency, size in base units); size 0 removes it."""


class DepthDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Diff-depth update (Binance ``depthUpdate``); sizes are absolute, 0 removes a level.

    Attributes:
        symbol: Venue symbol.
        first_update_id: ``U``, first update id in the event.
        final_update_id: ``u``, final update id in the event.
        prev_final_update_id: ``pu``, ``u`` of the previous event on this stream.
        bids: Changed bid levels.
        asks: Changed ask levels.
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    exchange_time: int
    recv_time: int = 0


class DepthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """REST order book snapshot (``GET /fapi/v1/depth``).

    Attributes:
        symbol: Venue symbol.
        last_update_id: ``lastUpdateId`` to sync diffs against.
        bids: Bid levels, best first.
        asks: Ask levels, best first.
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    last_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    exchange_time: int
    recv_time: int = 0


class MarkPrice(msgspec.Struct, frozen=True, kw_only=True):
    """Mark price and funding (Binance ``markPriceUpdate``).

    Attributes:
        symbol: Venue symbol.
        mark_price: Mark price, quote currency (``p``).
        index_price: Index price, quote currency (``i``).
        funding_rate: Current funding rate as a fraction per funding interval (``r``).
        next_funding_time: Next funding time, ms UTC (``T``).
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time: int
    exchange_time: int
    recv_time: int = 0


class Liquidation(msgspec.Struct, frozen=True, kw_only=True):
    """A liquidation order (Binance ``forceOrder``); a 1-per-second sample, not a full tape.

    Attributes:
        symbol: Venue symbol.
        side: ``SELL`` liquidates a long, ``BUY`` liquidates a short.
        price: Order price, quote currency.
        quantity: Original quantity, base units.
        avg_price: Average fill price, quote currency.
        trade_time: Order trade time, ms UTC.
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    side: str
    price: float
    quantity: float
    avg_price: float
    trade_time: int
    exchange_time: int
    recv_time: int = 0


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    """Rolling 24 h statistics (Binance ``24hrTicker`` from ``!ticker@arr``).

    Attributes:
        symbol: Venue symbol.
        last_price: Last price, quote currency.
        open_price: Price 24 h ago, quote currency.
        high_price: 24 h high, quote currency.
        low_price: 24 h low, quote currency.
        price_change_pct: 24 h change in percent (``P``; 6.2 means +6.2 %).
        volume: 24 h volume, base units.
        quote_volume: 24 h volume, quote currency.
        exchange_time: Event time, ms UTC.
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    last_price: float
    open_price: float
    high_price: float
    low_price: float
    price_change_pct: float
    volume: float
    quote_volume: float
    exchange_time: int
    recv_time: int = 0


class OpenInterest(msgspec.Struct, frozen=True, kw_only=True):
    """Open interest of one contract (REST ``GET /fapi/v1/openInterest``, polled).

    Attributes:
        symbol: Venue symbol.
        open_interest: Open contracts, base units.
        time: Exchange time of the reading, ms UTC (``time``).
        recv_time: Local receive time, ms UTC.
    """

    symbol: str
    open_interest: float
    time: int
    recv_time: int = 0


class FeedState(enum.Enum):
    """Health of one connection or stream."""

    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    GAP = "gap"
    OFFLINE = "offline"


class FeedStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A change in feed health; rare, emitted on transitions only.

    Attributes:
        state: New state.
        connection: Connection label (``market-0``, ``public-1``, ``rest``).
        stream: Stream name when the status is about one stream, else ``""``.
        reason: Human-readable cause (``"connection refused"``, ``"no data for 12 s"``).
        retry_in: Seconds until the next reconnect attempt, when one is scheduled.
        reconnects: Reconnects of this connection so far.
        time: Local time of the transition, ms UTC.
    """

    state: FeedState
    connection: str
    stream: str = ""
    reason: str = ""
    retry_in: float | None = None
    reconnects: int = 0
    time: int = 0


MarketEvent = (
    Kline
    | Trade
    | BookTicker
    | DepthDiff
    | DepthSnapshot
    | MarkPrice
    | Liquidation
    | Ticker
    | OpenInterest
)
"""Any normalised market data event."""

FeedEvent = MarketEvent | FeedStatus
"""Anything a feed adapter emits."""
