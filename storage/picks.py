"""Picks (setups the trader marked) and the watchlist in the SQLite database.

Tables ``picks``, ``pick_events`` and ``watchlist`` come from migration 3 of
:mod:`storage.db`. Every write commits before its coroutine returns, so a pick the UI reports
saved is on disk (WAL) and survives a crash.

A pick is *live* while ``closed_ms`` is ``None``: statuses ``OPEN`` and ``TP1`` (TP1 reached,
part taken, the rest watching TP2 and a break-even stop). It is *final* once ``closed_ms`` is
set: ``TP2``, ``SL``, ``CLOSED`` (closed by hand), ``EXPIRED``, or ``TP1`` when the break-even
stop or expiry came after TP1 (see :mod:`engine.picks` for the rule).

R multiples: ``R = |entry - stop_loss|`` in quote currency; a price's result in R is
``side · (price - entry) / R`` with ``side`` +1 for LONG, -1 for SHORT (van Tharp's R multiple).
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Sequence

import msgspec

from engine.models import Direction
from storage.db import Database

log = logging.getLogger(__name__)


class PickStatus(enum.StrEnum):
    """Status of a pick (stored as its text)."""

    OPEN = "OPEN"
    TP1 = "TP1"
    TP2 = "TP2"
    SL = "SL"
    CLOSED = "CLOSED"
    EXPIRED = "EXPIRED"


FINAL_STATUSES = frozenset({PickStatus.TP2, PickStatus.SL, PickStatus.CLOSED, PickStatus.EXPIRED})
"""Statuses that always end a pick (``TP1`` ends one only when passed ``final=True``)."""


class PickError(ValueError):
    """A pick operation on a missing or already closed pick; the message names the pick id."""


class Pick(msgspec.Struct, frozen=True, kw_only=True):
    """One pick: a marked setup followed live, and its result.

    Prices in quote currency, times in ms UTC.

    Attributes:
        id: Row id (0 before :meth:`PickStore.add`).
        symbol: Venue symbol (``BTCUSDT``).
        side: ``Direction.LONG`` or ``Direction.SHORT``.
        entry: Entry price.
        stop_loss: Stop loss price (below the entry for LONG, above for SHORT).
        take_profit_1: First target.
        take_profit_2: Second target, or ``None``.
        size_quote: Position size (notional) in quote currency, or ``None``.
        risk_pct: Account risk of the trade in percent (1.0 = 1 %), or ``None``.
        note: Free text.
        signal_type: ``SignalType`` value of the signal it came from, or empty.
        signal_as_of: ``as_of`` of that signal, or ``None``.
        status: Current status.
        opened_ms: When the pick was taken.
        expires_ms: When a still-live pick expires, or ``None`` for never.
        closed_ms: When it ended, ``None`` while live.
        close_price: Price it ended at (``None`` while live, or expired with no price known).
        realized_r: Result in R once ended (``None`` while live).
        last_price: Last known price (for headless PnL), or ``None``.
        last_price_ms: Time of ``last_price``, or ``None``.
    """

    symbol: str
    side: Direction
    entry: float
    stop_loss: float
    take_profit_1: float
    take_profit_2: float | None = None
    size_quote: float | None = None
    risk_pct: float | None = None
    note: str = ""
    signal_type: str = ""
    signal_as_of: int | None = None
    status: PickStatus = PickStatus.OPEN
    opened_ms: int = 0
    expires_ms: int | None = None
    closed_ms: int | None = None
    close_price: float | None = None
    realized_r: float | None = None
    last_price: float | None = None
    last_price_ms: int | None = None
    id: int = 0

    @property
    def live(self) -> bool:
        """True while the pick is followed (not ended)."""
        return self.closed_ms is None

    @property
    def sign(self) -> float:
        """+1.0 for LONG, -1.0 for SHORT."""
        return 1.0 if self.side is Direction.LONG else -1.0

    @property
    def risk(self) -> float:
        """``R = |entry - stop_loss|``, quote currency (> 0 for a valid pick)."""
        return abs(self.entry - self.stop_loss)

    def r_multiple(self, price: float) -> float:
        """Result of exiting at ``price`` in R: ``side · (price - entry) / |entry - stop|``."""
        return self.sign * (price - self.entry) / self.risk

    def pnl_pct(self, price: float) -> float:
        """Result of exiting at ``price`` in percent of the entry (before fees)."""
        return self.sign * (price - self.entry) / self.entry * 100.0

    def result_r(self, price: float, tp1_fraction: float) -> float:
        """Result in R of the whole position if the rest exits at ``price`` now.

        In status ``TP1`` the fraction ``tp1_fraction`` was taken at TP1 (the
        :mod:`engine.outcomes` trade-management rule): ``f · R(TP1) + (1 - f) · R(price)``;
        otherwise ``R(price)``.
        """
        if self.status is PickStatus.TP1:
            return (tp1_fraction * self.r_multiple(self.take_profit_1)
                    + (1.0 - tp1_fraction) * self.r_multiple(price))
        return self.r_multiple(price)

    def result_pct(self, price: float, tp1_fraction: float) -> float:
        """:meth:`result_r` in percent of the entry (before fees)."""
        if self.status is PickStatus.TP1:
            return (tp1_fraction * self.pnl_pct(self.take_profit_1)
                    + (1.0 - tp1_fraction) * self.pnl_pct(price))
        return self.pnl_pct(price)


class PickEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One stored status change of a pick.

    Attributes:
        id: Row id (increasing with time).
        pick_id: The pick.
        time_ms: When it happened, ms UTC (market time of the bar/trade that caused it).
        status: Status after the change (``OPEN`` for the creation event).
        price: Price that caused it, quote currency, or ``None``.
        note: Why, in words.
    """

    id: int
    pick_id: int
    time_ms: int
    status: str
    price: float | None
    note: str


