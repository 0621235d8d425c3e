"""Binance REST request-weight budget and the global 429/418 cooldown.

Binance USDⓈ-M limits REST traffic by *request weight* per IP: 2400 per minute, shared with
COIN-M since the CM–UM integration (FEEDS.md §1.7). Every response carries the weight used
so far in the current minute (``X-MBX-USED-WEIGHT-1M``). Exceeding it returns HTTP 429 with
``Retry-After`` (seconds); ignoring 429s earns an automatic IP ban, HTTP 418 with body
``{"code":-1003,"msg":"Way too much request weight used; IP banned until <ms>..."}``, from
2 minutes to 3 days. The rule (FEEDS.md §4 items 11 and 30): stay under ~70 % of the limit,
and after a 429/418 stop *all* REST traffic until the cooldown ends.

:class:`WeightBudget` is that rule: every request awaits :meth:`WeightBudget.acquire` with its
weight (:func:`request_weight`) right before it is sent. Given a state file, it also keeps
the cooldown across restarts (:mod:`feeds.cooldown_state`), so a restart during a ban does
not hit Binance again and extend it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import msgspec

from feeds.cooldown_state import CooldownRecord, load_cooldown, save_cooldown

logger = logging.getLogger(__name__)

BINANCE_WEIGHT_LIMIT_1M = 2400
"""Binance USDⓈ-M ``REQUEST_WEIGHT`` limit per minute per IP (exchangeInfo ``rateLimits``)."""

DEFAULT_429_COOLDOWN_S = 60.0
"""Cooldown after a 429 without ``Retry-After``: the weight window is one minute."""

DEFAULT_418_COOLDOWN_S = 120.0
"""Cooldown after a 418 with neither ``Retry-After`` nor a ban time: Binance's shortest ban."""

RESTORED_SUFFIX = " (restored from the last run)"
"""Appended to the reason of a cooldown read back from the state file."""

_BANNED_UNTIL = re.compile(r"banned until (\d{12,})", re.IGNORECASE)


class BudgetState(msgspec.Struct, frozen=True, kw_only=True):
    """Snapshot of the REST budget for the status bar.

    Attributes:
        used: Weight counted in the current rolling window (local count, raised to the
            server's ``X-MBX-USED-WEIGHT-1M`` when that is higher).
        budget: Weight perpscope allows itself per window (``limit × fraction``).
        limit: The exchange's weight limit per window.
        server_used: Latest ``X-MBX-USED-WEIGHT-1M`` seen, ``None`` before any.
        waiting: Requests currently waiting for budget or for the cooldown.
        cooling_down: True while REST is halted after a 429/418.
        cooldown_remaining_s: Seconds until the halt ends (0 when not cooling down).
        cooldown_until_ms: Wall-clock end of the halt, ms UTC (0 when not cooling down).
        reason: Why REST is halted (``"429 Too Many Requests, Retry-After 2 s"``), else ``""``.
    """

    used: int
    budget: int
    limit: int
    server_used: int | None
    waiting: int
    cooling_down: bool
    cooldown_remaining_s: float
    cooldown_until_ms: int
    reason: str


class WeightTicket:
    """One request counted by a :class:`WeightBudget` (returned by ``acquire``).

    Attributes:
        weight: The request's weight.
        time: When it counts from: acquire time while in flight, response time once settled
            (monotonic seconds, the budget's clock).
        settled: True once :meth:`WeightBudget.settle` was called.
    """

    __slots__ = ("settled", "time", "weight")

    def __init__(self, weight: int, time_s: float, *, settled: bool = False) -> None:
        self.weight = weight
        self.time = time_s
        self.settled = settled


