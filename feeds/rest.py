"""Binance USDⓈ-M public REST through ccxt (async ``binanceusdm``): universe, klines, depth
snapshots and open interest.

Every HTTP request the ccxt instance sends, including the ones ``load_markets`` makes, passes
one gate (the instance's ``fetch``, wrapped by :class:`BinanceRest`): it waits on the shared
:class:`WeightBudget` with the request's Binance weight, so the 70 % budget and a 429/418
cooldown hold for *all* REST traffic (FEEDS.md §1.7, §4 items 11 and 30). Every response is
seen by ccxt's ``on_rest_response`` hook, also wrapped: it feeds ``X-MBX-USED-WEIGHT-1M`` to
the budget and turns a 429 (``Retry-After``) or 418 (``Retry-After`` or "banned until <ms>")
into the cooldown before ccxt raises. Per-response hooks rather than
``exchange.last_response_headers``, which concurrent requests overwrite.

Error policy:

* 429 / 418 (ccxt ``RateLimitExceeded`` / ``DDoSProtection``): wait out the cooldown and send
  the same request again, without limit; a series is never abandoned for a rate limit.
* Network errors, timeouts, 5xx and Binance -1001 (ccxt ``OperationFailed``): retry with capped
  exponential backoff a bounded number of times, then :class:`RestError` naming the call and
  URL.
* HTTP 404 (the server does not offer the endpoint, e.g. a replay without open interest):
  :class:`RestUnavailable` at once, so a poller can stop asking and say why.
* Anything else the exchange rejects (unknown symbol, bad parameter): :class:`RestError` at
  once.

Klines come from the raw ``GET /fapi/v1/klines`` rows (ccxt implicit API
``fapiPublicGetKlines``) rather than ``fetch_ohlcv``, which drops close time, quote volume and
trade count and caps ``limit`` at 1000. Depth snapshots likewise come from the raw
``GET /fapi/v1/depth`` (``fapiPublicGetDepth``), since ``fetch_order_book`` hides
``lastUpdateId`` in ``nonce`` only for some versions and the diff sync needs it exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import msgspec
from msgspec import structs

from feeds.ccxt_factory import make_binanceusdm
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from feeds.events import DepthSnapshot, Kline, OpenInterest, PriceLevel
from feeds.intervals import interval_ms, period_open
from feeds.ratelimit import (
    BINANCE_WEIGHT_LIMIT_1M,
    DEFAULT_418_COOLDOWN_S,
    DEFAULT_429_COOLDOWN_S,
    WeightBudget,
    parse_banned_until_ms,
    parse_retry_after,
    request_weight,
)
from storage.kline_cache import KlineCache

logger = logging.getLogger(__name__)

T = TypeVar("T")

KLINES_MAX_LIMIT = 1500
"""Binance's largest ``limit`` for ``GET /fapi/v1/klines``."""

BACKFILL_PAGE_LIMIT = 1000
"""Rows per backfill page: 1000 rows cost weight 5 (200 rows per weight), 1500 cost 10."""

MIN_COOLDOWN_S = 1.0
"""Shortest cooldown after a 429/418, so a ``Retry-After: 0`` cannot cause a retry storm."""

USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
"""Valid ``limit`` values of ``GET /fapi/v1/depth`` (FEEDS.md §1.7)."""


