"""Chat threads and verdicts in the SQLite database (see :mod:`storage.db`).

A thread is keyed by symbol (``BTCUSDT``) or :data:`GENERAL_THREAD` for questions about the
whole market. Verdicts are stored with the symbol, the ``as_of`` of the signal they judged
(ms UTC) and their source (model name or ``rules``), so they can be scored like any signal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.db import Database

GENERAL_THREAD = "*general*"
"""Thread key of questions not about one symbol."""
ROLES = ("user", "assistant", "notice")
"""Stored message roles (``notice``: shown to the user, never sent to a model)."""


@dataclass(frozen=True)
class StoredMessage:
    """One message of a thread.

    Attributes:
        id: Row id (increasing with time).
        thread: Symbol or :data:`GENERAL_THREAD`.
        role: ``user``, ``assistant`` or ``notice``.
        content: Markdown text.
        model: Model that wrote it (assistant), ``rules`` for the rule-based analyst, or empty.
        created_ms: Time written, ms UTC.
    """

    id: int
    thread: str
    role: str
    content: str
    model: str
    created_ms: int


@dataclass(frozen=True)
class StoredVerdict:
    """One stored verdict.

    Attributes:
        symbol: Venue symbol.
        signal_as_of: ``as_of`` (ms UTC) of the signal the verdict judged.
        source: ``model`` or ``rules``.
        model: Model name (empty for rules).
        decision: ``long`` / ``short`` / ``flat``.
        target_price: Target, quote currency, or None.
        entry_price: Last price when given, quote currency, or None.
        payload: The whole verdict as JSON text.
        created_ms: Time stored, ms UTC.
    """

    symbol: str
    signal_as_of: int
    source: str
    model: str
    decision: str
    target_price: float | None
    entry_price: float | None
    payload: str
    created_ms: int


class ChatStore:
    """Threads and verdicts over an open :class:`Database`.

    Args:
        db: The database (opened by its owner).
        clock: Wall clock in ms UTC (tests inject one).
    """

    def __init__(self, db: Database, clock: Callable[[], int] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: int(time.time() * 1000))

    async def append(self, thread: str, role: str, content: str, model: str = "") -> int:
        """Append a message to ``thread``; returns its id.

        Raises:
            ValueError: for an unknown role or an empty thread key.
        """
        if role not in ROLES:
            raise ValueError(f"unknown chat role {role!r}: expected one of {', '.join(ROLES)}")
        if not thread:
            raise ValueError("chat thread key must not be empty")
        conn = self._db.conn
        cursor = await conn.execute(
            "INSERT INTO chat_messages (thread, role, content, model, created_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (thread, role, content, model, self._clock()),
        )
        await conn.commit()
        return int(cursor.lastrowid or 0)

    async def load(self, thread: str, limit: int | None = None) -> list[StoredMessage]:
        """Messages of ``thread``, oldest first (the last ``limit`` when given)."""
        sql = (
            "SELECT id, thread, role, content, model, created_ms FROM chat_messages "
            "WHERE thread = ? ORDER BY id DESC"
        )
        params: tuple[object, ...] = (thread,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (thread, limit)
        async with self._db.conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [StoredMessage(*row) for row in reversed(list(rows))]

    async def clear(self, thread: str) -> int:
        """Delete every message of ``thread``; returns how many were deleted."""
        conn = self._db.conn
        cursor = await conn.execute("DELETE FROM chat_messages WHERE thread = ?", (thread,))
        await conn.commit()
        return int(cursor.rowcount)

    async def threads(self) -> list[str]:
        """Thread keys that have messages, sorted."""
        async with self._db.conn.execute(
            "SELECT DISTINCT thread FROM chat_messages ORDER BY thread"
        ) as cursor:
            return [str(row[0]) for row in await cursor.fetchall()]

    async def add_verdict(
        self,
        *,
        symbol: str,
        signal_as_of: int,
        source: str,
        model: str,
        decision: str,
        target_price: float | None,
        entry_price: float | None,
        payload: dict[str, object],
    ) -> int:
        """Store a verdict; returns its id.

        Raises:
            ValueError: if ``decision`` is not long/short/flat.
        """
        if decision not in ("long", "short", "flat"):
            raise ValueError(f"invalid verdict decision {decision!r}: expected long/short/flat")
        conn = self._db.conn
        cursor = await conn.execute(
            "INSERT INTO verdicts (symbol, signal_as_of, source, model, decision, target_price, "
            "entry_price, payload, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                symbol,
                signal_as_of,
                source,
                model,
                decision,
                target_price,
                entry_price,
                json.dumps(payload, sort_keys=True),
                self._clock(),
            ),
        )
        await conn.commit()
        return int(cursor.lastrowid or 0)

    async def verdicts(self, symbol: str) -> list[StoredVerdict]:
        """Verdicts on ``symbol``, oldest first."""
        async with self._db.conn.execute(
            "SELECT symbol, signal_as_of, source, model, decision, target_price, entry_price, "
            "payload, created_ms FROM verdicts WHERE symbol = ? ORDER BY id",
            (symbol,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [StoredVerdict(*row) for row in rows]
