"""OpenInterestPoller over the real HTTP path (BinanceRest → ccxt → loopback aiohttp server),
with a fast injectable clock: staggering, re-arming after a slow round, per-symbol errors,
the replay's missing endpoint and the disabled setting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from aiohttp import web

from feeds.config import EndpointConfig, FeedConfig, OpenInterestConfig
from feeds.events import OpenInterest
from feeds.open_interest import OpenInterestPoller
from feeds.replay.rest_api import OPEN_INTEREST_NOT_RECORDED
from feeds.replay.server import ReplayServer
from feeds.rest import BinanceRest

CAPTURE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "binance-usdm"
    / "ws"
    / "cryptofeed"
    / "BINANCE_FUTURES.ws.1.0"
)

# The one GET /fapi/v1/openInterest response body used here is Binance's documented
# USDⓈ-M "Open Interest" response, as reproduced in bmoscon/cryptofeed
# cryptofeed/exchanges/binance_futures.py (BinanceFutures._open_interest docstring, commit
# 01236f9221eaab7cf13500be6039c2ecdb51754a). It is a wire-format example, not market data
# of the replayed period. No recorded response for any other symbol was found, so the test
# server lists only BTCUSDT and answers others as Binance does for an unknown symbol.
OI_BODY = {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}
OI_EVENT = OpenInterest(symbol="BTCUSDT", open_interest=10659.509, time=1589437530011)


class FakeClock:
    """Monotonic seconds that only move when the poller sleeps (or a test says so).

    A sleep that would reach ``stop_at`` blocks forever instead, so a test runs a known
    number of rounds and then cancels the poller.
    """

    def __init__(self, stop_at: float) -> None:
        self.now = 1000.0
        self.stop_at = stop_at
        self.blocked = False

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.now + seconds >= self.stop_at:
            self.blocked = True
            await asyncio.Event().wait()
        self.now += seconds
        await asyncio.sleep(0)


class OiServer:
    """Loopback ``/fapi/v1/openInterest``: BTCUSDT answers OI_BODY, anything else -1121.

    Attributes:
        requests: (fake clock time, symbol) per request, in arrival order.
        slow: seconds the fake clock advances while the n-th request is answered.
        max_in_flight: most requests being answered at once.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[tuple[float, str]] = []
        self.slow: dict[int, float] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        self.requests.append((self.clock(), symbol))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            self.clock.now += self.slow.get(len(self.requests), 0.0)
        finally:
            self.in_flight -= 1
        headers = {"X-MBX-USED-WEIGHT-1M": str(len(self.requests))}
        if symbol == "BTCUSDT":
            return web.json_response(OI_BODY, headers=headers)
        return web.json_response(
            {"code": -1121, "msg": "Invalid symbol."}, status=400, headers=headers
        )