class RestError(Exception):
    """A REST call failed for good: rejected by the exchange, or still failing after retries.

    The message names the call (endpoint, symbol, interval), the base URL and the cause.

    Attributes:
        cause: The root cause alone, for a one-line status (``"[Errno -2] Name or service
            not known"``); empty when the message is all there is.
    """

    def __init__(self, message: str, *, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class RestUnavailable(RestError):
    """The server does not offer the endpoint (HTTP 404): asking again will not help.

    Attributes:
        path: The endpoint path (``/fapi/v1/openInterest``).
        cause: The server's explanation (Binance ``msg``), or ``"HTTP 404"``.
    """

    def __init__(self, message: str, *, path: str, cause: str) -> None:
        super().__init__(message, cause=cause)
        self.path = path


class _NotOffered(Exception):
    """Raised from the response hook on HTTP 404, before ccxt maps it to a retryable error."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


class SeriesFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One kline series a backfill could not load.

    Attributes:
        symbol: Venue symbol (``BTCUSDT``).
        interval: Interval code (``5m``).
        error: Why, as a one-line message.
    """

    symbol: str
    interval: str
    error: str


class BackfillResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of :meth:`BinanceRest.backfill`.

    Attributes:
        series: Series attempted (symbols × timeframes).
        loaded: Series delivered through ``on_series``.
        cached_bars: Closed candles taken from the cache.
        fetched_bars: Candles received over REST (closed and forming).
        failed: Series that failed after retries; each was logged as a warning.
    """

    series: int
    loaded: int
    cached_bars: int
    fetched_bars: int
    failed: tuple[SeriesFailure, ...]


class BinanceRest:
    """Binance USDⓈ-M public REST client (universe, klines, backfill) over async ccxt.

    Args:
        endpoints: Base URLs; ``rest_url`` may point at a loopback replay server.
        feed: Feed policy: ``rest_timeout_s`` (per request) and ``rest_weight_budget``
            (fraction of 2400 weight/min).
        exchange: A ccxt async ``binanceusdm`` instance to use instead of building one with
            ``make_binanceusdm``. The client takes it over: it routes its requests through the
            budget and closes it in :meth:`close`.
        budget: Weight budget to share (e.g. with the order-book resync); by default a new
            one of ``2400 × feed.rest_weight_budget`` per minute.
        cooldown_state: State file that keeps a 429/418 cooldown across restarts, for the
            default budget (``WeightBudget(state_path=...)``): a cooldown still in force from
            the last run holds every request until it ends. Only the live app passes one
            (``<data_dir>/rest_cooldown.json``); ``None`` reads and writes nothing.
        concurrency: Kline requests in flight at once during a backfill.
        max_retries: Retries of a request after a network error before giving up.
        retry_backoff_s: First retry delay; doubles per retry.
        retry_backoff_max_s: Cap on the retry delay.
        server_time_max_age_s: How long a ``/fapi/v1/time`` sample is reused. A reused sample
            is older than the true server time, so it can only mark a just-closed candle as
            forming, never a forming one as closed.

    Raises:
        ValueError: on a non-positive ``concurrency``, negative retry settings, or both
            ``budget`` and ``cooldown_state`` (give the shared budget its ``state_path``).
    """

    def __init__(
        self,
        endpoints: EndpointConfig,
        feed: FeedConfig,
        *,
        exchange: Any = None,
        budget: WeightBudget | None = None,
        cooldown_state: Path | None = None,
        concurrency: int = 4,
        max_retries: int = 3,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 8.0,
        server_time_max_age_s: float = 2.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be ≥ 1, got {concurrency}")
        if max_retries < 0 or retry_backoff_s < 0 or retry_backoff_max_s < 0:
            raise ValueError("retry settings must be ≥ 0")
        if budget is not None and cooldown_state is not None:
            raise ValueError("pass cooldown_state to the shared budget, not with budget=")
        self.rest_url = endpoints.rest_url
        self.budget = (
            budget
            if budget is not None
            else WeightBudget(
                BINANCE_WEIGHT_LIMIT_1M, feed.rest_weight_budget, state_path=cooldown_state
            )
        )
        self.requests_sent = 0
        """HTTP requests sent so far (all endpoints)."""
        self.tick_sizes: dict[str, float] = {}
        """Price tick size per TRADING USDT perpetual (quote currency), set by
        :meth:`universe`."""
        self.onboard_dates: dict[str, int] = {}
        """exchangeInfo ``onboardDate`` (ms UTC) per TRADING USDT perpetual, set by
        :meth:`universe` (symbols without one are left out)."""
        self._concurrency = concurrency
        self._max_retries = max_retries
        self._backoff_s = retry_backoff_s
        self._backoff_max_s = retry_backoff_max_s
        self._time_max_age_s = server_time_max_age_s
        self._time_sample: tuple[int, float] | None = None
        self._time_lock = asyncio.Lock()
        self._markets_loaded = False
        self._closed = False
        if exchange is None:
            exchange = make_binanceusdm(endpoints.rest_url, feed.rest_timeout_s)
        self._exchange = exchange
        self._instrument(exchange)

    @property
    def exchange(self) -> Any:
        """The ccxt instance (requests made on it directly still go through the budget)."""
        return self._exchange

    async def close(self) -> None:
        """Close the ccxt HTTP session; idempotent. Later calls raise :class:`RestError`."""
        if self._closed:
            return
        self._closed = True
        await self._exchange.close()

    async def server_time(self, *, context: str = "server time") -> int:
        """Exchange time, ms UTC (``GET /fapi/v1/time``, weight 1).

        Args:
            context: What the time is needed for; starts the error message.

        Raises:
            RestError: when the call fails after retries or the answer is not a time.
        """
        value = await self._call("/fapi/v1/time", self._exchange.fetch_time, context=context)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RestError(
                f"{context}: GET {self.rest_url}/fapi/v1/time gave no serverTime ({value!r})"
            )
        self._time_sample = (value, time.monotonic())
        return value

    async def universe(self, cfg: UniverseConfig) -> list[str]:
        """Symbols to scan: TRADING USDT-margined perpetuals (Binance ids, ``BTCUSDT``).

        Reloads ``exchangeInfo`` (weight 1) so delistings and new listings are seen.

        * ``all``: every TRADING USDT perpetual, alphabetical;
        * ``top``: the ``top_n`` by 24 h quote volume (``GET /fapi/v1/ticker/24hr``,
          weight 40), highest first;
        * ``list``: ``cfg.symbols`` in the configured order.

        ``cfg.exclude`` is removed in every mode (in ``top`` before ranking, so ``top_n``
        symbols remain when enough exist).

        Raises:
            RestError: in ``list`` mode when configured symbols are not TRADING USDT
                perpetuals (the message names them), or when a call fails after retries.
        """
        markets = await self._load_markets(reload=True, context="universe")
        perps = _usdt_perpetual_ids(markets, cfg.quote_asset)
        self.tick_sizes = _tick_sizes(markets, perps)
        self.onboard_dates = _onboard_dates(markets, perps)
        excluded = set(cfg.exclude)
        if cfg.mode == "list":
            wanted = [s for s in dict.fromkeys(cfg.symbols) if s not in excluded]
            unknown = [s for s in wanted if s not in perps]
            if unknown:
                raise RestError(
                    f"universe: not a TRADING {cfg.quote_asset} perpetual on "
                    f"{self.rest_url}: {', '.join(unknown)}"
                )
            return wanted
        candidates = sorted(s for s in perps if s not in excluded)
        if cfg.mode == "all":
            return candidates
        tickers = await self._call(
            "/fapi/v1/ticker/24hr", self._exchange.fetch_tickers, context="universe"
        )
        volumes: dict[str, float] = {}
        for ticker in tickers.values():
            info = ticker.get("info") or {}
            symbol = info.get("symbol")
            if isinstance(symbol, str):
                volumes[symbol] = _float(ticker.get("quoteVolume"))
        ranked = sorted(candidates, key=lambda s: (-volumes.get(s, 0.0), s))
        return ranked[: cfg.top_n]

    async def klines(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int
    ) -> list[Kline]:
        """Klines of one symbol (``GET /fapi/v1/klines``), ascending by open time.

        Args:
            symbol: Venue symbol (``BTCUSDT``); must be a market of the exchange.
            interval: Interval code (``5m``).
            since_ms: First open time wanted, ms UTC; ``None`` for the latest ``limit``.
            limit: Rows wanted, 1..1500 (weight 1/2/5/10 by size).

        Returns:
            The candles. Every row but the last is closed; the last is closed only if its
            close time is before the server time sampled before the request (else it is
            the forming candle, ``closed=False``).

        Raises:
            ValueError: on a bad interval or limit.
            RestError: on an unknown symbol, a malformed response, or a failure after
                retries.
        """
        interval_ms(interval)
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise ValueError(f"limit must be 1..{KLINES_MAX_LIMIT}, got {limit}")
        context = f"klines {symbol.upper()} {interval}"
        market_id = await self._market_id(symbol, context)
        now = await self._server_now(context)
        klines = await self._fetch_kline_rows(market_id, interval, since_ms, limit, context)
        return mark_closed(klines, now)

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> DepthSnapshot:
        """Order book snapshot of one symbol (``GET /fapi/v1/depth``).

        The request waits on the weight budget with Binance's depth weight (limit 5..50 → 2,
        100 → 5, 500 → 10, 1000 → 20; FEEDS.md §1.7) and follows the module's retry policy.

        Args:
            symbol: Venue symbol (``BTCUSDT``; case-insensitive).
            limit: Levels per side, one of 5, 10, 20, 50, 100, 500, 1000.

        Returns:
            The snapshot: ``last_update_id`` = Binance ``lastUpdateId`` (to sync diffs
            against), bids highest first and asks lowest first as (price in quote currency,
            size in base units), ``exchange_time`` = ``E`` (ms UTC; 0 if absent),
            ``recv_time`` = local receive time (ms UTC).

        Raises:
            ValueError: on a ``limit`` Binance does not accept.
            RestError: on an unknown symbol, a malformed body (the message names the symbol
                and the problem), or a failure after retries.
            RestUnavailable: if the server does not offer the endpoint (HTTP 404).
        """
        if limit not in DEPTH_LIMITS:
            raise ValueError(f"depth limit must be one of {DEPTH_LIMITS}, got {limit}")
        market_id = symbol.upper()
        context = f"depth {market_id}"
        params = {"symbol": market_id, "limit": limit}
        raw = await self._call(
            "/fapi/v1/depth", lambda: self._exchange.fapiPublicGetDepth(params), context=context
        )
        recv = int(time.time() * 1000)
        return _parse_depth(raw, market_id, recv, f"{context}: GET {self.rest_url}/fapi/v1/depth")

    async def open_interest(self, symbol: str) -> OpenInterest:
        """Open interest of one contract (``GET /fapi/v1/openInterest``, weight 1).

        Args:
            symbol: Venue symbol (``BTCUSDT``; case-insensitive).

        Returns:
            ``open_interest`` in base units (contracts), ``time`` = the exchange's ``time``
            (ms UTC), ``recv_time`` = local receive time (ms UTC).

        Raises:
            RestUnavailable: if the server does not offer the endpoint (HTTP 404), e.g. a
                replay of recorded data that holds no open interest.
            RestError: on an unknown symbol, a malformed body (naming the symbol and the
                problem), or a failure after retries.
        """
        market_id = symbol.upper()
        context = f"open interest {market_id}"
        raw = await self._call(
            "/fapi/v1/openInterest",
            lambda: self._exchange.fapiPublicGetOpenInterest({"symbol": market_id}),
            context=context,
        )
        where = f"{context}: GET {self.rest_url}/fapi/v1/openInterest"
        try:
            body = msgspec.convert(raw, _OpenInterestBody, strict=False)
        except msgspec.ValidationError as exc:
            raise RestError(f"{where}: malformed open interest response ({exc})") from None
        if body.symbol.upper() != market_id:
            raise RestError(f"{where}: response is for {body.symbol!r}, not {market_id}")
        if not body.openInterest >= 0:
            raise RestError(f"{where}: negative or NaN openInterest {body.openInterest!r}")
        return OpenInterest(
            symbol=market_id,
            open_interest=body.openInterest,
            time=body.time,
            recv_time=int(time.time() * 1000),
        )

    async def backfill(
        self,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        bars: Callable[[str], int],
        *,
        cache: KlineCache | None,
        on_series: Callable[[str, str, list[Kline]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> BackfillResult:
        """Load recent klines for every symbol × timeframe, from the cache plus REST.

        Per series: load the cached closed candles; fetch only what is missing after them
        (pages of ≤ 1000 rows from the last cached open time + one interval, or the whole
        window of ``bars(tf)`` candles when the cache is empty, stale or has holes there);
        merge and save the closed candles; then call ``on_series(symbol, tf, klines)`` with
        the last ``bars(tf)`` closed candles, plus the forming candle last when there is one.
        ``progress(done, total)`` is called after each series, failed or not.

        Up to ``concurrency`` series are fetched at once; each request waits on the weight
        budget. A series that still fails after retries is logged and reported in the
        result; the others continue. Rate limits (429/418) only delay a series.

        Raises:
            ValueError: on an unknown timeframe or a negative ``bars``.
            Exception: whatever ``on_series`` or ``progress`` raise (the backfill stops).
        """
        for tf in timeframes:
            interval_ms(tf)
            if bars(tf) < 0:
                raise ValueError(f"bars({tf!r}) must be ≥ 0, got {bars(tf)}")
        jobs = [(symbol, tf) for symbol in symbols for tf in timeframes]
        total = len(jobs)
        semaphore = asyncio.Semaphore(self._concurrency)
        failures: list[SeriesFailure] = []
        counts = {"done": 0, "loaded": 0, "cached": 0, "fetched": 0}

        async def run(symbol: str, tf: str) -> None:
            async with semaphore:
                try:
                    klines, cached, fetched = await self._backfill_series(
                        symbol, tf, bars(tf), cache
                    )
                except RestError as exc:
                    logger.warning("backfill %s %s failed: %s", symbol, tf, exc)
                    failures.append(SeriesFailure(symbol=symbol, interval=tf, error=str(exc)))
                else:
                    counts["cached"] += cached
                    counts["fetched"] += fetched
                    on_series(symbol, tf, klines)
                    counts["loaded"] += 1
                counts["done"] += 1
                if progress is not None:
                    progress(counts["done"], total)

        tasks = [asyncio.create_task(run(symbol, tf)) for symbol, tf in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return BackfillResult(
            series=total,
            loaded=counts["loaded"],
            cached_bars=counts["cached"],
            fetched_bars=counts["fetched"],
            failed=tuple(failures),
        )

    # -- backfill internals -------------------------------------------------------------

    async def _backfill_series(
        self, symbol: str, tf: str, need: int, cache: KlineCache | None
    ) -> tuple[list[Kline], int, int]:
        """One series: (klines for ``on_series``, cached bars used, bars fetched)."""
        length = interval_ms(tf)
        context = f"backfill {symbol.upper()} {tf}"
        market_id = await self._market_id(symbol, context)
        cached: list[Kline] = []
        if cache is not None:
            cached = await asyncio.to_thread(cache.load, market_id, tf)
        now = await self._server_now(context)
        # A cache written by a replay of a later time may hold candles after "now".
        cached = [k for k in cached if k.close_time < now]
        current_open = period_open(now, tf)
        window_start = current_open - need * length
        since = _resume_from(cached, window_start, length)

        first_fetch = since
        fetched: list[Kline] = []
        max_pages = (current_open - since) // (BACKFILL_PAGE_LIMIT * length) + 3
        for _ in range(max_pages):
            expected = max(0, (current_open - since) // length) + 1
            limit = min(BACKFILL_PAGE_LIMIT, expected + 1)  # +1: the server clock moves on
            page = await self._fetch_kline_rows(market_id, tf, since, limit, context)
            page = [k for k in page if k.open_time >= since]
            fetched.extend(page)
            if len(page) < limit:
                break
            since = page[-1].open_time + length
        mark_closed(fetched, now)

        closed_new = [k for k in fetched if k.closed]
        if cache is not None and closed_new:
            try:
                await asyncio.to_thread(cache.merge, market_id, tf, closed_new)
            except OSError as exc:
                # The cache is an optimisation: the series is still complete in memory.
                logger.warning("kline cache write failed for %s %s: %s", market_id, tf, exc)
        by_open = {k.open_time: k for k in cached}
        by_open.update((k.open_time, k) for k in closed_new)  # the REST value wins
        merged = [by_open[t] for t in sorted(by_open)]
        result = merged[-need:] if need else []
        cached_used = sum(1 for k in result if k.open_time < first_fetch)
        if fetched and not fetched[-1].closed:
            result.append(fetched[-1])
        return result, cached_used, len(fetched)

    # -- requests --------------------------------------------------------------------------

    async def _fetch_kline_rows(
        self, market_id: str, interval: str, since_ms: int | None, limit: int, context: str
    ) -> list[Kline]:
        params: dict[str, Any] = {"symbol": market_id, "interval": interval, "limit": limit}
        if since_ms is not None:
            params["startTime"] = since_ms
        raw = await self._call(
            "/fapi/v1/klines", lambda: self._exchange.fapiPublicGetKlines(params), context=context
        )
        return parse_kline_rows(
            raw, market_id, interval, f"{context}: GET {self.rest_url}/fapi/v1/klines"
        )

    async def _server_now(self, context: str) -> int:
        """A lower bound of the server time: a sample at most ``server_time_max_age_s`` old."""
        async with self._time_lock:
            sample = self._time_sample
            if sample is not None and time.monotonic() - sample[1] <= self._time_max_age_s:
                return sample[0]
            return await self.server_time(context=context)

    async def _load_markets(self, *, reload: bool, context: str) -> dict[str, Any]:
        markets = await self._call(
            "/fapi/v1/exchangeInfo", lambda: self._exchange.load_markets(reload), context=context
        )
        self._markets_loaded = True
        return dict(markets)

    async def _market_id(self, symbol: str, context: str) -> str:
        """Binance id of ``symbol`` after checking it is a linear market of the exchange."""
        if not self._markets_loaded:
            await self._load_markets(reload=False, context=context)
        symbol = symbol.upper()
        candidates = self._exchange.markets_by_id.get(symbol) or []
        if not any(m.get("linear") for m in candidates):
            raise RestError(
                f"{context}: unknown symbol {symbol} (not in {self.rest_url}/fapi/v1/exchangeInfo)"
            )
        return symbol

    async def _call(self, path: str, make: Callable[[], Awaitable[T]], *, context: str) -> T:
        """Run one ccxt call to ``path`` with the retry policy (see the module docstring).

        Error messages read ``"<context>: GET <url><path> failed after N attempts: <cause>"``.
        """
        if self._closed:
            raise RestError(f"{context}: the REST client is closed")
        where = f"{context}: GET {self.rest_url}{path}"
        attempt = 0
        while True:
            try:
                return await make()
            except _NotOffered as exc:
                raise RestUnavailable(
                    f"{where}: not offered by the server (HTTP 404): {exc.detail}",
                    path=exc.path,
                    cause=exc.detail,
                ) from None
            except (ccxt_async.DDoSProtection, ccxt_async.RateLimitExceeded) as exc:
                # The response hook has normally set the cooldown already; make sure of it.
                if not self.budget.cooling_down():
                    self.budget.cooldown_for(DEFAULT_429_COOLDOWN_S, f"rate limited: {exc}")
                logger.info("%s rate limited; retrying after the cooldown", where)
            except ccxt_async.OperationFailed as exc:
                # NetworkError, RequestTimeout, ExchangeNotAvailable (5xx) and Binance's
                # -1001 "Internal error": transient by ccxt's classification.
                attempt += 1
                if attempt > self._max_retries:
                    raise RestError(
                        f"{where} failed after {attempt} attempts: {_describe(exc)}",
                        cause=_root_cause(exc),
                    ) from None
                delay = min(self._backoff_max_s, self._backoff_s * 2 ** (attempt - 1))
                logger.info("%s: %s; retry %d in %.1f s", where, _describe(exc), attempt, delay)
                await asyncio.sleep(delay)
            except ccxt_async.BaseError as exc:
                raise RestError(f"{where} rejected: {_describe(exc)}") from None

    # -- ccxt instrumentation --------------------------------------------------------------

    def _instrument(self, exchange: Any) -> None:
        """Route every request of ``exchange`` through the budget and observe each response.

        ccxt's own throttle is turned off: the weight budget replaces it, and two limiters
        in series would only add latency.
        """
        exchange.enableRateLimit = False
        send = exchange.fetch
        on_response = exchange.on_rest_response

        async def gated_fetch(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            ticket = await self.budget.acquire(request_weight(url))
            self.requests_sent += 1
            try:
                return await send(url, method, headers, body)
            finally:
                self.budget.settle(ticket)

        def observed_response(
            code: int,
            reason: str,
            url: str,
            method: str,
            response_headers: Mapping[str, str],
            response_body: str,
            request_headers: Any,
            request_body: Any,
        ) -> Any:
            self._on_response(code, url, response_headers, response_body)
            return on_response(
                code,
                reason,
                url,
                method,
                response_headers,
                response_body,
                request_headers,
                request_body,
            )

        exchange.fetch = gated_fetch
        exchange.on_rest_response = observed_response

    def _on_response(self, code: int, url: str, headers: Mapping[str, str], body: str) -> None:
        for key, value in headers.items():
            if key.lower() == USED_WEIGHT_HEADER:
                try:
                    self.budget.observe_used_weight(int(value))
                except ValueError:
                    logger.warning("bad %s header %r from %s", key, value, url)
                break
        if code == 404:
            # ccxt maps 404 to ExchangeNotAvailable, which the retry policy would retry;
            # an endpoint the server does not have will not appear by asking again.
            raise _NotOffered(urlsplit(url).path, _error_msg(body) or "HTTP 404")
        if code not in (418, 429):
            return
        path = urlsplit(url).path
        retry_after = parse_retry_after(headers)
        if code == 429:
            seconds = retry_after if retry_after is not None else DEFAULT_429_COOLDOWN_S
            reason = f"429 rate limit on {path}, Retry-After {seconds:g} s"
        else:
            candidates = [retry_after] if retry_after is not None else []
            banned_until = parse_banned_until_ms(body or "")
            if banned_until is not None:
                candidates.append(banned_until / 1000 - time.time())
            seconds = max(candidates) if candidates else DEFAULT_418_COOLDOWN_S
            until = datetime.fromtimestamp(time.time() + max(seconds, MIN_COOLDOWN_S), tz=UTC)
            reason = f"418 IP banned (on {path}) until {until:%Y-%m-%d %H:%M:%S}Z"
        seconds = max(seconds, MIN_COOLDOWN_S)
        self.budget.cooldown_for(seconds, reason)
        logger.warning("REST halted for %.1f s: %s", seconds, reason)


class _Row(msgspec.Struct, array_like=True, frozen=True):
    """One ``GET /fapi/v1/klines`` row (Binance array form; trailing fields ignored).

    ``[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, ...]``;
    prices and volumes arrive as decimal strings.
    """

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int
    quote_volume: float
    trades: int


def parse_kline_rows(raw: Any, symbol: str, interval: str, where: str) -> list[Kline]:
    """Klines (all provisionally ``closed``) from a ``GET /fapi/v1/klines`` body: rows of
    ``[open_time ms, open, high, low, close, volume, close_time ms, quote_volume, trades,
    ...]`` (prices in quote currency, numbers or decimal strings); ``where`` names the request
    in errors. The replay server answers in the same format (the backtest warms up from it).

    Raises:
        RestError: when the body is not a list of kline rows.
    """
    try:
        rows = msgspec.convert(raw, list[_Row], strict=False)
    except msgspec.ValidationError as exc:
        raise RestError(f"{where}: malformed klines response ({exc})") from None
    return [
        Kline(
            symbol=symbol,
            interval=interval,
            open_time=row.open_time,
            close_time=row.close_time,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            quote_volume=row.quote_volume,
            trades=row.trades,
            closed=True,
        )
        for row in rows
    ]


class _DepthBody(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/depth`` body; prices and sizes arrive as decimal strings."""

    lastUpdateId: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    E: int = 0
    T: int = 0


