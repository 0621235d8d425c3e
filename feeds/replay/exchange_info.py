"""``GET /fapi/v1/exchangeInfo`` for a replay: the replay's symbols as TRADING USDT perpetuals.

Symbol records (filters, precision, order types) are copied from the two recorded
exchangeInfo responses under ``shared/data/binance-usdm/rest`` when the symbol appears there
(the 2021-09 rezbot file first, then the 2021-07 cryptofeed file); ``status`` is set to
``TRADING`` and ``contractType`` to ``PERPETUAL``. When the recorded prices need more
decimals than the recorded ``tickSize`` (a tick-size change since 2021), the tick size and
``pricePrecision`` are replaced by ones derived from the prices' decimals.

A symbol absent from both files gets a record **derived from the replayed prices**: tickSize
= 10^-(decimals the prices need), stepSize = 10^-(decimals the volumes need), and no other
limits beyond Binance's structural defaults (``MIN_NOTIONAL`` 5 USDT, ``PERCENT_PRICE``
±5 %). Those values are approximations, not recorded data.
"""

from __future__ import annotations

import copy
import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_REST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance-usdm" / "rest"
REFERENCE_FILES = (
    _REST / "rezbot" / "exchangeInfo.json",
    _REST / "cryptofeed" / "BINANCE_FUTURES.0",
)
"""Recorded exchangeInfo responses, most recent first."""

DEFAULT_RATE_LIMITS: list[dict[str, Any]] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]
"""Binance USDⓈ-M rate limits as recorded in the 2021 exchangeInfo responses."""

QUOTE_ASSETS = ("USDT", "BUSD", "USDC")


def _load_reference(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        logger.info("exchangeInfo reference %s not readable: %s", path, exc)
        return None
    if path.suffix != ".json":
        # cryptofeed format: "<url> -> <ts>: <body>" on the first line.
        first = text.split("\n", 1)[0]
        text = first.split(": ", 1)[1] if ": " in first else first
    try:
        body = json.loads(text)
    except ValueError as exc:
        logger.warning("exchangeInfo reference %s is not JSON: %s", path, exc)
        return None
    return body if isinstance(body, dict) else None


@cache
def reference_exchange_info() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Recorded symbol records by symbol (most recent file wins) and the rate limits."""
    symbols: dict[str, dict[str, Any]] = {}
    limits: list[dict[str, Any]] = []
    for path in REFERENCE_FILES:
        body = _load_reference(path)
        if body is None:
            continue
        if not limits and isinstance(body.get("rateLimits"), list):
            limits = body["rateLimits"]
        for record in body.get("symbols", []):
            if isinstance(record, dict) and isinstance(record.get("symbol"), str):
                symbols.setdefault(record["symbol"], record)
    return symbols, limits or DEFAULT_RATE_LIMITS


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a Binance symbol: ``BTCUSDT`` → ``("BTC", "USDT")``."""
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def _step(decimals: int) -> str:
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


def symbol_record(
    symbol: str, price_decimals: int, qty_decimals: int, onboard_ms: int
) -> dict[str, Any]:
    """exchangeInfo record for ``symbol`` (recorded when known, else derived; module doc).

    Args:
        symbol: Exchange symbol (``BTCUSDT``).
        price_decimals: Decimals the replayed prices need.
        qty_decimals: Decimals the replayed volumes need.
        onboard_ms: First replayed candle, ms UTC (``onboardDate`` of derived records).
    """
    known, _ = reference_exchange_info()
    if symbol in known:
        record = copy.deepcopy(known[symbol])
        record["status"] = "TRADING"
        record["contractType"] = "PERPETUAL"
        record["deliveryDate"] = 4133404800000  # Binance's "never" for perpetuals
        for flt in record.get("filters", []):
            if flt.get("filterType") == "PRICE_FILTER":
                tick_dec = decimals_of_text(str(flt.get("tickSize", "1")))
                if tick_dec < price_decimals:
                    flt["tickSize"] = _step(price_decimals)
                    record["pricePrecision"] = price_decimals
        return record
    base, quote = split_symbol(symbol)
    tick = _step(price_decimals)
    step = _step(qty_decimals)
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": onboard_ms,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": price_decimals,
        "quantityPrecision": qty_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": tick,
                "minPrice": tick,
                "maxPrice": "1000000",
            },
            {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "10000000"},
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": step,
                "minQty": step,
                "maxQty": "1000000",
            },
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def decimals_of_text(number: str) -> int:
    """Decimals of a decimal string, trailing zeros ignored: ``"0.0100"`` → 2."""
    if "." not in number:
        return 0
    return len(number.split(".", 1)[1].rstrip("0"))


def exchange_info(records: list[dict[str, Any]], server_time_ms: int) -> dict[str, Any]:
    """Full exchangeInfo body around the symbol ``records``."""
    _, limits = reference_exchange_info()
    assets = sorted({r.get("marginAsset", "USDT") for r in records} | {"USDT"})
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": limits,
        "exchangeFilters": [],
        "assets": [{"asset": a, "marginAvailable": True, "autoAssetExchange": "0"} for a in assets],
        "symbols": records,
    }
