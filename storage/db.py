"""The SQLite database: one aiosqlite connection owner, WAL mode, ordered schema migrations.

Migrations are numbered from 1 and applied in order at :meth:`Database.open`, each in its own
transaction, recording its number in ``schema_version``. Later features add theirs by appending
to :data:`MIGRATIONS` (never editing an applied one): a database opened by a newer perpscope is
upgraded; one written by a newer perpscope than this is refused with a clear error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiosqlite

log = logging.getLogger(__name__)

DB_NAME = "perpscope.db"
"""File name of the database inside the data dir."""


@dataclass(frozen=True)
class Migration:
    """One schema step.

    Attributes:
        version: Its number (1, 2, ... without gaps).
        name: What it does, for the log and ``schema_version``.
        sql: SQL script (several statements allowed).
    """

    version: int
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "chat messages and verdicts",
        """
        CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'notice')),
            content TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX chat_messages_thread ON chat_messages (thread, id);
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            symbol TEXT NOT NULL,
            signal_as_of INTEGER NOT NULL,
            source TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            decision TEXT NOT NULL CHECK (decision IN ('long', 'short', 'flat')),
            target_price REAL,
            entry_price REAL,
            payload TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX verdicts_symbol ON verdicts (symbol, signal_as_of);
        """,
    ),
    Migration(
        2,
        "signal history, outcomes and calibration models",
        """
        CREATE TABLE signals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('technical', 'micro', 'verdict')),
            signal_type TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('LONG', 'SHORT')),
            as_of INTEGER NOT NULL,
            timeframes TEXT NOT NULL,
            score REAL NOT NULL,
            confidence REAL NOT NULL,
            calibrated REAL,
            entry REAL NOT NULL,
            stop_loss REAL NOT NULL,
            take_profit_1 REAL NOT NULL,
            take_profit_2 REAL NOT NULL,
            risk_reward REAL NOT NULL,
            plan_timeframe TEXT NOT NULL,
            atr REAL NOT NULL,
            regime TEXT NOT NULL DEFAULT '',
            risk_profile TEXT NOT NULL,
            factors TEXT NOT NULL,
            source TEXT NOT NULL,
            engine_version TEXT NOT NULL,
            stored_ms INTEGER NOT NULL,
            UNIQUE (symbol, kind, as_of, source)
        );
        CREATE INDEX signals_symbol ON signals (symbol, as_of);
        CREATE INDEX signals_type ON signals (signal_type, as_of);
        CREATE TRIGGER signals_immutable BEFORE UPDATE ON signals
        BEGIN SELECT RAISE(ABORT, 'signals are immutable once stored'); END;
        CREATE TABLE outcomes (
            signal_id INTEGER PRIMARY KEY REFERENCES signals (id),
            result TEXT NOT NULL CHECK (result IN ('TP1', 'TP2', 'SL', 'TIMEOUT')),
            exit_time INTEGER NOT NULL,
            exit_price REAL NOT NULL,
            bars INTEGER NOT NULL,
            time_to_outcome_ms INTEGER NOT NULL,
            mfe_r REAL NOT NULL,
            mae_r REAL NOT NULL,
            realized_r REAL NOT NULL,
            resolved_by TEXT NOT NULL
                CHECK (resolved_by IN ('bar', 'lower_timeframe', 'conservative', 'timeout')),
            updated_ms INTEGER NOT NULL
        );
        CREATE INDEX signals_open ON signals (source, kind, symbol);
        CREATE TABLE calibration_models (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            fitted_ms INTEGER NOT NULL,
            data_from INTEGER NOT NULL,
            data_to INTEGER NOT NULL,
            source TEXT NOT NULL,
            engine_version TEXT NOT NULL,
            samples INTEGER NOT NULL,
            ece_before REAL,
            ece_after REAL,
            model TEXT NOT NULL
        );
        """,
    ),
    Migration(
        3,
        "picks, watchlist and alert log",
        """
        CREATE TABLE picks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('LONG', 'SHORT')),
            entry REAL NOT NULL,
            stop_loss REAL NOT NULL,
            take_profit_1 REAL NOT NULL,
            take_profit_2 REAL,
            size_quote REAL,
            risk_pct REAL,
            note TEXT NOT NULL DEFAULT '',
            signal_type TEXT NOT NULL DEFAULT '',
            signal_as_of INTEGER,
            status TEXT NOT NULL
                CHECK (status IN ('OPEN', 'TP1', 'TP2', 'SL', 'CLOSED', 'EXPIRED')),
            opened_ms INTEGER NOT NULL,
            expires_ms INTEGER,
            closed_ms INTEGER,
            close_price REAL,
            realized_r REAL,
            last_price REAL,
            last_price_ms INTEGER
        );
        CREATE INDEX picks_status ON picks (status, opened_ms);
        CREATE TABLE pick_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pick_id INTEGER NOT NULL REFERENCES picks (id),
            time_ms INTEGER NOT NULL,
            status TEXT NOT NULL,
            price REAL,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX pick_events_pick ON pick_events (pick_id, id);
        CREATE TABLE watchlist (
            symbol TEXT PRIMARY KEY,
            added_ms INTEGER NOT NULL
        );
        CREATE TABLE alert_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time_ms INTEGER NOT NULL,
            rule TEXT NOT NULL,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            delivered TEXT NOT NULL DEFAULT '',
            failed TEXT NOT NULL DEFAULT '',
            pending TEXT NOT NULL DEFAULT '',
            errors TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX alert_log_time ON alert_log (time_ms);
        CREATE INDEX alert_log_rule ON alert_log (rule, symbol, time_ms);
        """,
    ),
]
"""Every schema step, in order. Append only (each helper module owns the SQL of its step
until it ships: 2 is ``storage.signals``, 3 is ``storage.picks`` / ``storage.alerts``)."""


class DatabaseError(Exception):
    """The database cannot be opened or migrated; the message names the file."""


class Database:
    """Owns the one aiosqlite connection of the app.

    Args:
        path: Database file (created with its parent directory), or ``":memory:"``.
        migrations: Schema steps (tests pass their own lists).

    Use ``async with Database(path) as db`` or :meth:`open` / :meth:`close`.
    """

    def __init__(self, path: Path | str, migrations: list[Migration] | None = None) -> None:
        self.path = path
        self._migrations = MIGRATIONS if migrations is None else migrations
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection.

        Raises:
            DatabaseError: if the database is not open.
        """
        if self._conn is None:
            raise DatabaseError(f"database {self.path} is not open")
        return self._conn

    async def open(self) -> None:
        """Open (creating if needed), switch to WAL, and run pending migrations.

        Raises:
            DatabaseError: if the file cannot be opened, is not a database, or was written by a
                newer schema than this version knows.
        """
        if self._conn is not None:
            return
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(self.path)
        except Exception as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        try:
            # WAL: readers never block the writer; NORMAL sync is safe with WAL.
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await self._migrate(conn)
        except DatabaseError:
            await conn.close()
            raise
        except Exception as exc:
            await conn.close()
            raise DatabaseError(f"cannot use database {self.path}: {exc}") from None
        self._conn = conn

    async def close(self) -> None:
        """Close the connection (no-op when closed)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """Highest applied migration number (0 for a fresh database)."""
        return await _current_version(self.conn)

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
        )
        await conn.commit()
        current = await _current_version(conn)
        known = max((m.version for m in self._migrations), default=0)
        if current > known:
            raise DatabaseError(
                f"database {self.path} has schema version {current}, newer than this perpscope "
                f"knows ({known}); upgrade perpscope or use another data dir"
            )
        for migration in sorted(self._migrations, key=lambda m: m.version):
            if migration.version <= current:
                continue
            log.info("migrating %s to schema %d: %s", self.path, migration.version, migration.name)
            # executescript commits first; wrap the step so it applies whole or not at all.
            await conn.executescript(
                "BEGIN;\n"
                + migration.sql
                + f"\nINSERT INTO schema_version (version, name, applied_ms) VALUES "
                f"({migration.version}, '{migration.name.replace(chr(39), chr(39) * 2)}', "
                f"{int(time.time() * 1000)});\nCOMMIT;"
            )


async def _current_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT MAX(version) FROM schema_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0