class _OpenInterestBody(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/openInterest`` body: ``{"openInterest":"10659.509","symbol":"BTCUSDT",
    "time":1589437530011}``."""

    openInterest: float
    symbol: str
    time: int


def _parse_depth(raw: Any, symbol: str, recv_time: int, where: str) -> DepthSnapshot:
    """A :class:`DepthSnapshot` from a depth response body.

    Raises:
        RestError: when the body is not a depth snapshot, a level is not a positive
            (price, size) pair, or a side is not ordered best first.
    """
    try:
        body = msgspec.convert(raw, _DepthBody, strict=False)
    except msgspec.ValidationError as exc:
        raise RestError(f"{where}: malformed depth response ({exc})") from None
    if body.lastUpdateId < 0:
        raise RestError(f"{where}: negative lastUpdateId {body.lastUpdateId}")
    bids = tuple(body.bids)
    asks = tuple(body.asks)
    for name, side, descending in (("bids", bids, True), ("asks", asks, False)):
        _check_side(side, name, descending, where)
    return DepthSnapshot(
        symbol=symbol,
        last_update_id=body.lastUpdateId,
        bids=bids,
        asks=asks,
        exchange_time=body.E,
        recv_time=recv_time,
    )


def _check_side(levels: Sequence[PriceLevel], name: str, descending: bool, where: str) -> None:
    for i, (price, size) in enumerate(levels):
        if not (price > 0 and size >= 0):  # also rejects NaN
            raise RestError(f"{where}: {name}[{i}] is not a price/size pair: {price!r}, {size!r}")
    prices = [price for price, _ in levels]
    for i in range(1, len(prices)):
        ordered = prices[i] < prices[i - 1] if descending else prices[i] > prices[i - 1]
        if not ordered:
            order = "descending" if descending else "ascending"
            raise RestError(
                f"{where}: {name} not strictly {order} at level {i} "
                f"({prices[i - 1]!r} then {prices[i]!r})"
            )


def _error_msg(body: str) -> str:
    """Binance's ``msg`` from an error body, else the body text itself (shortened)."""
    try:
        decoded = msgspec.json.decode(body or "")
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("msg"), str):
        return str(decoded["msg"])
    text = " ".join((body or "").split())
    return text if len(text) <= 200 else text[:197] + "..."


