"""Rate limits (429/418), the weight budget and network failures on the real HTTP path:
ccxt → loopback replay server with injected faults; assertions read the server's request log."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import aiohttp
import pytest
from rest_support import DAY0_MS, MakeRest, StartReplay

from feeds.config import UniverseConfig
from feeds.events import Kline
from feeds.ratelimit import BudgetState, WeightBudget
from feeds.rest import RestError

# Binance USDⓈ-M request weights (FEEDS.md §1.7), written out here independently of
# feeds.ratelimit so the test checks the limiter against the documented table.


def documented_weight(path: str, query: dict[str, str]) -> int:
    if path == "/fapi/v1/klines":
        limit = int(query.get("limit", "500"))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path == "/fapi/v1/ticker/24hr" and "symbol" not in query:
        return 40
    return 1


def requests_between(
    log: list[tuple[float, str, dict[str, str]]], start: float, end: float
) -> list[tuple[float, str, dict[str, str]]]:
    return [entry for entry in log if start < entry[0] < end]


async def sample_state(budget: WeightBudget, after_s: float) -> BudgetState:
    await asyncio.sleep(after_s)
    return budget.state


async def test_429_halts_all_rest_for_retry_after_then_succeeds(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url, concurrency=4)
    await rest.universe(UniverseConfig(mode="all"))  # markets loaded before the burst
    server.inject_rest_fault("/fapi/v1/klines", 429, headers={"Retry-After": "2"})
    mark = len(server.rest_log)
    got: dict[tuple[str, str], list[Kline]] = {}

    async with asyncio.timeout(15):
        probe = asyncio.create_task(sample_state(rest.budget, 1.0))
        result = await rest.backfill(
            ["BTCUSDT", "ETHUSDT", "ADAUSDT"],
            ["5m", "1h"],
            lambda tf: 50,
            cache=None,
            on_series=lambda s, tf, k: got.__setitem__((s, tf), k),
        )
        during = await probe

    assert result.failed == ()
    assert len(got) == 6
    assert all(len(k) == 51 for k in got.values())  # 50 closed + the forming candle

    log = server.rest_log[mark:]
    faulted = next(entry for entry in log if entry[1] == "/fapi/v1/klines")
    t429 = faulted[0]
    # In-flight requests sent before the 429 reached the client may land just after it;
    # then nothing at all (klines, time, anything) until Retry-After has passed.
    assert requests_between(log, t429 + 0.1, t429 + 2.0) == []
    retried = [e for e in log if e[0] >= t429 + 2.0 and e[1:] == faulted[1:]]
    assert len(retried) == 1  # the very same request was sent again, once
    assert during.cooling_down
    assert during.reason.startswith("429")
    assert 0 < during.cooldown_remaining_s <= 2.0
    assert not rest.budget.state.cooling_down


async def test_418_ban_halts_until_the_ban_time(replay: StartReplay, make_rest: MakeRest) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    await rest.universe(UniverseConfig(mode="all"))
    banned_until = int(time.time() * 1000) + 2500
    server.inject_rest_fault(
        "/fapi/v1/klines",
        418,
        body={
            "code": -1003,
            "msg": f"Way too much request weight used; IP banned until {banned_until}. "
            "Please use the websocket for live updates to avoid bans.",
        },
    )
    mark = len(server.rest_log)
    started = time.monotonic()
    async with asyncio.timeout(15):
        probe = asyncio.create_task(sample_state(rest.budget, 1.0))
        klines = await rest.klines("BTCUSDT", "5m", limit=20)
        during = await probe
    assert time.time() * 1000 >= banned_until - 20
    assert 2.3 < time.monotonic() - started < 5.0
    assert len(klines) == 20

    log = server.rest_log[mark:]
    t418 = next(e[0] for e in log if e[1] == "/fapi/v1/klines")
    assert requests_between(log, t418 + 0.05, t418 + 2.3) == []
    assert during.cooling_down
    assert during.reason.startswith("418")
    assert abs(during.cooldown_until_ms - banned_until) < 250


async def test_weight_budget_holds_in_every_window(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    # Scaled-down limit and window (20 weight per 1 s) so the test is quick; the HTTP path
    # is the real one.
    budget = WeightBudget(limit_per_min=20, fraction=1.0, window_s=1.0)
    rest = make_rest(server.rest_url, budget=budget, concurrency=8)
    since0 = DAY0_MS - 2 * 86_400_000
    mark = len(server.rest_log)
    started = time.monotonic()
    async with asyncio.timeout(20):
        results = await asyncio.gather(
            *(
                rest.klines("BTCUSDT", "5m", since_ms=since0 + i * 300_000, limit=150)
                for i in range(25)
            )
        )
    elapsed = time.monotonic() - started
    assert all(len(r) == 150 for r in results)

    log = server.rest_log[mark:]
    weights = [(t, documented_weight(path, q)) for t, path, q in log]
    total = sum(w for _, w in weights)
    assert total >= 50  # 25 × weight 2, plus exchangeInfo and time
    # Every 1 s window of arrival times at the server stays within the budget...
    for t0, _ in weights:
        in_window = sum(w for t, w in weights if t0 <= t < t0 + 1.0)
        assert in_window <= 20, f"window at {t0 - started:.2f}s used {in_window}"
    # ...which is only possible by spreading the burst over ≥ 2 windows.
    assert elapsed >= 2.0


async def test_server_used_weight_header_is_the_truth_when_higher(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    await rest.universe(UniverseConfig(mode="top", top_n=2))  # exchangeInfo 1 + tickers 40
    state = rest.budget.state
    assert state.server_used == 41
    assert state.used == 41
    assert state.budget == 1680
    # Another client on the same IP spends 40 more; our next response reports it.
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.rest_url + "/fapi/v1/ticker/24hr") as response,
    ):
        assert response.status == 200
    await rest.server_time()
    assert rest.budget.state.server_used == 82
    assert rest.budget.state.used == 82  # local count alone would be 42


async def test_server_errors_are_retried_with_backoff(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url, retry_backoff_s=0.1)
    await rest.universe(UniverseConfig(mode="all"))
    server.inject_rest_fault("/fapi/v1/klines", 503, count=2)
    mark = len(server.rest_log)
    klines = await rest.klines("ETHUSDT", "1h", limit=5)
    assert len(klines) == 5
    times = [t for t, path, _ in server.rest_log[mark:] if path == "/fapi/v1/klines"]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.1  # backoff 0.1 s, then 0.2 s
    assert times[2] - times[1] >= 0.2


async def test_exchange_rejection_is_not_retried(replay: StartReplay, make_rest: MakeRest) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    await rest.universe(UniverseConfig(mode="all"))
    server.inject_rest_fault(
        "/fapi/v1/klines",
        400,
        body={"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."},
    )
    mark = len(server.rest_log)
    with pytest.raises(RestError, match=r"klines BTCUSDT 5m: GET .*/fapi/v1/klines rejected"):
        await rest.klines("BTCUSDT", "5m", limit=10)
    assert [p for _, p, _ in server.rest_log[mark:]].count("/fapi/v1/klines") == 1


async def test_server_down_gives_a_clear_error_in_bounded_time(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    url = server.rest_url
    rest = make_rest(url, max_retries=2, retry_backoff_s=0.2)
    await rest.universe(UniverseConfig(mode="all"))
    await server.stop()

    started = time.monotonic()
    async with asyncio.timeout(10):
        with pytest.raises(RestError) as info:
            await rest.klines("BTCUSDT", "5m", limit=10)
    elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 3.0  # backoff 0.2 + 0.4 s between 3 attempts
    message = str(info.value)
    assert message.startswith("klines BTCUSDT 5m: GET " + url)
    assert "failed after 3 attempts" in message
    assert "\n" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_backfill_reports_failed_series_and_continues(
    replay: StartReplay, make_rest: MakeRest, caplog: pytest.LogCaptureFixture
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url, concurrency=1, max_retries=1, retry_backoff_s=0.01)
    await rest.universe(UniverseConfig(mode="all"))
    # One series at a time, ETHUSDT first: both of its attempts get a 502, then BTCUSDT's
    # request is answered normally.
    server.inject_rest_fault("/fapi/v1/klines", 502, count=2)
    delivered: list[tuple[str, str]] = []
    progress: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="feeds.rest"):
        async with asyncio.timeout(10):
            result = await rest.backfill(
                ["ETHUSDT", "BTCUSDT"],
                ["1h"],
                lambda tf: 10,
                cache=None,
                on_series=lambda s, tf, k: delivered.append((s, tf)),
                progress=lambda done, total: progress.append((done, total)),
            )
    assert result.series == 2
    assert result.loaded == 1
    assert [(f.symbol, f.interval) for f in result.failed] == [("ETHUSDT", "1h")]
    error = result.failed[0].error
    assert error.startswith("backfill ETHUSDT 1h: GET " + server.rest_url + "/fapi/v1/klines")
    assert "failed after 2 attempts" in error
    assert delivered == [("BTCUSDT", "1h")]
    assert progress == [(1, 2), (2, 2)]
    assert "backfill ETHUSDT 1h" in caplog.text


async def test_close_releases_the_http_session(
    replay: StartReplay, make_rest: MakeRest, caplog: pytest.LogCaptureFixture
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    await rest.server_time()
    assert rest.exchange.session is not None
    await rest.close()
    await rest.close()  # idempotent
    assert rest.exchange.session is None
    with pytest.raises(RestError, match="closed"):
        await rest.klines("BTCUSDT", "5m", limit=5)
    with caplog.at_level(logging.ERROR):
        gc.collect()
        await asyncio.sleep(0)
    assert "Unclosed" not in caplog.text
