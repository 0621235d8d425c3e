"""Binance USDⓈ-M wire details shared by the replay server: stream names, routes, number text.

Stream names follow Binance (FEEDS.md §1.2): ``<symbol>@<kind>[@<speed>]`` with a lower-case
symbol, or ``!<kind>@arr[@<speed>]`` for all-market streams. The replay server delivers a
recorded frame to every subscription with the same *stream key* (symbol + kind, the speed
suffix dropped), so a client subscribed to ``btcusdt@depth@100ms`` also receives a capture's
``btcusdt@depth@0ms`` frames, renamed to the name it subscribed.
"""

from __future__ import annotations

import math
import re
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

Route = Literal["public", "market"]

_SPEED = re.compile(r"@(?:\d+ms|\d+s)$")


class StreamKey(NamedTuple):
    """What a stream carries, independent of its update speed.

    Attributes:
        symbol: Lower-case symbol as written in the stream name (``btcusdt``), or the
            all-market prefix (``!markPrice``). Case is kept: Binance ignores upper-case
            symbols (ACK, no data), and so does the replay.
        kind: Stream kind without the speed suffix (``depth``, ``depth20``, ``kline_5m``,
            ``markPrice``, ``arr``).
    """

    symbol: str
    kind: str


def stream_key(stream: str) -> StreamKey:
    """Key of a stream name: ``btcusdt@depth@100ms`` → ``("btcusdt", "depth")``.

    ``!markPrice@arr@1s`` → ``("!markPrice", "arr")``. A name without ``@`` keys as
    ``(name, "")``.
    """
    base = _SPEED.sub("", stream)
    symbol, _, kind = base.partition("@")
    return StreamKey(symbol, kind)


def route_of(stream: str) -> Route:
    """Binance routed path that carries ``stream`` (FEEDS.md §1.2).

    ``depth*``, ``rpiDepth*``, ``bookTicker``, ``!bookTicker`` and raw ``trade`` are
    ``public``; everything else (kline, aggTrade, markPrice, forceOrder, tickers, ``!…@arr``)
    is ``market``.
    """
    if stream.startswith("!"):
        return "public" if stream.startswith("!bookTicker") else "market"
    kind = stream.partition("@")[2]
    if kind.startswith(("depth", "rpiDepth", "bookTicker")) or kind == "trade":
        return "public"
    return "market"


def combined_frame(stream: str, data: bytes) -> bytes:
    """Combined-stream envelope ``{"stream":..,"data":..}`` around raw JSON ``data``."""
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


def decimals_of(values: npt.NDArray[np.float64], max_decimals: int = 8) -> int:
    """Fewest decimals that write every value exactly (to float rounding), capped.

    Used to print recorded floats as Binance-style fixed-decimal strings without adding or
    losing digits (``31031.7`` needs 1 decimal, ``0.0001`` needs 4). NaNs are ignored.
    """
    finite = values[np.isfinite(values)]
    for dec in range(max_decimals + 1):
        scaled = finite * 10.0**dec
        # Tolerance: a few float64 ulps of the scaled value (recorded floats are parsed decimals).
        if np.all(np.abs(np.round(scaled) - scaled) <= 1e-7 + np.abs(scaled) * 1e-13):
            return dec
    return max_decimals


def fmt(value: float, decimals: int) -> str:
    """Fixed-decimal text as Binance writes prices and sizes (``"31031.70"``)."""
    if math.isnan(value):
        return "0"
    text = f"{value:.{decimals}f}"
    return "0" if decimals == 0 and text == "-0" else text


def binance_error(code: int, msg: str) -> dict[str, object]:
    """Binance REST error body (``{"code":-1121,"msg":"Invalid symbol."}``)."""
    return {"code": code, "msg": msg}


INTEREST_RATE = "0.00010000"
"""Binance's fixed default interest rate in ``premiumIndex`` (0.01 % per 8 h)."""


def premium_index_row(
    symbol: str,
    *,
    mark: str,
    index: str,
    settle: str,
    funding_rate: str,
    next_funding_ms: int,
    time_ms: int,
) -> dict[str, object]:
    """One ``GET /fapi/v1/premiumIndex`` row in Binance's shape (prices and rates as strings,
    times in ms UTC)."""
    return {
        "symbol": symbol,
        "markPrice": mark,
        "indexPrice": index,
        "estimatedSettlePrice": settle,
        "lastFundingRate": funding_rate,
        "interestRate": INTEREST_RATE,
        "nextFundingTime": next_funding_ms,
        "time": time_ms,
    }
