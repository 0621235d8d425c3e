"""Reconnect backoff: immediate first retry, growth, cap, full jitter, stability reset."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from feeds.backoff import Backoff
from feeds.config import FeedConfig
from feeds.connection import ConnectPacer


class UpperBoundRng(random.Random):
    """Always draws the top of the jitter range, exposing the ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_retry_is_immediate() -> None:
    backoff = Backoff(0.5, 30.0, 10.0, rng=random.Random(1))
    assert backoff.next_delay() == 0.0
    assert 0.0 <= backoff.next_delay() <= 0.5
    assert backoff.failures == 2


def test_growth_doubles_then_caps() -> None:
    backoff = Backoff(0.5, 30.0, 10.0, rng=UpperBoundRng())
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_full_jitter_bounds_and_spread() -> None:
    backoff = Backoff(0.5, 30.0, 10.0, rng=random.Random(7))
    at_cap: list[float] = []
    for _ in range(200):
        backoff.reset()
        for n in range(12):
            delay = backoff.next_delay()
            if n == 0:
                assert delay == 0.0
            else:
                assert 0.0 <= delay <= backoff.ceiling(n - 1) <= 30.0
            if n >= 8:
                at_cap.append(delay)
    # Full jitter spreads over the whole [0, cap] range, not a narrow band near the cap.
    assert min(at_cap) < 3.0
    assert max(at_cap) > 27.0
    assert 10.0 < sum(at_cap) / len(at_cap) < 20.0


def test_huge_failure_counts_do_not_overflow() -> None:
    backoff = Backoff(0.5, 30.0, 10.0, rng=UpperBoundRng())
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 30.0


def test_reset_only_after_stable_period() -> None:
    clock = FakeClock()
    backoff = Backoff(0.5, 30.0, 10.0, rng=UpperBoundRng(), clock=clock)
    assert [backoff.next_delay() for _ in range(3)] == [0.0, 0.5, 1.0]
    # Flapping: connected for 5 s (< 10 s) — the sequence keeps growing.
    backoff.connected()
    clock.now += 5.0
    backoff.disconnected()
    assert backoff.next_delay() == 2.0
    # Stable for 10 s — the next retry is immediate again.
    backoff.connected()
    clock.now += 10.0
    backoff.disconnected()
    assert backoff.failures == 0
    assert [backoff.next_delay() for _ in range(2)] == [0.0, 0.5]
    # A disconnect without a recorded connect never resets.
    clock.now += 100.0
    backoff.disconnected()
    assert backoff.next_delay() == 1.0


def test_from_config_uses_the_config_knobs() -> None:
    config = FeedConfig(backoff_initial_s=0.25, backoff_max_s=1.0, stable_after_s=3.0)
    backoff = Backoff.from_config(config, rng=UpperBoundRng())
    assert [backoff.next_delay() for _ in range(6)] == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("args", [(0.0, 30.0, 10.0), (0.5, -1.0, 10.0), (0.5, 30.0, 0.0)])
def test_bad_durations_raise(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Backoff(*args)


async def test_connect_pacer_spaces_concurrent_connects() -> None:
    pacer = ConnectPacer(0.1)
    stamps: list[float] = []

    async def connect() -> None:
        await pacer.wait()
        stamps.append(time.monotonic())

    async with asyncio.timeout(5):
        await asyncio.gather(*(connect() for _ in range(4)))
    stamps.sort()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.095 for gap in gaps), gaps
    assert pacer.connects == 4
