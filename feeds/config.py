"""Configuration sections owned by the feeds (plain pydantic models, no settings loading).

``tui/settings.py`` composes these into the root settings; feeds receive them through
constructors. Every field has a default and an attribute docstring (shown in ``config.toml``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class EndpointConfig(_Section):
    """Exchange base URLs. Override them to point at a loopback or replay server."""

    rest_url: str = "https://fapi.binance.com"
    """REST base URL (the ``/fapi/v1/...`` paths are appended)."""
    ws_url: str = "wss://fstream.binance.com"
    """WebSocket root; the routed paths ``/public`` and ``/market`` are appended."""

    @field_validator("rest_url")
    @classmethod
    def _check_rest(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("ws_url")
    @classmethod
    def _check_ws(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")


class UniverseConfig(_Section):
    """Which USDT-margined perpetuals to scan."""

    mode: Literal["all", "top", "list"] = "top"
    """``all``: every TRADING USDT perpetual; ``top``: the ``top_n`` by 24 h quote volume;
    ``list``: exactly ``symbols``."""
    top_n: int = Field(default=100, ge=1, le=1000)
    """How many symbols ``top`` mode keeps."""
    symbols: list[str] = Field(default_factory=list)
    """Symbols for ``list`` mode (``BTCUSDT``); case-insensitive."""
    exclude: list[str] = Field(default_factory=list)
    """Symbols never scanned, in any mode."""
    quote_asset: Literal["USDT"] = "USDT"
    """Margin/quote asset; only USDT-margined perpetuals are supported."""

    @field_validator("symbols", "exclude")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [symbol.strip().upper() for symbol in value]


class FeedConfig(_Section):
    """WebSocket connection policy (see FEEDS.md §1.4 and §6)."""

    max_streams_per_connection: int = Field(default=200, ge=1, le=1024)
    """Streams per WebSocket connection; more streams open more connections (shards)."""
    subscribe_interval_s: float = Field(default=0.3, ge=0.2, le=10.0)
    """Minimum gap between control messages (SUBSCRIBE) on one connection; Binance allows
    10 incoming messages/s per connection, so stay well under."""
    subscribe_batch: int = Field(default=200, ge=1, le=200)
    """Streams per SUBSCRIBE message."""
    connect_interval_s: float = Field(default=1.0, ge=0.0, le=60.0)
    """Minimum gap between new connections across the app (reconnect-storm guard)."""
    backoff_initial_s: float = Field(default=0.5, gt=0.0, le=60.0)
    """First non-immediate reconnect delay; doubles per failure (full jitter)."""
    backoff_max_s: float = Field(default=30.0, gt=0.0, le=600.0)
    """Cap on the reconnect delay."""
    stable_after_s: float = Field(default=10.0, gt=0.0, le=600.0)
    """A connection open this long resets the backoff."""
    rotate_after_s: float = Field(default=23.5 * 3600, gt=0.0, le=24 * 3600)
    """Reconnect proactively before Binance's 24 h cut."""
    stale_after_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    """A stream silent this long is marked stale and re-subscribed (UNSUBSCRIBE + SUBSCRIBE)
    while the connection's other streams flow; a connection whose streams are all stale is
    closed and reopened."""
    stream_resubscribes: int = Field(default=2, ge=0, le=10)
    """Re-subscribes of one stale stream before its connection is closed and reopened (0:
    reopen at once). A stream still silent after that on the new connection is reported
    offline instead of reopening the connection again. Trade and book-ticker streams
    (aggTrade, trade, bookTicker) are only marked stale: they are silent whenever nobody
    trades or the best bid/ask does not move."""
    control_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)
    """Seconds to wait for the reply (matched by id) to a SUBSCRIBE, UNSUBSCRIBE or
    LIST_SUBSCRIPTIONS before it counts as timed out and is sent again."""
    control_retries: int = Field(default=2, ge=0, le=10)
    """Re-sends of a timed-out control message before the connection is treated as broken
    and reopened (which subscribes every stream again)."""
    max_frame_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    """Largest accepted WebSocket frame (``!ticker@arr`` can exceed websockets' 1 MiB)."""
    kline_streams: Literal["base", "all"] = "base"
    """``base``: stream only the smallest timeframe and build larger ones from it (4× fewer
    streams); ``all``: stream every configured timeframe."""
    rest_weight_budget: float = Field(default=0.7, gt=0.0, le=1.0)
    """Fraction of Binance's 2400 weight/min REST budget perpscope may use."""
    rest_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    """Timeout of one REST request."""


class BookConfig(_Section):
    """Local L2 order books from diff depth (FEEDS.md §1.6)."""

    depth_speed: Literal["100ms", "250ms", "500ms"] = "100ms"
    """Diff-depth stream speed (``<s>@depth@100ms``; ``250ms`` is the plain ``<s>@depth``)."""
    top_n: int = Field(default=20, ge=0, le=200)
    """Books kept for the top N symbols by 24 h quote volume; symbols the user opens, picks or
    watches get a book on demand besides these."""
    symbols: list[str] = Field(default_factory=list)
    """Symbols that always get a book (``BTCUSDT``); case-insensitive."""
    snapshot_limit: Literal[5, 10, 20, 50, 100, 500, 1000] = 1000
    """Levels per side asked of ``GET /fapi/v1/depth`` (weight 20 at 1000)."""
    max_levels: int = Field(default=1000, ge=5, le=1000)
    """Levels kept per side; farther levels are trimmed (never corrected by the stream)."""
    snapshot_concurrency: int = Field(default=2, ge=1, le=10)
    """Snapshot requests in flight at once; the rest queue (and wait for REST weight)."""
    resync_delay_s: float = Field(default=1.0, ge=0.0, le=60.0)
    """Wait before re-requesting a snapshot that was older than the buffered diffs."""
    max_buffered_diffs: int = Field(default=2000, ge=10, le=100_000)
    """Diffs buffered per symbol while its snapshot is pending; overflow restarts the sync."""

    @field_validator("symbols")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [symbol.strip().upper() for symbol in value]


class OpenInterestConfig(_Section):
    """Open interest polling (``GET /fapi/v1/openInterest``, weight 1 per symbol)."""

    enabled: bool = True
    """Poll open interest at all."""
    interval_s: float = Field(default=60.0, ge=5.0, le=3600.0)
    """Each polled symbol is read once per interval; polls are staggered across it and the
    next round starts only after the last poll of this one finished."""
    symbols: Literal["books", "all"] = "all"
    """``all``: every symbol of the universe; ``books``: only symbols with an order book."""
