"""Kline interval codes and their lengths, with UTC period boundaries.

Binance intervals are aligned to UTC: a ``4h`` candle opens at 00:00, 04:00, ... UTC and a
``1d`` candle at 00:00 UTC. Weekly and monthly intervals are not supported by perpscope.
"""

from __future__ import annotations

MINUTE_MS = 60_000

INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
"""Supported interval code → length in ms."""


def interval_ms(interval: str) -> int:
    """Length of ``interval`` in ms.

    Raises:
        ValueError: if the code is not one of :data:`INTERVAL_MS`.
    """
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        allowed = ", ".join(INTERVAL_MS)
        raise ValueError(f"unknown interval {interval!r}; allowed: {allowed}") from None


def period_open(time_ms: int, interval: str) -> int:
    """Open time (ms UTC) of the ``interval`` candle that contains ``time_ms``."""
    length = interval_ms(interval)
    return time_ms - time_ms % length


def interval_from_ms(length_ms: int) -> str:
    """Interval code for a candle length in ms.

    Raises:
        ValueError: if no supported interval has that length.
    """
    for code, length in INTERVAL_MS.items():
        if length == length_ms:
            return code
    raise ValueError(f"no kline interval is {length_ms} ms long")
