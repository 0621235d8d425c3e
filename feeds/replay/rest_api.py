"""Binance USDⓈ-M REST routes of the replay server (``/fapi/v1/...``), with weights and faults.

Every response carries ``X-MBX-USED-WEIGHT-1M``: the Binance request weights of the last 60 s
(rolling), computed with Binance's weight table (FEEDS.md §1.7): klines by ``limit`` (<100 → 1,
<500 → 2, ≤1000 → 5, else 10), depth by ``limit`` (≤50 → 2, 100 → 5, 500 → 10, 1000 → 20),
``ticker/24hr`` without a symbol 40, everything else 1. Errors use Binance's body shape
(``{"code":-1121,"msg":"Invalid symbol."}``, HTTP 400).

``GET /fapi/v1/depth`` answers with the source's current book (a capture's reference book,
:mod:`feeds.replay.depth_book`). ``GET /fapi/v1/openInterest`` is not offered: recorded data
holds no open interest, so it answers HTTP 404 with a Binance-style body saying so (code
-1020, "This operation is not supported"), never a made-up value.

Tests inject faults per path (:meth:`RestApi.inject_fault`), stale depth snapshots per
symbol (:meth:`RestApi.inject_stale_depth`) and read every request from :attr:`RestApi.log`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from feeds.intervals import INTERVAL_MS
from feeds.replay.timeline import ReplaySource
from feeds.replay.wire import binance_error

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
KLINES_MAX_LIMIT = 1500
DEPTH_MAX_LIMIT = 1000
FUNDING_MAX_LIMIT = 1000
OPEN_INTEREST_NOT_RECORDED = (
    "This operation is not supported: open interest is not recorded in this replay."
)
"""``msg`` of the 404 answer to ``GET /fapi/v1/openInterest``."""

_encode = msgspec.json.Encoder().encode


class BinanceError(Exception):
    """A request Binance would reject: HTTP ``status`` with body ``{"code","msg"}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def klines_weight(limit: int) -> int:
    """Binance weight of ``GET /fapi/v1/klines`` for ``limit``."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def depth_weight(limit: int) -> int:
    """Binance weight of ``GET /fapi/v1/depth`` for ``limit``."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def default_fault_body(status: int) -> dict[str, Any]:
    """Binance's error body for an HTTP ``status`` (429/418 rate limits, 5xx, others)."""
    if status == 429:
        return binance_error(
            -1003,
            "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
            "Please use the websocket for live updates to avoid polling the API.",
        )
    if status == 418:
        until = int(time.time() * 1000) + 120_000
        return binance_error(
            -1003,
            f"Way too much request weight used; IP banned until {until}. "
            "Please use the websocket for live updates to avoid bans.",
        )
    if status == 408:
        return binance_error(
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        )
    if status >= 500:
        return binance_error(
            -1001, "Internal error; unable to process your request. Please try again."
        )
    return binance_error(-1000, "An unknown error occurred while processing the request.")


@dataclass
class RestFault:
    """A canned response for the next ``remaining`` requests to one path.

    Attributes:
        status: HTTP status (200 with ``body`` None = answer normally after ``delay_s``).
        headers: Extra response headers (``Retry-After``).
        body: JSON body; ``None`` = Binance's default body for ``status``.
        remaining: Requests still to be answered with this fault.
        delay_s: Seconds to wait before answering (latency injection).
    """

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None
    remaining: int
    delay_s: float = 0.0


class WeightTracker:
    """Sum of request weights over a rolling 60 s window (monotonic clock)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self._window = window_s
        self._items: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, weight: int, now: float | None = None) -> int:
        """Record ``weight`` and return the window's total including it."""
        now = time.monotonic() if now is None else now
        self._items.append((now, weight))
        self._total += weight
        return self.used(now)

    def used(self, now: float | None = None) -> int:
        """Total weight of the last ``window_s`` seconds."""
        now = time.monotonic() if now is None else now
        while self._items and self._items[0][0] <= now - self._window:
            self._total -= self._items.popleft()[1]
        return self._total


