"""Open interest polling: ``GET /fapi/v1/openInterest`` per symbol, staggered, never stacked.

Binance has no open-interest stream, so it is polled (weight 1 per symbol; cryptofeed does the
same, FEEDS.md §1.7). One *round* reads every symbol once, spread evenly over
``interval_s`` (symbol *i* of *n* at ``round start + i × interval_s / n``) so the weight
budget sees a trickle rather than a burst. Polls run one at a time, and the next round starts
at ``round start + interval_s`` or when the last poll of this round has finished, whichever is
later: a slow REST stretches a round but never stacks two.

The symbol list is re-read at the start of every round (the universe and the set of books
change). A symbol whose poll fails is counted and logged (the first failure, then every
``log_every``-th) and the round goes on. :class:`~feeds.rest.RestUnavailable` (HTTP 404: the
server has no such endpoint, e.g. a replay of recorded data) stops polling for good with
state ``unavailable`` and the server's reason, which the status bar shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import msgspec

from feeds.config import OpenInterestConfig
from feeds.events import OpenInterest
from feeds.rest import RestUnavailable

logger = logging.getLogger(__name__)

PollerState = Literal["polling", "unavailable", "disabled"]


class OpenInterestStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the open-interest poller is doing, for the status bar.

    Attributes:
        state: ``polling`` (running or about to), ``unavailable`` (the server does not offer
            open interest; polling stopped) or ``disabled`` (turned off in the settings).
        reason: Why it is not polling (``""`` while polling).
        polls: Readings delivered so far.
        errors: Polls that failed so far (all symbols).
        rounds: Rounds completed.
        last_time: Exchange time of the latest reading, ms UTC (0 before any).
        last_error: The latest failure, one line (``""`` if none).
    """

    state: PollerState
    reason: str = ""
    polls: int = 0
    errors: int = 0
    rounds: int = 0
    last_time: int = 0
    last_error: str = ""


class OpenInterestPoller:
    """Polls open interest for a changing set of symbols (module docstring).

    Args:
        fetch: Reads one symbol (e.g. :meth:`feeds.rest.BinanceRest.open_interest`); raises
            :class:`~feeds.rest.RestUnavailable` when the server has no such endpoint and
            any other exception for a failed poll.
        config: ``enabled`` and ``interval_s`` (seconds per round). Which symbols to poll
            (``config.symbols``: ``all`` / ``books``) is the caller's ``symbols`` callable.
        symbols: Returns the venue symbols to poll; called once per round.
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Async sleep in seconds on that clock (injectable for tests).
        log_every: Log every N-th failure after the first.

    Raises:
        ValueError: ``log_every`` < 1.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[OpenInterest]],
        config: OpenInterestConfig,
        symbols: Callable[[], Sequence[str]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        log_every: int = 100,
    ) -> None:
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        self._fetch = fetch
        self._config = config
        self._symbols = symbols
        self._clock = clock
        self._sleep = sleep
        self._log_every = log_every
        self._status = OpenInterestStatus(
            state="polling" if config.enabled else "disabled",
            reason="" if config.enabled else "open interest polling is disabled in the settings",
        )

    @property
    def status(self) -> OpenInterestStatus:
        """Current state and counters."""
        return self._status

    async def run(self, sink: Callable[[OpenInterest], None]) -> None:
        """Poll until cancelled, or until the server turns out not to offer open interest.

        Args:
            sink: Receives every reading, in poll order.

        Returns:
            When polling is disabled (at once) or the endpoint is unavailable (the status
            says why).

        Raises:
            Exception: whatever ``sink`` or ``symbols`` raise (polling stops).
        """
        if not self._config.enabled:
            logger.info("open interest: %s", self._status.reason)
            return
        interval = self._config.interval_s
        while True:
            started = self._clock()
            wanted = list(dict.fromkeys(s.upper() for s in self._symbols()))
            step = interval / len(wanted) if wanted else 0.0
            for i, symbol in enumerate(wanted):
                await self._sleep_until(started + i * step)
                try:
                    reading = await self._fetch(symbol)
                except RestUnavailable as exc:
                    self._status = msgspec.structs.replace(
                        self._status, state="unavailable", reason=exc.cause or str(exc)
                    )
                    # Expected in replays (nothing recorded); the status bar carries the reason.
                    logger.info("open interest polling stopped: %s", exc)
                    return
                except Exception as exc:  # one symbol's failure must not stop the others
                    self._failed(symbol, exc)
                    continue
                self._status = msgspec.structs.replace(
                    self._status,
                    polls=self._status.polls + 1,
                    last_time=max(self._status.last_time, reading.time),
                )
                sink(reading)
            self._status = msgspec.structs.replace(self._status, rounds=self._status.rounds + 1)
            # Armed only now that the last poll is done: a slow round is never overlapped.
            await self._sleep_until(started + interval)

    async def _sleep_until(self, when: float) -> None:
        delay = when - self._clock()
        if delay > 0:
            await self._sleep(delay)

    def _failed(self, symbol: str, exc: Exception) -> None:
        errors = self._status.errors + 1
        line = " ".join(str(exc).split()) or type(exc).__name__
        self._status = msgspec.structs.replace(self._status, errors=errors, last_error=line)
        if errors == 1 or errors % self._log_every == 0:
            logger.warning(
                "open interest poll of %s failed (%d failure(s) so far): %s", symbol, errors, line
            )


__all__ = ["OpenInterestPoller", "OpenInterestStatus", "PollerState"]