def mark_closed(klines: list[Kline], now: int) -> list[Kline]:
    """Flag the forming candle: only the last row can be one, when ``close_time ≥ now``.

    ``now`` must be a server time taken *before* the request, so a candle closed by then
    was final when the response was built.
    """
    if klines and klines[-1].close_time >= now:
        klines[-1] = structs.replace(klines[-1], closed=False)
    return klines


def _resume_from(cached: Sequence[Kline], window_start: int, length: int) -> int:
    """Open time to fetch from so that ``[window_start, now]`` is complete.

    The cached candles inside the window are used when they start at ``window_start`` and
    have no holes; otherwise the whole window is fetched again.
    """
    inside = [k.open_time for k in cached if k.open_time >= window_start]
    if not inside or inside[0] != window_start:
        return window_start
    if inside[-1] - inside[0] != (len(inside) - 1) * length:
        return window_start
    return inside[-1] + length


def _usdt_perpetual_ids(markets: Mapping[str, Any], quote: str) -> set[str]:
    ids: set[str] = set()
    for market in markets.values():
        info = market.get("info") or {}
        if (
            market.get("linear")
            and info.get("contractType") == "PERPETUAL"
            and info.get("status") == "TRADING"
            and info.get("quoteAsset") == quote
            and info.get("marginAsset", quote) == quote
        ):
            ids.add(str(market["id"]))
    return ids


