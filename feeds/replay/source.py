"""What the loopback replay server needs from recorded data to answer Binance REST calls.

Loaders in ``feeds/replay/loaders.py`` implement :class:`RestSource`; the REST routes in
``feeds/replay/rest_api.py`` serve it in Binance's wire format (``/fapi/v1/...``).
Every method returns JSON-ready Python objects exactly as Binance would send them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from feeds.replay.timeline import TimelineEvent


class RestSource(Protocol):
    """Recorded data seen as Binance USDⓈ-M REST responses, as of the replay clock."""

    def exchange_info(self) -> dict[str, Any]:
        """``GET /fapi/v1/exchangeInfo`` body (symbols with status, contractType, filters)."""
        ...

    def tickers_24h(self, now_ms: int) -> list[dict[str, Any]]:
        """``GET /fapi/v1/ticker/24hr`` body: 24 h rolling stats per symbol ending at ``now_ms``."""
        ...

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int,
        now_ms: int,
    ) -> list[list[Any]] | None:
        """``GET /fapi/v1/klines`` rows (Binance array form), only candles opened before
        ``now_ms`` (the last one may be forming, cut at ``now_ms``). ``None`` if the symbol is
        unknown."""
        ...

    def depth(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """The FIRST recorded ``GET /fapi/v1/depth`` snapshot of ``symbol`` cut to ``limit``
        levels per side, ``None`` if none was recorded (served by the stale-snapshot fault)."""
        ...

    def event_passed(self, event: TimelineEvent) -> None:
        """The replay timeline passed ``event`` (sent, dropped or unheard): update what REST
        answers from it, e.g. apply a recorded depth diff to the exchange's reference book."""
        ...

    def premium_index(self, symbol: str | None, now_ms: int) -> list[dict[str, Any]]:
        """``GET /fapi/v1/premiumIndex`` rows (mark price, funding) as of ``now_ms``."""
        ...
