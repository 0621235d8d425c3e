"""storage.db: WAL, ordered migrations recorded in schema_version, clear errors."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from storage.db import MIGRATIONS, Database, DatabaseError, Migration


async def test_fresh_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "perpscope.db"
    async with Database(path) as db:
        assert await db.schema_version() == MIGRATIONS[-1].version
        async with db.conn.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)
        async with db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ) as cursor:
            tables = {row[0] for row in await cursor.fetchall()}
    assert {"schema_version", "chat_messages", "verdicts"} <= tables
    assert path.is_file()


async def test_later_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "perpscope.db"
    async with Database(path):
        pass
    extra = [
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "later one", "CREATE TABLE later_one (id INTEGER);"),
        Migration(len(MIGRATIONS) + 2, "later two", "CREATE TABLE later_two (id INTEGER);"),
    ]
    async with Database(path, extra) as db:
        assert await db.schema_version() == len(MIGRATIONS) + 2
    # Reopening applies nothing twice (a second CREATE TABLE would fail).
    db = Database(path, extra)
    async with db, db.conn.execute("SELECT version, name FROM schema_version") as cursor:
        rows = await cursor.fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 3))
    assert rows[-1][1] == "later two"


async def test_failed_migration_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "perpscope.db"
    broken = [*MIGRATIONS, Migration(99, "broken", "CREATE TABLE t (id INTEGER); NOT SQL;")]
    with pytest.raises(DatabaseError) as info:
        await Database(path, broken).open()
    assert str(path) in str(info.value)
    async with aiosqlite.connect(path) as conn:
        cursor = await conn.execute("SELECT name FROM sqlite_master WHERE name = 't'")
        assert await cursor.fetchone() is None


async def test_newer_schema_and_garbage_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "perpscope.db"
    newer = [*MIGRATIONS, Migration(50, "future", "CREATE TABLE future (id INTEGER);")]
    async with Database(path, newer):
        pass
    with pytest.raises(DatabaseError) as info:
        await Database(path).open()
    assert "newer than this perpscope knows" in str(info.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(DatabaseError) as garbage_info:
        await Database(garbage).open()
    assert str(garbage) in str(garbage_info.value)


async def test_conn_before_open_is_a_clear_error(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    with pytest.raises(DatabaseError, match="is not open"):
        _ = db.conn
