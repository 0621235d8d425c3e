"""The alert log in the SQLite database (table ``alert_log``, migration 3 of :mod:`storage.db`).

Every alert is appended *before* it is sent, with the channels it is going to in ``pending``;
each channel's outcome then moves it to ``delivered`` or ``failed`` (with the reason in
``errors``). So the log the UI shows is complete even when a channel fails or the app dies
mid-send, and :meth:`AlertLogStore.undelivered` finds what never went out.

Channel lists are stored as comma-separated names, ``errors`` as a JSON object
(channel → reason); ``payload`` is the :class:`~engine.alerts.rules.Alert` as JSON.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from engine.alerts.rules import Alert
from storage.db import Database

log = logging.getLogger(__name__)

_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_COLUMNS = "id, time_ms, rule, symbol, kind, message, payload, delivered, failed, pending, errors"


@dataclass(frozen=True)
class AlertLogEntry:
    """One row of the alert log.

    Attributes:
        id: Row id (increasing with time of writing).
        time_ms: Alert time, ms UTC.
        rule: Rule name.
        symbol: Venue symbol.
        kind: ``signal``, ``price`` or ``pick``.
        message: Rendered plain text.
        alert: The alert, or ``None`` when the stored payload cannot be decoded (logged).
        delivered: Channels that delivered it.
        failed: Channels that gave up on it.
        pending: Channels still sending (or never reached, after a crash).
        errors: Channel → reason of its failure.
    """

    id: int
    time_ms: int
    rule: str
    symbol: str
    kind: str
    message: str
    alert: Alert | None
    delivered: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)


class _PriceHit(msgspec.Struct):
    """What :meth:`AlertLogStore.price_levels_hit` reads of a price alert's payload."""

    type: str = ""
    level: float | None = None


def _names(text: str) -> tuple[str, ...]:
    return tuple(n for n in text.split(",") if n)


def _check_channel(name: str) -> str:
    if not _CHANNEL.match(name):
        raise ValueError(f"invalid alert channel name {name!r}: lower-case letters, digits, _")
    return name


# Remove :c from a comma list column; used by both marks.
_REMOVE = "trim(replace(',' || {col} || ',', ',' || :c || ',', ','), ',')"
# Append :c to a comma list column unless it is already there.
_ADD = (
    "CASE WHEN instr(',' || {col} || ',', ',' || :c || ',') > 0 THEN {col} "
    "WHEN {col} = '' THEN :c ELSE {col} || ',' || :c END"
)


