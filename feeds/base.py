"""The contract every exchange feed adapter implements.

Adapters never own the event loop: ``run`` is a coroutine the caller schedules (a Textual
worker or ``asyncio.run`` in headless mode) and cancels to stop. Each decoded event is passed
synchronously to the sink; the sink must be O(1) and must not block (the engine's
``on_event``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from feeds.events import FeedEvent

EventSink = Callable[[FeedEvent], None]
"""Receives every normalised event and feed status, on the event loop, in arrival order."""


class FeedStats(msgspec.Struct, kw_only=True):
    """Mutable counters an adapter keeps; read by the engine for the status bar.

    Attributes:
        frames: Data frames received since start.
        decode_errors: Malformed or unknown frames (logged, counted, skipped).
        reconnects: Reconnects across all connections.
        rotations: Make-before-break rotations across all connections (the new socket took
            over with no reconnect; not counted in ``reconnects``).
        connections_open: Connections currently open.
        connections_total: Connections the subscription needs (shards × routes).
        streams: Streams subscribed.
        stale_streams: Streams currently marked stale by the watchdog.
        last_frame_time: Local receive time of the latest frame, ms UTC (0 before any).
    """

    frames: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    rotations: int = 0
    connections_open: int = 0
    connections_total: int = 0
    streams: int = 0
    stale_streams: int = 0
    last_frame_time: int = 0


class FeedAdapter(Protocol):
    """A streaming market-data adapter for one venue."""

    exchange: str
    """Exchange id, as ccxt names it (``binanceusdm``)."""
    stats: FeedStats
    """Live counters."""

    async def run(self, sink: EventSink) -> None:
        """Connect, subscribe and deliver events to ``sink`` until cancelled.

        Never raises on network errors: it reconnects with capped backoff and reports
        transitions as ``FeedStatus`` events through the sink.
        """
        ...

    def set_streams(self, streams: list[str]) -> None:
        """Replace the subscribed stream set (lowercase Binance stream names).

        May be called before or while ``run`` is active; new streams are subscribed and
        removed ones unsubscribed on the open connections, paced within the venue's limits.
        """
        ...