def _tick_sizes(markets: Mapping[str, Any], ids: set[str]) -> dict[str, float]:
    """``PRICE_FILTER.tickSize`` per symbol id (quote currency), from exchangeInfo."""
    ticks: dict[str, float] = {}
    for market in markets.values():
        if market.get("id") not in ids:
            continue
        for flt in (market.get("info") or {}).get("filters") or ():
            if flt.get("filterType") == "PRICE_FILTER" and _float(flt.get("tickSize")) > 0:
                ticks[str(market["id"])] = _float(flt.get("tickSize"))
    return ticks


def _onboard_dates(markets: Mapping[str, Any], ids: set[str]) -> dict[str, int]:
    """``onboardDate`` per symbol id (ms UTC), from exchangeInfo; missing or bad ones left out."""
    out: dict[str, int] = {}
    for market in markets.values():
        if market.get("id") not in ids:
            continue
        raw = (market.get("info") or {}).get("onboardDate")
        try:
            onboard = int(str(raw))
        except (TypeError, ValueError):
            continue
        if onboard > 0:
            out[str(market["id"])] = onboard
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _root_cause(exc: BaseException) -> str:
    """Message of the innermost exception in ``exc``'s cause/context chain."""
    root: BaseException = exc
    seen = {id(exc)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    return " ".join(str(root).split()) or type(root).__name__


def _describe(exc: BaseException) -> str:
    """One line: the exception, then its root cause when that says more.

    ccxt's ``ExchangeNotAvailable`` reads "binanceusdm GET <url>" and keeps the reason
    (DNS failure, connection refused, TLS error) in its ``__cause__``/``__context__``.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    cause = _root_cause(exc)
    if cause not in text:
        text = f"{cause} ({text})"
    return text if len(text) <= 300 else text[:297] + "..."
