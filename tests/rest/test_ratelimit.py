"""WeightBudget, Binance request weights and 429/418 header parsing (no network)."""

from __future__ import annotations

import asyncio
import time

import pytest

from feeds.ratelimit import (
    WeightBudget,
    depth_weight,
    kline_weight,
    parse_banned_until_ms,
    parse_retry_after,
    request_weight,
)


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)],
)
def test_kline_weight(limit: int, weight: int) -> None:
    assert kline_weight(limit) == weight


@pytest.mark.parametrize(
    ("limit", "weight"), [(5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10), (1000, 20)]
)
def test_depth_weight(limit: int, weight: int) -> None:
    assert depth_weight(limit) == weight


@pytest.mark.parametrize(
    ("url", "weight"),
    [
        ("http://127.0.0.1:1/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=1000", 5),
        ("http://127.0.0.1:1/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=1500", 10),
        ("http://127.0.0.1:1/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=42", 1),
        ("http://127.0.0.1:1/fapi/v1/klines?symbol=BTCUSDT&interval=5m", 5),  # default 500
        ("https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000", 20),
        ("https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT", 10),  # default 500
        ("https://fapi.binance.com/fapi/v1/exchangeInfo", 1),
        ("https://fapi.binance.com/fapi/v1/time", 1),
        ("https://fapi.binance.com/fapi/v1/ticker/24hr", 40),
        ("https://fapi.binance.com/fapi/v1/ticker/24hr?symbol=BTCUSDT", 1),
    ],
)
def test_request_weight(url: str, weight: int) -> None:
    assert request_weight(url) == weight


def test_request_weight_params_override_query() -> None:
    assert request_weight("/fapi/v1/klines?limit=10", {"limit": "700"}) == 5


def test_parse_retry_after_and_ban() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    # Binance's -1003 ban message (FEEDS.md §1.7)
    body = (
        '{"code":-1003,"msg":"Way too much request weight used; IP banned until '
        '1700000123456. Please use the websocket for live updates to avoid bans."}'
    )
    assert parse_banned_until_ms(body) == 1_700_000_123_456
    assert parse_banned_until_ms('{"code":-1003,"msg":"Too many requests"}') is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_is_fraction_of_limit() -> None:
    assert WeightBudget().budget == 1680  # 70 % of 2400
    assert WeightBudget(100, 0.5).budget == 50
    with pytest.raises(ValueError, match="fraction"):
        WeightBudget(100, 1.5)
    with pytest.raises(ValueError, match="limit_per_min"):
        WeightBudget(0)


async def test_rolling_window_with_fake_clock() -> None:
    clock = FakeClock()
    budget = WeightBudget(100, 0.5, clock=clock)
    for _ in range(10):
        # 50 = the whole budget, no waiting (the clock never moves)
        budget.settle(await budget.acquire(5))
    assert budget.used() == 50
    clock.now += 59.9
    assert budget.used() == 50
    clock.now += 0.2  # the responses are now older than 60 s
    assert budget.used() == 0


async def test_request_counts_from_acquire_until_a_window_after_its_response() -> None:
    clock = FakeClock()
    budget = WeightBudget(100, 1.0, clock=clock)
    in_flight = await budget.acquire(7)
    clock.now += 100  # no response yet: still counted (for up to two windows)
    assert budget.used() == 7
    clock.now += 21
    assert budget.used() == 0  # never settled: dropped after two windows

    slow = await budget.acquire(3)
    clock.now += 30
    budget.settle(slow)  # response 30 s after the request
    clock.now += 59
    assert budget.used() == 3  # 89 s after acquire, 59 s after the response
    clock.now += 2
    assert budget.used() == 0
    assert in_flight.weight == 7


async def test_server_count_wins_when_higher() -> None:
    clock = FakeClock()
    budget = WeightBudget(2400, 0.7, clock=clock)
    budget.settle(await budget.acquire(5))
    budget.observe_used_weight(3)  # lower than the local count: ignored
    assert budget.used() == 5
    budget.observe_used_weight(900)  # other traffic on this IP
    state = budget.state
    assert state.used == 900
    assert state.server_used == 900
    clock.now += 61
    assert budget.used() == 0


async def test_server_count_ignored_for_non_minute_windows() -> None:
    budget = WeightBudget(40, 1.0, window_s=1.0)
    budget.observe_used_weight(900)
    assert budget.used() == 0
    assert budget.state.server_used == 900


async def test_acquire_waits_for_room() -> None:
    budget = WeightBudget(10, 1.0, window_s=0.4)
    start = time.monotonic()
    budget.settle(await budget.acquire(6))
    await asyncio.sleep(0.2)
    budget.settle(await budget.acquire(4))
    assert time.monotonic() - start < 0.3
    await budget.acquire(3)  # must wait until the first 6 age out, not the 4
    waited = time.monotonic() - start
    assert 0.39 <= waited < 0.8
    assert budget.used() == 7


async def test_request_heavier_than_budget_passes_alone() -> None:
    budget = WeightBudget(10, 1.0, window_s=0.3)
    budget.settle(await budget.acquire(2))
    start = time.monotonic()
    await budget.acquire(25)
    assert 0.25 <= time.monotonic() - start < 1.0


async def test_cooldown_halts_and_never_shortens() -> None:
    budget = WeightBudget(2400, 0.7)
    budget.cooldown_for(0.4, "429 rate limit on /fapi/v1/klines, Retry-After 0.4 s")
    budget.cooldown_for(0.1, "shorter one is ignored")
    state = budget.state
    assert state.cooling_down
    assert state.reason.startswith("429")
    assert 0.3 < state.cooldown_remaining_s <= 0.4
    assert abs(state.cooldown_until_ms - (time.time() + state.cooldown_remaining_s) * 1000) < 50

    start = time.monotonic()
    tickets = await asyncio.gather(*(budget.acquire(1) for _ in range(3)))
    assert [t.weight for t in tickets] == [1, 1, 1]
    assert time.monotonic() - start >= 0.38
    assert not budget.state.cooling_down
    assert budget.state.reason == ""
    assert budget.state.waiting == 0


async def test_waiter_wakes_when_an_in_flight_request_settles() -> None:
    budget = WeightBudget(10, 1.0, window_s=0.5)
    in_flight = await budget.acquire(10)
    start = time.monotonic()
    waiter = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    budget.settle(in_flight)  # response at +0.1 s: room at +0.6 s, not at +1.0 s (2 windows)
    await waiter
    assert 0.58 <= time.monotonic() - start < 0.9
