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
]
"""Every schema step, in order. Append only."""


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