class WeightBudget:
    """Rolling-window REST weight limiter with a global cooldown.

    A request counts from :meth:`acquire` until ``window_s`` after its response
    (:meth:`settle`). The exchange counts it when it *arrives*, somewhere in between, so
    this never under-counts a window even when connecting takes a while. A request that is
    never settled counts for two windows after it was acquired.

    Args:
        limit_per_min: The exchange's weight limit per window (Binance: 2400 per minute).
        fraction: Fraction of the limit perpscope may use (0 < fraction ≤ 1; default 0.7).
        window_s: Window length in seconds. 60 for Binance; tests shorten it. The server's
            1-minute count (:meth:`observe_used_weight`) is only reconciled when the window
            is the exchange's 60 s, since a count over another span is not comparable.
        clock: Monotonic clock in seconds (injectable for tests).
        state_path: File that keeps the cooldown across restarts (see
            :mod:`feeds.cooldown_state`): every cooldown started or extended is saved there
            as a wall-clock end, and one still in force when the budget is created is
            restored, its reason ending in :data:`RESTORED_SUFFIX`. ``None`` (tests,
            replays) reads and writes nothing. A bad file is reported and ignored, never
            raised.
        wall_clock: Wall clock in seconds since the epoch (UTC), used to convert cooldown
            ends between ``clock`` and the ms UTC of :attr:`state` and the state file.

    Raises:
        ValueError: on a non-positive limit or window, or a fraction outside (0, 1].
    """

    def __init__(
        self,
        limit_per_min: int = BINANCE_WEIGHT_LIMIT_1M,
        fraction: float = 0.7,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        state_path: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if limit_per_min < 1:
            raise ValueError(f"limit_per_min must be ≥ 1, got {limit_per_min}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.limit = limit_per_min
        self.budget = max(1, int(limit_per_min * fraction))
        self.window_s = window_s
        self._clock = clock
        self._tickets: list[WeightTicket] = []
        self._server_used: int | None = None
        self._cooldown_until = 0.0
        self._cooldown_reason = ""
        self._lock = asyncio.Lock()
        self._settled = asyncio.Event()
        self._waiting = 0
        self._wall_clock = wall_clock
        self._state_path = state_path
        if state_path is not None:
            self._restore(state_path)

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock (seconds) the budget and cooldown times are expressed in."""
        return self._clock

    def used(self) -> int:
        """Weight counted in the rolling window ending now (in-flight requests included)."""
        self._expire(self._clock())
        return sum(t.weight for t in self._tickets)

    def cooling_down(self) -> bool:
        """True while a 429/418 cooldown is in force."""
        return self._clock() < self._cooldown_until

    async def acquire(self, weight: int) -> WeightTicket:
        """Wait until a request of ``weight`` may be sent, then count it.

        Waits first for any cooldown to end, then for the rolling window to have room for
        ``weight`` within the budget. Waiters are served in arrival order. A request heavier
        than the whole budget is let through once nothing else is counted (it could never
        fit).

        Returns:
            The request's ticket; pass it to :meth:`settle` when the response arrives.

        Raises:
            ValueError: if ``weight`` is negative.
        """
        if weight < 0:
            raise ValueError(f"weight must be ≥ 0, got {weight}")
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    now = self._clock()
                    if now < self._cooldown_until:
                        await asyncio.sleep(self._cooldown_until - now)
                        continue
                    wait = self._wait_for_room(now, weight)
                    if wait is not None and wait <= 0:
                        ticket = WeightTicket(weight, now)
                        self._tickets.append(ticket)
                        return ticket
                    # Room comes when a settled request ages out or an in-flight one settles.
                    self._settled.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._settled.wait(), wait)
        finally:
            self._waiting -= 1

    def settle(self, ticket: WeightTicket) -> None:
        """Mark ``ticket``'s response as received: it now counts until ``window_s`` later."""
        if not ticket.settled:
            ticket.settled = True
            ticket.time = self._clock()
            self._settled.set()

    def observe_used_weight(self, used_1m: int) -> None:
        """Reconcile with the server's ``X-MBX-USED-WEIGHT-1M`` count.

        The server's count is the truth when it is higher than the local one (another
        process on the same IP, COIN-M traffic, requests made before a restart): the
        difference is counted as used now, so it ages out of the window like any request.
        """
        if used_1m < 0:
            return
        self._server_used = used_1m
        if self.window_s != 60.0:
            return
        used = self.used()
        if used_1m > used:
            self._tickets.append(WeightTicket(used_1m - used, self._clock(), settled=True))

    def cooldown_until(self, t_monotonic: float, reason: str) -> None:
        """Halt every request until ``t_monotonic`` (seconds, same clock as the budget).

        An earlier end never shortens a cooldown already in force. With a ``state_path``,
        a new or extended cooldown is saved there (ms UTC end and ``reason``) before this
        returns; a failed write is logged, not raised.
        """
        if t_monotonic > self._cooldown_until:
            self._cooldown_until = t_monotonic
            self._cooldown_reason = reason
            if self._state_path is not None:
                now_ms = self._wall_ms()
                # Round the end up: a restored cooldown may end a millisecond late, never early.
                until_ms = now_ms + math.ceil((t_monotonic - self._clock()) * 1000)
                save_cooldown(
                    self._state_path,
                    CooldownRecord(until_ms=until_ms, reason=reason, saved_ms=now_ms),
                )

    def cooldown_for(self, seconds: float, reason: str) -> None:
        """Halt every request for ``seconds`` from now (see :meth:`cooldown_until`)."""
        self.cooldown_until(self._clock() + max(0.0, seconds), reason)

    @property
    def state(self) -> BudgetState:
        """Current budget use and cooldown, for the UI."""
        now = self._clock()
        remaining = max(0.0, self._cooldown_until - now)
        return BudgetState(
            used=self.used(),
            budget=self.budget,
            limit=self.limit,
            server_used=self._server_used,
            waiting=self._waiting,
            cooling_down=remaining > 0,
            cooldown_remaining_s=remaining,
            cooldown_until_ms=self._wall_ms() + round(remaining * 1000) if remaining else 0,
            reason=self._cooldown_reason if remaining else "",
        )

    def _wall_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _restore(self, path: Path) -> None:
        """Start in the cooldown saved at ``path`` by an earlier run, if still in force."""
        now_ms = self._wall_ms()
        record = load_cooldown(path, now_ms)
        if record is None:
            return
        # Wall-clock end → this process's monotonic clock (the only clock the budget uses).
        remaining_s = (record.until_ms - now_ms) / 1000
        self._cooldown_until = self._clock() + remaining_s
        self._cooldown_reason = record.reason + RESTORED_SUFFIX
        logger.warning(
            "REST halted for %.1f s more, restored from %s: %s", remaining_s, path, record.reason
        )

    def _expiry(self, ticket: WeightTicket) -> float:
        return ticket.time + (self.window_s if ticket.settled else 2 * self.window_s)

    def _expire(self, now: float) -> None:
        self._tickets = [t for t in self._tickets if self._expiry(t) > now]

    def _wait_for_room(self, now: float, weight: int) -> float | None:
        """Seconds until ``weight`` fits (≤ 0: now; ``None``: once a request settles)."""
        self._expire(now)
        used = sum(t.weight for t in self._tickets)
        if used + weight <= self.budget or not self._tickets:
            return 0.0
        # Walk the tickets in expiry order until enough weight has aged out.
        excess = used + weight - self.budget if weight <= self.budget else used
        freed = 0
        for ticket in sorted(self._tickets, key=self._expiry):
            freed += ticket.weight
            if freed >= excess:
                # An in-flight ticket expires sooner once settled: wake on settle too.
                return self._expiry(ticket) - now
        return None  # unreachable: all tickets together free ``used`` ≥ excess


def kline_weight(limit: int) -> int:
    """Weight of ``GET /fapi/v1/klines`` for ``limit`` rows.

    Source: Binance USDⓈ-M "Kline/Candlestick Data": [1,100) → 1, [100,500) → 2,
    [500,1000] → 5, > 1000 → 10 (FEEDS.md §1.7).
    """
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def depth_weight(limit: int) -> int:
    """Weight of ``GET /fapi/v1/depth`` for ``limit`` levels.

    Source: Binance USDⓈ-M "Order Book": 5/10/20/50 → 2, 100 → 5, 500 → 10, 1000 → 20.
    """
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


OPEN_INTEREST_WEIGHT = 1
"""Weight of ``GET /fapi/v1/openInterest`` (Binance USDⓈ-M "Open Interest": weight 1)."""

_KLINE_PATHS = ("klines", "continuousKlines", "indexPriceKlines", "markPriceKlines")


def request_weight(path: str, params: Mapping[str, str] | None = None) -> int:
    """Request weight of a Binance USDⓈ-M public REST call.

    Args:
        path: URL path (``/fapi/v1/klines``) or full URL; a query string in it is read too.
        params: Query parameters (``{"limit": "1000"}``), overriding those in ``path``.

    Returns:
        The weight Binance charges: klines and depth by ``limit`` (defaults 500), ticker/24hr
        40 without ``symbol`` (1 with), premiumIndex 10 without ``symbol`` (1 with),
        openInterest 1, exchangeInfo, time and anything else 1.
    """
    split = urlsplit(path)
    query = dict(parse_qsl(split.query))
    if params:
        query.update({key: str(value) for key, value in params.items()})
    endpoint = split.path.rstrip("/").rsplit("/", 1)[-1]
    if endpoint in _KLINE_PATHS:
        return kline_weight(_int(query.get("limit"), 500))
    if endpoint == "depth":
        return depth_weight(_int(query.get("limit"), 500))
    if endpoint == "24hr":
        return 1 if "symbol" in query else 40
    if endpoint == "premiumIndex":
        return 1 if "symbol" in query else 10
    if endpoint == "openInterest":
        return OPEN_INTEREST_WEIGHT
    return 1


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds from response headers (case-insensitive), if valid."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def parse_banned_until_ms(body: str) -> int | None:
    """Ban end (ms UTC) from a Binance -1003 message (``"IP banned until 1700000000000"``)."""
    match = _BANNED_UNTIL.search(body)
    return int(match.group(1)) if match else None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
