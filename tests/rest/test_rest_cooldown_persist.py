"""A 429/418 cooldown survives a restart: the real client against the loopback replay server,
with a state file in a temporary data dir; assertions read the server's request log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from rest_support import KLINES_DIR, REPLAY_SYMBOLS, START_MS, MakeRest, StartReplay

from engine.config import EngineConfig
from engine.runner import MarketRunner, ReplayOptions
from feeds.config import EndpointConfig, FeedConfig, UniverseConfig
from feeds.cooldown_state import COOLDOWN_STATE_FILE, CooldownRecord
from feeds.ratelimit import RESTORED_SUFFIX, WeightBudget
from tui.widgets.status_bar import rest_health

BAN_MS = 2000
"""Length of the injected ban: long enough to restart inside it, short enough to wait out."""


def ban_body(until_ms: int) -> dict[str, object]:
    """Binance's 418 body (FEEDS.md §1.7), with the ban end the client must honour."""
    return {
        "code": -1003,
        "msg": f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use the websocket for live updates to avoid bans.",
    }


def write_record(path: Path, until_ms: int, reason: str) -> None:
    # Written by hand, not through feeds.cooldown_state, so the file format is checked too.
    path.write_bytes(
        msgspec.json.encode(
            {"until_ms": until_ms, "reason": reason, "saved_ms": int(time.time() * 1000)}
        )
    )


def read_record(path: Path) -> CooldownRecord:
    return msgspec.json.decode(path.read_bytes(), type=CooldownRecord)


def monotonic_at(wall_ms: int) -> float:
    """``time.monotonic()`` value (the server log's clock) when the wall clock reads
    ``wall_ms``."""
    return time.monotonic() + (wall_ms / 1000 - time.time())


async def wait_for(predicate: Callable[[], bool], limit_s: float) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling a file / server log, bounded
            await asyncio.sleep(0.02)


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()
    ]


async def test_418_ban_is_saved_and_a_restarted_client_waits_it_out(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / COOLDOWN_STATE_FILE
    server = await replay()
    first = make_rest(server.rest_url, cooldown_state=state)
    await first.universe(UniverseConfig(mode="all"))
    assert not state.exists()  # nothing is written without a cooldown
    banned_until = int(time.time() * 1000) + BAN_MS
    server.inject_rest_fault("/fapi/v1/klines", 418, body=ban_body(banned_until))

    # The first run hits the ban, then "crashes" (the user restarts) while it is in force.
    call = asyncio.create_task(first.klines("BTCUSDT", "5m", limit=20))
    try:
        await wait_for(state.exists, 5.0)
    finally:
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await first.close()
    saved = read_record(state)
    assert abs(saved.until_ms - banned_until) <= 5
    assert saved.reason.startswith("418 IP banned (on /fapi/v1/klines)")
    assert int(time.time() * 1000) < banned_until - 500  # the restart is inside the ban

    caplog.set_level(logging.WARNING)
    mark = len(server.rest_log)
    ban_end = monotonic_at(saved.until_ms)
    second = make_rest(server.rest_url, cooldown_state=state)
    restored = second.budget.state
    assert restored.cooling_down
    assert restored.reason == saved.reason + RESTORED_SUFFIX
    assert abs(restored.cooldown_until_ms - banned_until) < 50
    assert warnings_about(caplog, state), "the restore is logged with the file's path"

    async with asyncio.timeout(10):
        await second.universe(UniverseConfig(mode="all"))
        klines = await second.klines("BTCUSDT", "5m", limit=20)
    assert len(klines) == 20
    sent = server.rest_log[mark:]
    assert sent, "requests flow once the ban has ended"
    assert all(entry[0] >= ban_end - 0.01 for entry in sent), [
        (round(t - ban_end, 3), p) for t, p, _ in sent if t < ban_end
    ]
    assert not second.budget.state.cooling_down


async def test_expired_state_is_ignored_and_removed(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path
) -> None:
    state = tmp_path / COOLDOWN_STATE_FILE
    write_record(state, int(time.time() * 1000) - 1000, "418 IP banned (on /fapi/v1/depth)")
    server = await replay()
    rest = make_rest(server.rest_url, cooldown_state=state)
    assert not rest.budget.state.cooling_down
    assert not state.exists()
    started = time.monotonic()
    async with asyncio.timeout(5):
        symbols = await rest.universe(UniverseConfig(mode="all"))
    assert symbols
    assert server.rest_log and server.rest_log[0][0] - started < 1.0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"until_ms": 17', "truncated"),
        (b"", "truncated"),
        (b'{"until_ms": "soon", "reason": "x", "saved_ms": 0}', "Expected `int`"),
        (b"\x00\xffgarbage", "malformed"),
    ],
)
async def test_corrupt_state_warns_once_is_ignored_and_replaced(
    replay: StartReplay,
    make_rest: MakeRest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
    problem: str,
) -> None:
    state = tmp_path / COOLDOWN_STATE_FILE
    state.write_bytes(content)
    server = await replay()
    caplog.set_level(logging.WARNING)
    rest = make_rest(server.rest_url, cooldown_state=state)

    warned = warnings_about(caplog, state)
    assert len(warned) == 1
    assert problem.lower() in warned[0].getMessage().lower()
    assert warned[0].exc_info is None  # one line, no traceback
    assert not rest.budget.state.cooling_down
    async with asyncio.timeout(5):
        assert await rest.universe(UniverseConfig(mode="all"))

    # The next cooldown replaces the bad file with a valid record.
    server.inject_rest_fault("/fapi/v1/klines", 429, headers={"Retry-After": "1"})
    async with asyncio.timeout(10):
        await rest.klines("BTCUSDT", "5m", limit=20)
    replaced = read_record(state)
    assert replaced.reason.startswith("429 rate limit on /fapi/v1/klines")
    assert replaced.until_ms <= int(time.time() * 1000)  # that cooldown is over by now


