"""Track-record statistics of resolved signals: hit rate with a Wilson interval, R figures.

A *hit* is an outcome ``TP1`` or ``TP2`` (TP1 reached before the stop); ``SL`` and
``TIMEOUT`` are misses. R figures are realised R after fees and slippage
(:class:`engine.outcomes.Outcome`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import msgspec

from engine.outcomes import WINS, Outcome

T = TypeVar("T")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``
    with ``p = successes / n`` (E. B. Wilson, "Probable inference, the law of succession, and
    statistical inference", JASA 22, 1927; Brown, Cai & DasGupta, Statistical Science 16, 2001).
    Unlike the normal interval it stays inside [0, 1] and is honest for small ``n``.

    Args:
        successes: Hits, ``0 <= successes <= n``.
        n: Trials.
        z: Standard normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)`` fractions; ``(0.0, 1.0)`` when ``n == 0`` (nothing known).

    Raises:
        ValueError: if ``n < 0``, ``successes`` is outside ``0..n`` or ``z <= 0``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got {successes}/{n}")
    if z <= 0:
        raise ValueError(f"wilson_interval needs z > 0, got {z}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class TrackStats(msgspec.Struct, frozen=True, kw_only=True):
    """Track record of one group of resolved signals.

    Attributes:
        key: Group key (signal type, symbol, ``ALL``...).
        count: Resolved signals.
        wins: Of them, ``TP1`` / ``TP2``.
        hit_rate: ``wins / count`` (0 when empty).
        hit_low: Wilson 95 % lower bound of the hit rate.
        hit_high: Wilson 95 % upper bound.
        avg_r: Mean realised R per signal (net of costs): the measured expectancy.
        expectancy: Conservative expectancy in R: ``hit_low x avg_win_r + (1 - hit_low) x
            avg_loss_r``, i.e. Tharp's expectancy (win rate x average win + loss rate x average
            loss) at the interval's lower hit rate, so a lucky small sample does not look good.
        avg_win_r: Mean R of hits (0 when none).
        avg_loss_r: Mean R of misses (usually negative; 0 when none).
        avg_bars: Mean candles to the outcome.
        avg_time_ms: Mean time to the outcome, ms.
    """

    key: str
    count: int
    wins: int
    hit_rate: float
    hit_low: float
    hit_high: float
    avg_r: float
    expectancy: float
    avg_win_r: float
    avg_loss_r: float
    avg_bars: float
    avg_time_ms: float


def track_stats(outcomes: Iterable[Outcome], key: str, z: float = 1.96) -> TrackStats:
    """Statistics of ``outcomes`` under the label ``key`` (see :class:`TrackStats`)."""
    items = list(outcomes)
    n = len(items)
    win_r = [o.realized_r for o in items if o.result in WINS]
    loss_r = [o.realized_r for o in items if o.result not in WINS]
    wins = len(win_r)
    low, high = wilson_interval(wins, n, z)
    avg_win = sum(win_r) / wins if wins else 0.0
    avg_loss = sum(loss_r) / len(loss_r) if loss_r else 0.0
    return TrackStats(
        key=key,
        count=n,
        wins=wins,
        hit_rate=wins / n if n else 0.0,
        hit_low=low if n else 0.0,
        hit_high=high if n else 0.0,
        avg_r=sum(o.realized_r for o in items) / n if n else 0.0,
        expectancy=low * avg_win + (1.0 - low) * avg_loss if n else 0.0,
        avg_win_r=avg_win,
        avg_loss_r=avg_loss,
        avg_bars=sum(o.bars for o in items) / n if n else 0.0,
        avg_time_ms=sum(o.time_to_outcome_ms for o in items) / n if n else 0.0,
    )


def group_stats(
    items: Iterable[T],
    key: Callable[[T], str],
    outcome: Callable[[T], Outcome | None],
) -> dict[str, TrackStats]:
    """Stats per group: ``key(item)`` → :class:`TrackStats` of the items' resolved outcomes.

    Items without an outcome are left out. Groups are returned sorted by key.
    """
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for item in items:
        result = outcome(item)
        if result is not None:
            groups[key(item)].append(result)
    return {k: track_stats(groups[k], k) for k in sorted(groups)}


class _RecordLike(Protocol):
    @property
    def symbol(self) -> str: ...

    @property
    def signal_type(self) -> str: ...


class StoredLike(Protocol):
    """A stored signal (:class:`storage.signals.StoredSignal` fits): its record and outcome."""

    @property
    def record(self) -> _RecordLike: ...

    @property
    def outcome(self) -> Outcome | None: ...


def stats_by_signal_type(stored: Iterable[StoredLike]) -> dict[str, TrackStats]:
    """Stats per signal type (``STRONG_LONG``, ``MICRO_SHORT``...) of stored signals."""
    return group_stats(stored, lambda s: s.record.signal_type, lambda s: s.outcome)


def stats_by_symbol(stored: Iterable[StoredLike]) -> dict[str, TrackStats]:
    """Stats per symbol of stored signals."""
    return group_stats(stored, lambda s: s.record.symbol, lambda s: s.outcome)