class PickTransition(msgspec.Struct, frozen=True, kw_only=True):
    """A status change decided by :class:`engine.picks.PickTracker`, applied by
    :meth:`PickStore.apply`.

    Attributes:
        pick: The pick after the change (status, and for final changes ``closed_ms``,
            ``close_price``, ``realized_r``).
        previous: Status before the change.
        time_ms: When it happened, ms UTC.
        price: The level or price that caused it (quote currency), or ``None``.
        note: Why, in words (stored in ``pick_events``).
    """

    pick: Pick
    previous: PickStatus
    time_ms: int
    price: float | None
    note: str

    @property
    def final(self) -> bool:
        """True when the change ended the pick."""
        return not self.pick.live


def validate_pick(pick: Pick) -> None:
    """Check a pick's levels and sizes.

    LONG needs ``stop_loss < entry < take_profit_1`` (``< take_profit_2`` when given); SHORT
    the mirror. Prices must be finite and > 0; ``size_quote`` > 0 and ``risk_pct`` in
    (0, 100] when given.

    Raises:
        ValueError: naming the first offending field and the values involved.
    """
    if not pick.symbol or pick.symbol != pick.symbol.strip().upper():
        raise ValueError(f"pick symbol {pick.symbol!r} must be a non-empty upper-case symbol")
    if pick.side not in (Direction.LONG, Direction.SHORT):
        raise ValueError(f"pick side must be LONG or SHORT, got {pick.side.value}")
    prices = {
        "entry": pick.entry,
        "stop_loss": pick.stop_loss,
        "take_profit_1": pick.take_profit_1,
        "take_profit_2": pick.take_profit_2,
    }
    for name, value in prices.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"pick {name} must be a finite price > 0, got {value}")
    s = pick.sign
    word = "below" if s > 0 else "above"
    other = "above" if s > 0 else "below"
    side = pick.side.value
    if not s * pick.stop_loss < s * pick.entry:
        raise ValueError(
            f"{side} pick stop_loss {pick.stop_loss} must be {word} entry {pick.entry}"
        )
    if not s * pick.take_profit_1 > s * pick.entry:
        raise ValueError(
            f"{side} pick take_profit_1 {pick.take_profit_1} must be {other} entry {pick.entry}"
        )
    if pick.take_profit_2 is not None and not s * pick.take_profit_2 > s * pick.take_profit_1:
        raise ValueError(
            f"{side} pick take_profit_2 {pick.take_profit_2} must be {other} "
            f"take_profit_1 {pick.take_profit_1}"
        )
    if pick.size_quote is not None and not (math.isfinite(pick.size_quote)
                                            and pick.size_quote > 0):
        raise ValueError(f"pick size_quote must be > 0 (quote currency), got {pick.size_quote}")
    if pick.risk_pct is not None and not (0 < pick.risk_pct <= 100):
        raise ValueError(f"pick risk_pct must be in (0, 100] percent, got {pick.risk_pct}")


