"""What the UI (and headless mode) may ask of the running market pipeline.

``engine.runner.MarketRunner`` implements it: feeds → engine wiring, backfill, replay.
The TUI depends only on this protocol and on :mod:`engine.models`.
"""

from __future__ import annotations

from typing import Protocol

from engine.desk import Desk
from engine.history import TrackRecord
from engine.models import CandleSeries, EngineSnapshot, MicroView


class MarketService(Protocol):
    """A running market pipeline."""

    def snapshot(self) -> EngineSnapshot:
        """The current frozen snapshot (cheap when nothing changed: same object returned)."""
        ...

    def candles(self, symbol: str, timeframe: str, limit: int = 200) -> CandleSeries | None:
        """The last ``limit`` candles of ``symbol`` × ``timeframe`` (forming one last), or
        ``None`` if the symbol or timeframe is unknown."""
        ...

    def set_risk_profile(self, name: str) -> None:
        """Switch the risk profile (``conservative``, ``balanced``, ``aggressive``); signals
        are re-evaluated on the next recompute.

        Raises:
            ValueError: if ``name`` is not a known profile.
        """
        ...

    def micro(self, symbol: str) -> MicroView | None:
        """Order book, flow, derivatives and microstructure score of ``symbol`` for the order
        book pane, or ``None`` if the symbol is unknown. A symbol without a book gets a view
        with ``book.state == "none"`` (call :meth:`want_book` to get one)."""
        ...

    def desk(self) -> Desk | None:
        """Picks, watchlist and alerts (:class:`engine.desk.Desk`: frozen ``snapshot()`` for
        views; ``add_pick`` / ``close_pick`` / ``remove_pick`` / ``toggle_watch`` commit to the
        database before returning), or ``None`` when nothing is stored (no database)."""
        ...

    def record_verdict(self, symbol: str, decision: str, target: float | None) -> bool:
        """Track an analyst verdict (``long``/``short``/``flat``, optional target price) on
        ``symbol``'s current signal like any other signal source; False when nothing is stored
        (flat, no plan, one already open, or no database)."""
        ...

    def track_record(self) -> TrackRecord | None:
        """Outcomes of the emitted signals of this run's data source per signal type and
        symbol (count, hit rate with its Wilson interval, average R, expectancy), or ``None``
        when nothing is stored (no database)."""
        ...

    def want_book(self, symbol: str, wanted: bool = True) -> None:
        """Ask for (or release) a local order book of ``symbol`` beyond the configured ones: the
        symbol view calls it on open and close; its depth and aggTrade streams are subscribed
        on demand and its snapshot request jumps the queue. Unknown symbols are ignored."""
        ...

    async def run(self) -> None:
        """Backfill, connect and process events until cancelled. Never raises on network or
        data errors: they become feed health (OFFLINE with reason and next retry)."""
        ...