async def test_unreadable_state_warns_and_requests_flow(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / COOLDOWN_STATE_FILE
    state.mkdir()  # a directory where the file should be: reading raises an OSError
    server = await replay()
    caplog.set_level(logging.WARNING)
    rest = make_rest(server.rest_url, cooldown_state=state)
    warned = warnings_about(caplog, state)
    assert len(warned) == 1 and "cannot read" in warned[0].getMessage()
    async with asyncio.timeout(5):
        assert await rest.universe(UniverseConfig(mode="all"))


async def test_implausibly_far_end_is_ignored(
    replay: StartReplay, make_rest: MakeRest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / COOLDOWN_STATE_FILE
    write_record(state, int(time.time() * 1000) + 10 * 86_400_000, "418 IP banned")
    server = await replay()
    caplog.set_level(logging.WARNING)
    rest = make_rest(server.rest_url, cooldown_state=state)
    assert len(warnings_about(caplog, state)) == 1
    assert not rest.budget.state.cooling_down
    async with asyncio.timeout(5):
        assert await rest.universe(UniverseConfig(mode="all"))


def test_clock_conversion_between_runs(tmp_path: Path) -> None:
    """Monotonic clocks of two processes share no origin; only the wall-clock end carries."""
    state = tmp_path / COOLDOWN_STATE_FILE
    mono, wall = [1000.0], [1_700_000_000.0]
    budget = WeightBudget(clock=lambda: mono[0], wall_clock=lambda: wall[0], state_path=state)
    budget.cooldown_for(5.0, "429 rate limit on /fapi/v1/depth, Retry-After 5 s")
    assert read_record(state).until_ms == 1_700_000_005_000
    budget.cooldown_for(1.0, "a shorter cooldown neither shortens nor rewrites it")
    assert read_record(state).reason.startswith("429")

    # "Restart" 2 s later in wall time, with a monotonic clock from another origin.
    mono2, wall[0] = [7.0], wall[0] + 2.0
    restarted = WeightBudget(clock=lambda: mono2[0], wall_clock=lambda: wall[0], state_path=state)
    restored = restarted.state
    assert restored.cooling_down
    assert restored.cooldown_remaining_s == pytest.approx(3.0)
    assert restored.cooldown_until_ms == 1_700_000_005_000
    mono2[0], wall[0] = 10.0, wall[0] + 3.0
    assert not restarted.cooling_down()


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    budget = WeightBudget()
    budget.cooldown_for(1.0, "429")
    assert budget.cooling_down()
    assert list(tmp_path.iterdir()) == []


# -- wiring in the runner ----------------------------------------------------------------------

FAST_FEED = FeedConfig(connect_interval_s=0.0, backoff_initial_s=0.05, backoff_max_s=0.2)


async def test_live_runner_restores_the_cooldown_from_its_data_dir(
    replay: StartReplay, tmp_path: Path
) -> None:
    # A "live" runner pointed at the loopback server (replay=None) reads <data_dir>/state.
    server = await replay()
    state = tmp_path / COOLDOWN_STATE_FILE
    until_ms = int(time.time() * 1000) + 1500
    write_record(state, until_ms, "418 IP banned (on /fapi/v1/depth)")
    ban_end = monotonic_at(until_ms)
    runner = MarketRunner(
        endpoints=EndpointConfig(rest_url=server.rest_url, ws_url=server.ws_url),
        universe=UniverseConfig(mode="list", symbols=REPLAY_SYMBOLS[:1]),
        feed=FAST_FEED,
        engine_config=EngineConfig(),
        data_dir=tmp_path,
    )
    task = asyncio.create_task(runner.run())
    try:
        # While held back, the status bar's health names the pause and why.
        await wait_for(lambda: runner.snapshot().health.rest_cooldown_s > 0, 5.0)
        health = runner.snapshot().health
        assert 0 < health.rest_cooldown_s <= 1.5
        assert health.rest_cooldown_reason.endswith(RESTORED_SUFFIX)
        assert "418 IP banned" in health.rest_cooldown_reason
        short, full = rest_health(health) or ("", "")
        assert short.startswith("REST paused ") and "418 IP banned" in full
        await wait_for(lambda: bool(server.rest_log), 10.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert server.rest_log[0][0] >= ban_end - 0.01


async def test_replay_runner_neither_reads_nor_writes_the_state_file(tmp_path: Path) -> None:
    # An active cooldown in the data dir must not hold a replay (its REST is loopback).
    state = tmp_path / COOLDOWN_STATE_FILE
    write_record(state, int(time.time() * 1000) + 60_000, "418 IP banned (on /fapi/v1/depth)")
    before = state.read_bytes()
    runner = MarketRunner(
        endpoints=EndpointConfig(),
        universe=UniverseConfig(mode="list", symbols=REPLAY_SYMBOLS[:1]),
        feed=FAST_FEED,
        engine_config=EngineConfig(),
        data_dir=tmp_path,
        replay=ReplayOptions(path=KLINES_DIR, speed=None, start_ms=START_MS),
    )
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(
            lambda: runner.replay_server is not None and bool(runner.replay_server.rest_log), 15.0
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert state.read_bytes() == before