class AlertLogStore:
    """The alert log over an open :class:`Database`.

    Args:
        db: The database (opened by its owner).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.bad_payloads = 0
        """Rows whose payload could not be decoded (their ``alert`` is ``None``)."""

    async def append(self, alert: Alert, message: str, channels: Sequence[str]) -> int:
        """Store ``alert`` with every channel pending; returns the row id (committed).

        Args:
            alert: The alert.
            message: Its plain-text rendering (what the log pane shows).
            channels: Names of the channels it is about to be sent to.

        Raises:
            ValueError: for an invalid channel name.
        """
        pending = ",".join(_check_channel(c) for c in channels)
        conn = self._db.conn
        cursor = await conn.execute(
            "INSERT INTO alert_log (time_ms, rule, symbol, kind, message, payload, pending) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                alert.time,
                alert.rule,
                alert.symbol,
                alert.kind,
                message,
                msgspec.json.encode(alert).decode(),
                pending,
            ),
        )
        await conn.commit()
        return int(cursor.lastrowid or 0)

    async def mark_delivered(self, row_id: int, channel: str) -> None:
        """Record that ``channel`` delivered row ``row_id`` (clears a failure of it).

        Raises:
            ValueError: for an invalid channel name.
        """
        _check_channel(channel)
        conn = self._db.conn
        await conn.execute(
            f"UPDATE alert_log SET delivered = {_ADD.format(col='delivered')}, "
            f"failed = {_REMOVE.format(col='failed')}, "
            f"pending = {_REMOVE.format(col='pending')}, "
            "errors = json_remove(errors, '$.' || :c) WHERE id = :id",
            {"c": channel, "id": row_id},
        )
        await conn.commit()

    async def mark_failed(self, row_id: int, channel: str, reason: str) -> None:
        """Record that ``channel`` gave up on row ``row_id`` with ``reason``.

        Raises:
            ValueError: for an invalid channel name.
        """
        _check_channel(channel)
        conn = self._db.conn
        await conn.execute(
            f"UPDATE alert_log SET failed = {_ADD.format(col='failed')}, "
            f"pending = {_REMOVE.format(col='pending')}, "
            "errors = json_set(errors, '$.' || :c, :r) WHERE id = :id",
            {"c": channel, "r": reason, "id": row_id},
        )
        await conn.commit()

    async def recent(self, n: int = 100) -> list[AlertLogEntry]:
        """The ``n`` newest rows, newest first."""
        return await self._select(
            f"SELECT {_COLUMNS} FROM alert_log ORDER BY id DESC LIMIT ?", (n,)
        )

    async def get(self, row_id: int) -> AlertLogEntry | None:
        """Row ``row_id``, or ``None``."""
        rows = await self._select(f"SELECT {_COLUMNS} FROM alert_log WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    async def undelivered(self, n: int = 100) -> list[AlertLogEntry]:
        """Up to ``n`` rows with channels still pending (e.g. after a crash), oldest first."""
        return await self._select(
            f"SELECT {_COLUMNS} FROM alert_log WHERE pending != '' ORDER BY id LIMIT ?", (n,)
        )

    async def history_since(self, since_ms: int) -> list[tuple[str, str, int]]:
        """``(rule, symbol, time_ms)`` of alerts at or after ``since_ms``, oldest first (to
        seed :meth:`engine.alerts.rules.AlertEngine.restore` after a restart)."""
        async with self._db.conn.execute(
            "SELECT rule, symbol, time_ms FROM alert_log WHERE time_ms >= ? ORDER BY time_ms, id",
            (since_ms,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def price_levels_hit(self) -> list[tuple[str, str, float]]:
        """``(symbol, side, threshold)`` of every price level in the log, any day, sorted and
        without repeats (to disarm ``once`` levels in
        :meth:`engine.alerts.rules.AlertEngine.restore` after a restart).

        ``side`` is ``above`` or ``below`` (from the alert type ``PRICE_ABOVE`` /
        ``PRICE_BELOW``), ``threshold`` the level crossed in quote currency, read from the
        stored payload (JSON numbers round-trip exactly, so it equals the configured level).
        Rows whose payload cannot be decoded are skipped and counted in
        :attr:`bad_payloads`.
        """
        async with self._db.conn.execute(
            "SELECT id, symbol, payload FROM alert_log WHERE kind = 'price' ORDER BY id"
        ) as cursor:
            rows = await cursor.fetchall()
        levels: set[tuple[str, str, float]] = set()
        for row_id, symbol, payload in rows:
            try:
                hit = msgspec.json.decode(str(payload), type=_PriceHit)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.bad_payloads += 1
                log.warning("alert_log row %s: unreadable price payload (%s)", row_id, exc)
                continue
            side = hit.type.removeprefix("PRICE_").lower()
            if hit.level is None or side not in ("above", "below"):
                log.warning("alert_log row %s: price alert without side or level", row_id)
                continue
            levels.add((str(symbol), side, hit.level))
        return sorted(levels)

    async def _select(self, sql: str, params: tuple[object, ...]) -> list[AlertLogEntry]:
        async with self._db.conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [self._entry(row) for row in rows]

    def _entry(self, row: Sequence[object]) -> AlertLogEntry:
        (row_id, time_ms, rule, symbol, kind, message, payload) = row[:7]
        delivered, failed, pending, errors = row[7:]
        alert: Alert | None
        try:
            alert = msgspec.json.decode(str(payload), type=Alert)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.bad_payloads += 1
            log.warning("alert_log row %s: unreadable payload (%s)", row_id, exc)
            alert = None
        try:
            errs = json.loads(str(errors))
            err_map = {str(k): str(v) for k, v in errs.items()} if isinstance(errs, dict) else {}
        except ValueError:
            log.warning("alert_log row %s: unreadable errors column", row_id)
            err_map = {}
        return AlertLogEntry(
            id=int(str(row_id)),
            time_ms=int(str(time_ms)),
            rule=str(rule),
            symbol=str(symbol),
            kind=str(kind),
            message=str(message),
            alert=alert,
            delivered=_names(str(delivered)),
            failed=_names(str(failed)),
            pending=_names(str(pending)),
            errors=err_map,
        )