def _int_param(query: Any, name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _symbol(query: Any, required: bool) -> str | None:
    raw = query.get("symbol")
    if raw is None or raw == "":
        if required:
            raise BinanceError(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        return None
    return str(raw).upper()


def _bad_limit() -> BinanceError:
    return BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")


class RestApi:
    """The ``/fapi/v1`` routes over a :class:`ReplaySource`, answering as of ``clock()``.

    Args:
        source: The loaded replay.
        clock: Returns the replay clock, ms UTC.

    Attributes:
        log: ``(monotonic time, path, query)`` of every REST request, in arrival order.
        weights: Rolling used-weight tracker.
    """

    def __init__(self, source: ReplaySource, clock: Callable[[], int]) -> None:
        self.source = source
        self.clock = clock
        self.log: list[tuple[float, str, dict[str, str]]] = []
        self.weights = WeightTracker()
        self._faults: dict[str, deque[RestFault]] = {}
        self._stale_depth: dict[str, int] = {}
        self._routes: dict[str, Callable[[web.Request], Any]] = {
            "/fapi/v1/ping": lambda r: {},
            "/fapi/v1/time": lambda r: {"serverTime": self.clock()},
            "/fapi/v1/exchangeInfo": self._exchange_info,
            "/fapi/v1/ticker/24hr": self._ticker_24h,
            "/fapi/v1/klines": self._klines,
            "/fapi/v1/depth": self._depth,
            "/fapi/v1/premiumIndex": self._premium_index,
            "/fapi/v1/fundingRate": self._funding_rate,
            "/fapi/v1/openInterest": self._open_interest,
        }

    def add_routes(self, app: web.Application) -> None:
        """Register the GET routes on ``app``."""
        for path in self._routes:
            app.router.add_get(path, self._handle)

    def inject_fault(
        self,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        count: int = 1,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next ``count`` requests to ``path`` with ``status``/``headers``/``body``.

        ``path`` is the request path (``/fapi/v1/depth``), or ``*`` for any REST path.
        Faults queue up per path in injection order.

        Raises:
            ValueError: ``count`` < 1 or ``delay_s`` < 0.
        """
        if count < 1 or delay_s < 0:
            raise ValueError("count must be >= 1 and delay_s >= 0")
        fault = RestFault(status, dict(headers or {}), body, count, delay_s)
        self._faults.setdefault(path, deque()).append(fault)

    def inject_stale_depth(self, symbol: str, count: int = 1) -> None:
        """Answer the next ``count`` depth requests for ``symbol`` with its first recorded
        snapshot (older than the book the stream has moved on to). Calls add up.

        Raises:
            ValueError: ``count`` < 1, or no snapshot was recorded for ``symbol``.
        """
        symbol = symbol.upper()
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if self.source.depth(symbol, 1) is None:
            raise ValueError(f"inject_stale_depth: no depth snapshot recorded for {symbol}")
        self._stale_depth[symbol] = self._stale_depth.get(symbol, 0) + count

    def _take_fault(self, path: str) -> RestFault | None:
        for key in (path, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                return fault
        return None

    def _weight(self, path: str, query: Any) -> int:
        try:
            if path == "/fapi/v1/klines":
                return klines_weight(_int_param(query, "limit", 500) or 500)
            if path == "/fapi/v1/depth":
                return depth_weight(_int_param(query, "limit", 500) or 500)
        except BinanceError:
            return 1
        if path == "/fapi/v1/ticker/24hr" and not query.get("symbol"):
            return 40
        return 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = request.query
        self.log.append((time.monotonic(), path, dict(query)))
        used = self.weights.add(self._weight(path, query))
        headers = {WEIGHT_HEADER: str(used)}
        fault = self._take_fault(path)
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if not (fault.status == 200 and fault.body is None):
                body = fault.body if fault.body is not None else default_fault_body(fault.status)
                return web.Response(
                    body=_encode(body),
                    status=fault.status,
                    content_type="application/json",
                    headers={**headers, **fault.headers},
                )
        try:
            result = self._routes[path](request)
        except BinanceError as exc:
            return web.Response(
                body=_encode(binance_error(exc.code, exc.msg)),
                status=exc.status,
                content_type="application/json",
                headers=headers,
            )
        return web.Response(body=_encode(result), content_type="application/json", headers=headers)

    # ----------------------------------------------------------------- routes

    def _exchange_info(self, request: web.Request) -> Any:
        body = dict(self.source.exchange_info())
        body["serverTime"] = self.clock()
        return body

    def _ticker_24h(self, request: web.Request) -> Any:
        symbol = _symbol(request.query, required=False)
        if symbol is not None and not self.source.has_symbol(symbol):
            raise BinanceError(-1121, "Invalid symbol.")
        rows = self.source.tickers_24h(self.clock())
        if symbol is None:
            return rows
        for row in rows:
            if row["symbol"] == symbol:
                return row
        raise BinanceError(-1121, "Invalid symbol.")

    def _klines(self, request: web.Request) -> Any:
        query = request.query
        symbol = _symbol(query, required=True)
        assert symbol is not None
        interval = query.get("interval")
        if not interval:
            raise BinanceError(
                -1102,
                "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            )
        if interval not in INTERVAL_MS:
            raise BinanceError(-1120, "Invalid interval.")
        limit = _int_param(query, "limit", 500)
        assert limit is not None
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise _bad_limit()
        start = _int_param(query, "startTime")
        end = _int_param(query, "endTime")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        rows = self.source.klines(symbol, interval, start, end, limit, self.clock())
        if rows is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return rows

    def _depth(self, request: web.Request) -> Any:
        query = request.query
        symbol = _symbol(query, required=True)
        assert symbol is not None
        limit = _int_param(query, "limit", 500)
        assert limit is not None
        if not 1 <= limit <= DEPTH_MAX_LIMIT:
            raise _bad_limit()
        if not self.source.has_symbol(symbol):
            raise BinanceError(-1121, "Invalid symbol.")
        now = self.clock()
        if self._stale_depth.get(symbol):
            self._stale_depth[symbol] -= 1
            stale = self.source.depth(symbol, limit)
            if stale is not None:
                logger.info("replay: stale depth snapshot served for %s (fault injection)", symbol)
                return stale
        book = self.source.depth_at(symbol, limit, now)
        if book is None:
            # Nothing recorded (kline replays): an empty book, never a made-up one.
            return {"lastUpdateId": 0, "E": now, "T": now, "bids": [], "asks": []}
        return book

    def _open_interest(self, request: web.Request) -> Any:
        # Recorded data holds no open interest: say so rather than invent a value.
        raise BinanceError(-1020, OPEN_INTEREST_NOT_RECORDED, status=404)

    def _premium_index(self, request: web.Request) -> Any:
        symbol = _symbol(request.query, required=False)
        if symbol is not None and not self.source.has_symbol(symbol):
            raise BinanceError(-1121, "Invalid symbol.")
        rows = self.source.premium_index(symbol, self.clock())
        if symbol is None:
            return rows
        if not rows:
            raise BinanceError(-1121, "Invalid symbol.")
        return rows[0]

    def _funding_rate(self, request: web.Request) -> Any:
        query = request.query
        symbol = _symbol(query, required=False)
        limit = _int_param(query, "limit", 100)
        assert limit is not None
        if not 1 <= limit <= FUNDING_MAX_LIMIT:
            raise _bad_limit()
        start = _int_param(query, "startTime")
        end = _int_param(query, "endTime")
        rows = self.source.funding_rates(symbol, start, end, limit, self.clock())
        if rows is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return rows
