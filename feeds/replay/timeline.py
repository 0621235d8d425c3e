"""The replay timeline: what a source gives the server to stream, and what it answers on REST."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

from feeds.replay.source import RestSource
from feeds.replay.wire import StreamKey


class TimelineEvent:
    """One data message due at ``time_ms`` on the replay clock.

    The JSON payload is built only when a connection is subscribed (:meth:`data`), so events
    nobody listens to cost almost nothing.

    Attributes:
        time_ms: Replay time the message is due, ms UTC.
        key: Stream key; every subscription with this key receives the message.
        stream: The stream name the message was recorded or generated under.
    """

    __slots__ = ("_build", "_data", "key", "stream", "time_ms")

    def __init__(
        self,
        time_ms: int,
        key: StreamKey,
        stream: str,
        build: Callable[[], bytes],
    ) -> None:
        self.time_ms = time_ms
        self.key = key
        self.stream = stream
        self._build: Callable[[], bytes] | None = build
        self._data: bytes | None = None

    def data(self) -> bytes:
        """The payload (``data`` of the combined envelope) as JSON bytes, built once."""
        if self._data is None:
            assert self._build is not None
            self._data = self._build()
            self._build = None
        return self._data


class ReplaySource(RestSource, Protocol):
    """A loaded replay: its timeline plus what :class:`RestSource` answers.

    Attributes:
        kind: ``klines`` (kline history) or ``capture`` (raw WebSocket capture).
        symbols: Replayed symbols, upper case, sorted.
        start_ms: Replay clock at the start, ms UTC.
        end_ms: Time of the last timeline event, ms UTC.
        max_gap_ms: Silences longer than this on the timeline are skipped at finite speed
            (``None``: never), so a folder of captures days apart replays without waiting.
        skipped: Human-readable notes on inputs left out (files, lines).
    """

    kind: Literal["klines", "capture"]
    symbols: list[str]
    start_ms: int
    end_ms: int
    max_gap_ms: int | None

    @property
    def skipped(self) -> list[str]:
        """Inputs left out, one note each."""
        ...

    def events(self) -> Iterator[TimelineEvent]:
        """Timeline events from ``start_ms`` on, in time order."""
        ...

    def mark_updates(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """Generated ``markPriceUpdate`` payloads by symbol as of ``now_ms`` (empty: none)."""
        ...

    def funding_rates(
        self,
        symbol: str | None,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[dict[str, Any]] | None:
        """``GET /fapi/v1/fundingRate`` rows settled by ``now_ms``; ``None``: unknown symbol."""
        ...

    def depth_at(self, symbol: str, limit: int, now_ms: int | None) -> dict[str, Any] | None:
        """Recorded depth snapshot as of ``now_ms`` cut to ``limit`` levels, ``None`` if none."""
        ...

    def has_symbol(self, symbol: str) -> bool:
        """True if ``symbol`` (upper case) is replayed."""
        ...
