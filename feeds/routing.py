"""Binance USDⓈ-M stream names: parsing, route classification and builders.

Since 2026-03-06 Binance serves market streams on two routed paths (FEEDS.md §1.1–1.2):
``/public`` carries the high-frequency book data (``@depth*``, ``@rpiDepth``, ``@bookTicker``,
``!bookTicker``) and raw ``@trade`` (as CCXT's ``getFutureWsCategory`` classifies it);
``/market`` carries everything else. A stream on the wrong path is ACKed and then never
delivers, so every name is validated and routed here before it reaches a socket.

Stream names are case-sensitive: the symbol part is lower case (``btcusdt@aggTrade``;
Binance ACKs upper-case symbols and sends nothing), while the kind keeps Binance's camel case
(``aggTrade``, ``bookTicker``, ``markPrice``).
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

Route = Literal["public", "market"]
"""A Binance USDⓈ-M routed WebSocket path (``{ws_url}/{route}/stream``)."""

BOOK_TICKER_ALL = "!bookTicker"
"""Best bid/ask of every symbol (route ``public``)."""
MARK_PRICE_ALL_3S = "!markPrice@arr"
"""Mark price and funding of every symbol, every 3 s (route ``market``)."""
MARK_PRICE_ALL = "!markPrice@arr@1s"
"""Mark price and funding of every symbol, every 1 s (route ``market``)."""
TICKER_ALL = "!ticker@arr"
"""24 h rolling statistics of the symbols that changed, about every 1 s (route ``market``)."""
FORCE_ORDER_ALL = "!forceOrder@arr"
"""Liquidation orders of every symbol, at most one per symbol per second (route ``market``)."""

KLINE_INTERVAL_S: dict[str, float] = {
    "1m": 60.0,
    "3m": 180.0,
    "5m": 300.0,
    "15m": 900.0,
    "30m": 1800.0,
    "1h": 3600.0,
    "2h": 7200.0,
    "4h": 14400.0,
    "6h": 21600.0,
    "8h": 28800.0,
    "12h": 43200.0,
    "1d": 86400.0,
    "3d": 259200.0,
    "1w": 604800.0,
    "1M": 31 * 86400.0,  # longest month; only used as a staleness bound
}
"""Binance kline interval codes (``@kline_<i>``) → length in seconds."""

DEPTH_SPEEDS_MS = (0, 100, 250, 500)
"""Diff/partial depth update speeds in ms; 250 is the default and has no ``@…ms`` suffix.
``0`` (``@depth@0ms``) is undocumented but appears in recorded Binance captures."""

PARTIAL_DEPTH_LEVELS = (5, 10, 20)
"""Levels of the partial book depth streams (``@depth<levels>``)."""


class StreamInfo(NamedTuple):
    """A parsed Binance USDⓈ-M stream name.

    Attributes:
        stream: The stream name as given.
        route: Routed path that delivers it.
        kind: Stream kind: ``depth`` (diff depth), ``partialDepth``, ``rpiDepth``,
            ``bookTicker``, ``trade``, ``aggTrade``, ``kline``, ``continuousKline``,
            ``markPrice``, ``forceOrder``, ``ticker``, ``miniTicker``, ``compositeIndex``,
            ``assetIndex`` or ``contractInfo``.
        symbol: Lower-case symbol (``btcusdt``); ``""`` for all-market (``!…``) streams.
        interval: Kline interval code for ``kline``/``continuousKline``, else ``""``.
    """

    stream: str
    route: Route
    kind: str
    symbol: str
    interval: str = ""

    @property
    def all_market(self) -> bool:
        """True for the all-market ``!…`` streams."""
        return not self.symbol

    @property
    def key(self) -> str:
        """Handler key: the kind, prefixed with ``!`` for all-market streams."""
        return "!" + self.kind if self.all_market else self.kind


_ALL_MARKET: dict[str, tuple[Route, str]] = {
    "!bookTicker": ("public", "bookTicker"),
    "!markPrice@arr": ("market", "markPrice"),
    "!markPrice@arr@1s": ("market", "markPrice"),
    "!forceOrder@arr": ("market", "forceOrder"),
    "!ticker@arr": ("market", "ticker"),
    "!miniTicker@arr": ("market", "miniTicker"),
    "!contractInfo": ("market", "contractInfo"),
    "!assetIndex@arr": ("market", "assetIndex"),
}

# Kinds that take no ``@`` modifier, with their route.
_PLAIN_KINDS: dict[str, Route] = {
    "bookTicker": "public",
    "trade": "public",
    "aggTrade": "market",
    "forceOrder": "market",
    "ticker": "market",
    "miniTicker": "market",
    "compositeIndex": "market",
    "assetIndex": "market",
}

_SPEEDS = frozenset(f"{ms}ms" for ms in DEPTH_SPEEDS_MS)
_PARTIAL_DEPTH = re.compile(r"depth(5|10|20)")
_BAD_SYMBOL_CHARS = frozenset("!@/ \t\r\n")


def _unknown(stream: str, why: str) -> ValueError:
    return ValueError(f"unknown Binance USDⓈ-M stream {stream!r}: {why}")


def parse_stream(stream: str) -> StreamInfo:
    """Parse and validate one Binance USDⓈ-M market stream name.

    Args:
        stream: A stream name such as ``btcusdt@kline_1m``, ``btcusdt@depth20@100ms`` or
            ``!ticker@arr``.

    Returns:
        The parsed :class:`StreamInfo`.

    Raises:
        ValueError: naming the stream, if the symbol is not lower case, the kind is unknown,
            or a modifier (speed, interval, levels) is not one Binance offers.
    """
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"empty or non-string stream name {stream!r}")
    if stream.startswith("!"):
        found = _ALL_MARKET.get(stream)
        if found is None:
            raise _unknown(stream, f"all-market streams are {', '.join(_ALL_MARKET)}")
        return StreamInfo(stream, found[0], found[1], "")
    symbol, sep, rest = stream.partition("@")
    if not sep or not symbol or not rest:
        raise _unknown(stream, "expected '<symbol>@<kind>'")
    if any(char in _BAD_SYMBOL_CHARS for char in symbol):
        raise _unknown(stream, f"bad character in symbol {symbol!r}")
    if symbol != symbol.lower():
        raise ValueError(
            f"stream {stream!r}: symbol must be lower case ({symbol.lower()!r}); "
            "Binance ACKs upper-case names and then sends no data"
        )
    head, *mods = rest.split("@")
    if head in _PLAIN_KINDS:
        if mods:
            raise _unknown(stream, f"{head!r} takes no '@' modifier")
        return StreamInfo(stream, _PLAIN_KINDS[head], head, symbol)
    if head in ("depth", "rpiDepth") or _PARTIAL_DEPTH.fullmatch(head):
        if len(mods) > 1 or (mods and mods[0] not in _SPEEDS):
            raise _unknown(stream, f"depth speed must be one of {sorted(_SPEEDS)}")
        kind = head if head in ("depth", "rpiDepth") else "partialDepth"
        return StreamInfo(stream, "public", kind, symbol)
    if head == "markPrice":
        if mods not in ([], ["1s"]):
            raise _unknown(stream, "markPrice takes only '@1s'")
        return StreamInfo(stream, "market", "markPrice", symbol)
    kind, underscore, interval = head.partition("_")
    if kind in ("kline", "continuousKline") and underscore:
        if interval not in KLINE_INTERVAL_S:
            raise _unknown(stream, f"kline interval must be one of {', '.join(KLINE_INTERVAL_S)}")
        if mods:
            raise _unknown(stream, f"{kind} takes no '@' modifier")
        if kind == "continuousKline" and "_" not in symbol:
            raise _unknown(stream, "continuousKline needs '<pair>_<contracttype>'")
        return StreamInfo(stream, "market", kind, symbol, interval)
    raise _unknown(stream, f"kind {head!r} is not a Binance USDⓈ-M market stream")


def route_of(stream: str) -> Route:
    """Routed path (``public`` or ``market``) that delivers ``stream``.

    ``@depth*``, ``@rpiDepth``, ``@bookTicker``, ``!bookTicker`` and ``@trade`` are
    ``public``; everything else is ``market`` (FEEDS.md §1.2).

    Raises:
        ValueError: naming the stream, if it is not a valid Binance USDⓈ-M stream name.
    """
    return parse_stream(stream).route


def stale_threshold_s(stream: str, stale_after_s: float) -> float | None:
    """Seconds of silence after which the watchdog calls ``stream`` stale.

    Binance pushes klines only while trades happen, and kline replays push only a bar's
    opening and closing update, so a kline stream may be silent for a whole interval: it
    gets ``interval + stale_after_s``. Liquidation streams are sparse by nature (no
    liquidation, no push) and are never stale (``None``).

    Raises:
        ValueError: if ``stream`` is not a valid stream name.
    """
    info = parse_stream(stream)
    if info.kind == "forceOrder":
        return None
    if info.interval:
        return KLINE_INTERVAL_S[info.interval] + stale_after_s
    return stale_after_s


def _symbol(symbol: str) -> str:
    name = symbol.strip().lower()
    if not name or any(char in _BAD_SYMBOL_CHARS for char in name):
        raise ValueError(f"bad symbol {symbol!r} for a stream name")
    return name


def kline_stream(symbol: str, interval: str) -> str:
    """``<symbol>@kline_<interval>``; the symbol is lower-cased (``BTCUSDT`` → ``btcusdt``).

    Raises:
        ValueError: if ``interval`` is not a Binance kline interval or the symbol is empty.
    """
    if interval not in KLINE_INTERVAL_S:
        raise ValueError(
            f"unknown kline interval {interval!r}; allowed: {', '.join(KLINE_INTERVAL_S)}"
        )
    return f"{_symbol(symbol)}@kline_{interval}"


def agg_trade_stream(symbol: str) -> str:
    """``<symbol>@aggTrade`` (aggregated trades, route ``market``)."""
    return f"{_symbol(symbol)}@aggTrade"


def trade_stream(symbol: str) -> str:
    """``<symbol>@trade`` (raw trades, route ``public``)."""
    return f"{_symbol(symbol)}@trade"


def depth_stream(symbol: str, speed_ms: int = 100, levels: int | None = None) -> str:
    """Depth stream name (route ``public``).

    Args:
        symbol: Symbol, any case.
        speed_ms: Update speed in ms, one of :data:`DEPTH_SPEEDS_MS`; 250 (the Binance
            default) adds no suffix.
        levels: ``None`` for the diff-depth stream (``@depth``), or 5/10/20 for the partial
            top-N book (``@depth20``), which replaces the top of the book on every push.

    Raises:
        ValueError: if ``speed_ms`` or ``levels`` is not offered by Binance.
    """
    if speed_ms not in DEPTH_SPEEDS_MS:
        raise ValueError(f"depth speed {speed_ms} ms not offered; allowed: {DEPTH_SPEEDS_MS}")
    if levels is not None and levels not in PARTIAL_DEPTH_LEVELS:
        raise ValueError(f"partial depth levels {levels} not offered: {PARTIAL_DEPTH_LEVELS}")
    name = f"{_symbol(symbol)}@depth{levels or ''}"
    return name if speed_ms == 250 else f"{name}@{speed_ms}ms"


def book_ticker_stream(symbol: str) -> str:
    """``<symbol>@bookTicker`` (best bid/ask, route ``public``)."""
    return f"{_symbol(symbol)}@bookTicker"


def mark_price_stream(symbol: str, every_1s: bool = True) -> str:
    """``<symbol>@markPrice@1s`` (or ``@markPrice``, every 3 s; route ``market``)."""
    return f"{_symbol(symbol)}@markPrice" + ("@1s" if every_1s else "")


def force_order_stream(symbol: str) -> str:
    """``<symbol>@forceOrder`` (liquidations of one symbol, route ``market``)."""
    return f"{_symbol(symbol)}@forceOrder"


def ticker_stream(symbol: str) -> str:
    """``<symbol>@ticker`` (24 h rolling statistics of one symbol, route ``market``)."""
    return f"{_symbol(symbol)}@ticker"