@contextlib.asynccontextmanager
async def serving(server: OiServer) -> AsyncIterator[BinanceRest]:
    """Run ``server`` on 127.0.0.1 (port 0) and yield a BinanceRest pointed at it."""
    app = web.Application()
    app.router.add_get("/fapi/v1/openInterest", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    rest = BinanceRest(EndpointConfig(rest_url=f"http://127.0.0.1:{port}"), FeedConfig())
    try:
        yield rest
    finally:
        await rest.close()
        await runner.cleanup()


async def run_until_blocked(
    poller: OpenInterestPoller, clock: FakeClock, sink: list[OpenInterest]
) -> None:
    """Run the poller until it sleeps past ``clock.stop_at`` (it then blocks), then cancel."""
    task = asyncio.create_task(poller.run(sink.append))
    try:
        async with asyncio.timeout(5):
            while not (clock.blocked or task.done()):  # noqa: ASYNC110 - fake clock state
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rounds_of(lists: list[list[str]]) -> Callable[[], Sequence[str]]:
    """Symbols callable returning ``lists[0]``, ``lists[1]``, ... then the last one again."""
    calls = iter(lists)
    last: list[str] = []

    def symbols() -> Sequence[str]:
        nonlocal last
        last = next(calls, last)
        return last

    return symbols


async def test_polls_are_staggered_and_failures_do_not_stop_the_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(stop_at=1000.0 + 120.0)
    server = OiServer(clock)
    got: list[OpenInterest] = []
    symbols = ["BTCUSDT", "ETHUSDT", "solusdt", "XRPUSDT", "BTCUSDT"]  # dupes/case folded
    caplog.set_level(logging.WARNING, logger="feeds.open_interest")
    async with serving(server) as rest:
        poller = OpenInterestPoller(
            rest.open_interest,
            OpenInterestConfig(interval_s=60),
            rounds_of([symbols, ["ETHUSDT", "BTCUSDT"]]),  # re-read each round
            clock=clock,
            sleep=clock.sleep,
            log_every=3,
        )
        await run_until_blocked(poller, clock, got)
    # Round 1: 4 symbols 15 s apart; round 2 (new list) at +60 s: 2 symbols 30 s apart.
    assert server.requests == [
        (1000.0, "BTCUSDT"),
        (1015.0, "ETHUSDT"),
        (1030.0, "SOLUSDT"),
        (1045.0, "XRPUSDT"),
        (1060.0, "ETHUSDT"),
        (1090.0, "BTCUSDT"),
    ]
    assert server.max_in_flight == 1
    assert [(e.symbol, e.open_interest, e.time) for e in got] == [
        (OI_EVENT.symbol, OI_EVENT.open_interest, OI_EVENT.time)
    ] * 2
    assert all(e.recv_time > 0 for e in got)
    status = poller.status
    assert (status.state, status.polls, status.errors, status.rounds) == ("polling", 2, 4, 2)
    assert status.last_time == OI_BODY["time"] and status.reason == ""
    assert "Invalid symbol" in status.last_error and "ETHUSDT" in status.last_error
    # Logged: the first failure and every 3rd one (failures 1 and 3 of 4).
    logged = [r.getMessage() for r in caplog.records if "open interest poll" in r.getMessage()]
    assert len(logged) == 2
    assert "ETHUSDT failed (1 failure(s)" in logged[0] and "XRPUSDT failed (3" in logged[1]


async def test_next_round_is_armed_only_after_a_slow_round_finished() -> None:
    clock = FakeClock(stop_at=1000.0 + 40.0)
    server = OiServer(clock)
    server.slow = {1: 25.0}  # the first request takes 25 s of a 10 s interval
    got: list[OpenInterest] = []
    async with serving(server) as rest:
        poller = OpenInterestPoller(
            rest.open_interest,
            OpenInterestConfig(interval_s=10),
            lambda: ["BTCUSDT", "ETHUSDT"],
            clock=clock,
            sleep=clock.sleep,
        )
        await run_until_blocked(poller, clock, got)
    assert server.requests == [
        (1000.0, "BTCUSDT"),  # slow: done at 1025
        (1025.0, "ETHUSDT"),  # its slot (1005) has passed: polled at once
        (1025.0, "BTCUSDT"),  # round 2 armed when round 1 ended (not at 1010, not twice)
        (1030.0, "ETHUSDT"),
        (1035.0, "BTCUSDT"),  # round 3 on the interval again
    ]
    assert server.max_in_flight == 1
    assert poller.status.rounds == 2 and poller.status.polls == 3


async def test_replay_without_open_interest_stops_polling_with_the_reason() -> None:
    replay = ReplayServer(CAPTURE, speed=None)
    await replay.start()
    rest = BinanceRest(EndpointConfig(rest_url=replay.rest_url), FeedConfig())
    clock = FakeClock(stop_at=1000.0 + 3600.0)
    poller = OpenInterestPoller(
        rest.open_interest,
        OpenInterestConfig(interval_s=5),
        lambda: replay.symbols,
        clock=clock,
        sleep=clock.sleep,
    )
    got: list[OpenInterest] = []
    try:
        async with asyncio.timeout(5):
            await poller.run(got.append)  # returns by itself
    finally:
        await rest.close()
        await replay.stop()
    status = poller.status
    assert status.state == "unavailable"
    assert status.reason == OPEN_INTEREST_NOT_RECORDED
    assert (status.polls, status.errors, got) == (0, 0, [])
    assert [path for _, path, _ in replay.rest_log] == ["/fapi/v1/openInterest"]


async def test_disabled_poller_never_asks() -> None:
    clock = FakeClock(stop_at=2000.0)
    server = OiServer(clock)
    async with serving(server) as rest:
        poller = OpenInterestPoller(
            rest.open_interest,
            OpenInterestConfig(enabled=False),
            lambda: ["BTCUSDT"],
            clock=clock,
            sleep=clock.sleep,
        )
        async with asyncio.timeout(2):
            await poller.run(lambda e: None)
        assert poller.status.state == "disabled" and "disabled" in poller.status.reason
        assert server.requests == []
        with pytest.raises(ValueError, match="log_every"):
            OpenInterestPoller(rest.open_interest, OpenInterestConfig(), lambda: [], log_every=0)