_COLUMNS = (
    "id, symbol, side, entry, stop_loss, take_profit_1, take_profit_2, size_quote, risk_pct, "
    "note, signal_type, signal_as_of, status, opened_ms, expires_ms, closed_ms, close_price, "
    "realized_r, last_price, last_price_ms"
)


def _row_to_pick(row: Sequence[object]) -> Pick:
    (pid, symbol, side, entry, sl, tp1, tp2, size, risk, note, stype, as_of, status, opened,
     expires, closed, close_price, realized, last, last_ms) = row
    return msgspec.convert(
        {
            "id": pid, "symbol": symbol, "side": side, "entry": entry, "stop_loss": sl,
            "take_profit_1": tp1, "take_profit_2": tp2, "size_quote": size, "risk_pct": risk,
            "note": note, "signal_type": stype, "signal_as_of": as_of, "status": status,
            "opened_ms": opened, "expires_ms": expires, "closed_ms": closed,
            "close_price": close_price, "realized_r": realized, "last_price": last,
            "last_price_ms": last_ms,
        },
        Pick,
    )


class PickStore:
    """Picks and their status history over an open :class:`Database`.

    Args:
        db: The database (opened by its owner).
        clock: Wall clock in ms UTC, used for ``opened_ms`` when a pick has none (tests
            inject one).
        tp1_fraction: Fraction of the position taken at TP1, for the default realised R of a
            pick ended after TP1 (``[picks] tp1_fraction``).
    """

    def __init__(
        self, db: Database, clock: Callable[[], int] | None = None, *, tp1_fraction: float = 0.5
    ) -> None:
        self._db = db
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._tp1_fraction = tp1_fraction

    async def add(self, pick: Pick) -> Pick:
        """Validate and store a new pick (status ``OPEN``) with its creation event; committed
        before returning.

        Args:
            pick: The pick (``id`` is ignored; ``opened_ms`` 0 means now).

        Returns:
            The stored pick with its id.

        Raises:
            ValueError: if the levels or sizes are invalid (see :func:`validate_pick`).
        """
        validate_pick(pick)
        opened = pick.opened_ms or self._clock()
        stored = msgspec.structs.replace(
            pick, status=PickStatus.OPEN, opened_ms=opened, closed_ms=None, close_price=None,
            realized_r=None,
        )
        conn = self._db.conn
        cursor = await conn.execute(
            "INSERT INTO picks (symbol, side, entry, stop_loss, take_profit_1, take_profit_2, "
            "size_quote, risk_pct, note, signal_type, signal_as_of, status, opened_ms, "
            "expires_ms, last_price, last_price_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.symbol, stored.side.value, stored.entry, stored.stop_loss,
                stored.take_profit_1, stored.take_profit_2, stored.size_quote, stored.risk_pct,
                stored.note, stored.signal_type, stored.signal_as_of, stored.status.value,
                stored.opened_ms, stored.expires_ms, stored.last_price, stored.last_price_ms,
            ),
        )
        pick_id = int(cursor.lastrowid or 0)
        await conn.execute(
            "INSERT INTO pick_events (pick_id, time_ms, status, price, note) "
            "VALUES (?, ?, ?, ?, ?)",
            (pick_id, opened, PickStatus.OPEN.value, stored.entry, "opened"),
        )
        await conn.commit()
        log.info("pick %d stored: %s %s at %s", pick_id, stored.side.value, stored.symbol,
                 stored.entry)
        return msgspec.structs.replace(stored, id=pick_id)

    async def get(self, pick_id: int) -> Pick:
        """The pick with this id.

        Raises:
            PickError: if there is none.
        """
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM picks WHERE id = ?", (pick_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise PickError(f"no pick with id {pick_id}")
        return _row_to_pick(row)

    async def _live(self, pick_id: int) -> Pick:
        pick = await self.get(pick_id)
        if not pick.live:
            raise PickError(f"pick {pick_id} is already closed ({pick.status.value})")
        return pick

    async def update_status(
        self,
        pick_id: int,
        status: PickStatus,
        time_ms: int,
        price: float | None,
        note: str = "",
        *,
        final: bool | None = None,
        realized_r: float | None = None,
    ) -> Pick:
        """Set a live pick's status and store the change in ``pick_events``; committed.

        Args:
            pick_id: The pick.
            status: New status.
            time_ms: When it happened, ms UTC.
            price: Level/price that caused it (quote currency), or ``None``.
            note: Why, stored with the event.
            final: Whether this ends the pick; default: ``status`` in :data:`FINAL_STATUSES`.
            realized_r: Result in R when final; default: ``pick.result_r(price)`` with the
                store's ``tp1_fraction`` (``None`` without a price).

        Returns:
            The updated pick.

        Raises:
            PickError: if the pick does not exist or is already closed.
        """
        pick = await self._live(pick_id)
        status = PickStatus(status)
        is_final = status in FINAL_STATUSES if final is None else final
        if is_final:
            if realized_r is None and price is not None:
                realized_r = pick.result_r(price, self._tp1_fraction)
            updated = msgspec.structs.replace(
                pick, status=status, closed_ms=time_ms, close_price=price, realized_r=realized_r
            )
        else:
            updated = msgspec.structs.replace(pick, status=status)
        conn = self._db.conn
        await conn.execute(
            "UPDATE picks SET status = ?, closed_ms = ?, close_price = ?, realized_r = ? "
            "WHERE id = ?",
            (updated.status.value, updated.closed_ms, updated.close_price, updated.realized_r,
             pick_id),
        )
        await conn.execute(
            "INSERT INTO pick_events (pick_id, time_ms, status, price, note) "
            "VALUES (?, ?, ?, ?, ?)",
            (pick_id, time_ms, status.value, price, note),
        )
        await conn.commit()
        log.info("pick %d: %s -> %s at %s (%s)", pick_id, pick.status.value, status.value,
                 price, note)
        return updated

    async def apply(self, transition: PickTransition) -> Pick:
        """Store a tracker transition (:class:`engine.picks.PickTracker`); committed.

        Raises:
            PickError: if the pick does not exist or is already closed.
        """
        pick = transition.pick
        return await self.update_status(
            pick.id, pick.status, transition.time_ms, transition.price, transition.note,
            final=transition.final, realized_r=pick.realized_r,
        )

    async def close(self, pick_id: int, price: float, time_ms: int, note: str = "") -> Pick:
        """Close a live pick by hand at ``price``: status ``CLOSED`` with its realised R
        (:meth:`Pick.result_r`: after TP1 the part taken at TP1 counts).

        Raises:
            PickError: if the pick does not exist or is already closed.
            ValueError: if ``price`` is not a finite price > 0.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"close price of pick {pick_id} must be a finite price > 0, "
                             f"got {price}")
        return await self.update_status(
            pick_id, PickStatus.CLOSED, time_ms, price, note or "closed by hand", final=True
        )

    async def remove(self, pick_id: int) -> None:
        """Delete a pick and its events (a mistaken pick; closing keeps the result instead).

        Raises:
            PickError: if there is no such pick.
        """
        conn = self._db.conn
        await conn.execute("DELETE FROM pick_events WHERE pick_id = ?", (pick_id,))
        cursor = await conn.execute("DELETE FROM picks WHERE id = ?", (pick_id,))
        await conn.commit()
        if cursor.rowcount == 0:
            raise PickError(f"no pick with id {pick_id}")
        log.info("pick %d removed", pick_id)

    async def set_last_price(self, pick_id: int, price: float, time_ms: int) -> None:
        """Remember the last known price of a live pick (the caller throttles); committed.

        Closed picks are left as they are.
        """
        conn = self._db.conn
        await conn.execute(
            "UPDATE picks SET last_price = ?, last_price_ms = ? "
            "WHERE id = ? AND closed_ms IS NULL",
            (price, time_ms, pick_id),
        )
        await conn.commit()

    async def set_symbol_last_price(self, symbol: str, price: float, time_ms: int) -> int:
        """:meth:`set_last_price` for every live pick of ``symbol``; returns how many."""
        conn = self._db.conn
        cursor = await conn.execute(
            "UPDATE picks SET last_price = ?, last_price_ms = ? "
            "WHERE symbol = ? AND closed_ms IS NULL",
            (price, time_ms, symbol),
        )
        await conn.commit()
        return int(cursor.rowcount)

    async def _select(self, where: str, order: str) -> list[Pick]:
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM picks {where} ORDER BY {order}"
        ) as cursor:
            rows = await cursor.fetchall()
        return [_row_to_pick(row) for row in rows]

    async def open(self) -> list[Pick]:
        """Live picks (``OPEN`` or ``TP1`` not yet ended), oldest first."""
        return await self._select("WHERE closed_ms IS NULL", "opened_ms, id")

    async def all(self) -> list[Pick]:
        """Every pick, oldest first."""
        return await self._select("", "opened_ms, id")

    async def history(self) -> list[Pick]:
        """Ended picks, most recently closed first."""
        return await self._select("WHERE closed_ms IS NOT NULL", "closed_ms DESC, id DESC")

    async def events(self, pick_id: int) -> list[PickEvent]:
        """Status changes of a pick, oldest first (the first is its creation)."""
        async with self._db.conn.execute(
            "SELECT id, pick_id, time_ms, status, price, note FROM pick_events "
            "WHERE pick_id = ? ORDER BY id",
            (pick_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            PickEvent(id=r[0], pick_id=r[1], time_ms=r[2], status=r[3], price=r[4], note=r[5])
            for r in rows
        ]


class WatchlistStore:
    """Symbols on the watchlist (persisted).

    Args:
        db: The database (opened by its owner).
        clock: Wall clock in ms UTC (tests inject one).
    """

    def __init__(self, db: Database, clock: Callable[[], int] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: int(time.time() * 1000))

    async def toggle(self, symbol: str) -> bool:
        """Add ``symbol`` if absent, else remove it; committed. Returns True when it is now on
        the watchlist.

        Raises:
            ValueError: for an empty symbol.
        """
        key = symbol.strip().upper()
        if not key:
            raise ValueError("watchlist symbol must not be empty")
        conn = self._db.conn
        cursor = await conn.execute("DELETE FROM watchlist WHERE symbol = ?", (key,))
        added = cursor.rowcount == 0
        if added:
            await conn.execute(
                "INSERT INTO watchlist (symbol, added_ms) VALUES (?, ?)", (key, self._clock())
            )
        await conn.commit()
        return added

    async def symbols(self) -> list[str]:
        """Watchlist symbols, sorted."""
        async with self._db.conn.execute(
            "SELECT symbol FROM watchlist ORDER BY symbol"
        ) as cursor:
            return [str(row[0]) for row in await cursor.fetchall()]
