"""Reconnect delays: capped exponential backoff with full jitter and a stability reset.

Policy (FEEDS.md §4 A.1 and §6; NautilusTrader ``crates/network/src/backoff.rs``):

* the first retry after a failure is immediate (0 s): most drops are one-off;
* retry ``n`` (``n`` = 0, 1, ...) after that waits ``uniform(0, min(cap, initial * 2**n))``
  ("full jitter", AWS Architecture Blog, *Exponential Backoff And Jitter*), so connections
  that dropped together do not come back together;
* the sequence restarts only after a connection stayed open ``stable_after_s``: a server that
  accepts and then drops at once (flapping) keeps the delays growing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from feeds.config import FeedConfig

# 2**64 × any sane initial delay is far beyond every cap; bounding the exponent avoids
# OverflowError after a very long outage.
_MAX_EXPONENT = 64


class Backoff:
    """Reconnect delay generator for one connection.

    Args:
        initial_s: Upper bound of the first jittered delay, seconds (> 0).
        max_s: Cap on every delay, seconds (>= ``initial_s`` is sensible, not required).
        stable_after_s: A connection open at least this long resets the sequence, seconds
            (default 10 s, NautilusTrader's ``RECONNECT_STABILITY_THRESHOLD``).
        rng: Random source for the jitter (inject a seeded ``random.Random`` in tests).
        clock: Monotonic clock in seconds.

    Raises:
        ValueError: if a duration is not positive.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        stable_after_s: float = 10.0,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if initial_s <= 0 or max_s <= 0 or stable_after_s <= 0:
            raise ValueError(
                f"backoff durations must be > 0 (initial={initial_s}, max={max_s}, "
                f"stable_after={stable_after_s})"
            )
        self._initial = initial_s
        self._max = max_s
        self._stable_after = stable_after_s
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._failures = 0
        self._connected_at: float | None = None

    @classmethod
    def from_config(
        cls,
        config: FeedConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Backoff:
        """Backoff with ``backoff_initial_s``, ``backoff_max_s`` and ``stable_after_s``."""
        return cls(
            config.backoff_initial_s,
            config.backoff_max_s,
            config.stable_after_s,
            rng=rng,
            clock=clock,
        )

    @property
    def failures(self) -> int:
        """Delays handed out since the last reset (0 = the next retry is immediate)."""
        return self._failures

    def ceiling(self, n: int) -> float:
        """Upper bound of the ``n``-th jittered delay (``n`` = 0 is the first after the
        immediate retry): ``min(max_s, initial_s * 2**n)`` seconds."""
        return min(self._max, self._initial * 2.0 ** min(max(n, 0), _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Seconds to wait before the next connect attempt; advances the sequence."""
        n = self._failures
        self._failures += 1
        if n == 0:
            return 0.0
        return self._rng.uniform(0.0, self.ceiling(n - 1))

    def connected(self) -> None:
        """Record that a connection just opened (starts the stability timer)."""
        self._connected_at = self._clock()

    def disconnected(self) -> None:
        """Record that the connection closed; resets the sequence if it had been open for
        at least ``stable_after_s``."""
        opened = self._connected_at
        self._connected_at = None
        if opened is not None and self._clock() - opened >= self._stable_after:
            self._failures = 0

    def reset(self) -> None:
        """Restart the sequence: the next retry is immediate again."""
        self._failures = 0
        self._connected_at = None
