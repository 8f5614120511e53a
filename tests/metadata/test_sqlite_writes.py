"""SQLite's write path on a database file: each process holds one writer connection between
transactions, a failed transaction leaves nothing behind, and WAL checkpoints run from a
thread off the write path (the writer connections' automatic ones only as a backstop) yet keep
the WAL bounded."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from cargobay.metadata import roundtrips
from cargobay.metadata.db import WAL_BACKSTOP_PAGES, Database
from cargobay.metadata.hotwrite import HotWrite


def _database(tmp_path: Path) -> tuple[Path, Database]:
    path = tmp_path / "writes.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    return path, Database(f"sqlite:///{path}")


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM rows").fetchone()[0]


def test_checkpoints_keep_the_wal_bounded_without_automatic_ones(tmp_path: Path) -> None:
    path, db = _database(tmp_path)
    body = os.urandom(2048)

    async def scenario() -> None:
        try:
            async with db.write() as conn:
                # The writer's own automatic checkpoint is only a backstop (about 40 MiB of
                # WAL): what bounds the WAL below is the checkpointer.
                backstop = await conn.scalar(text("PRAGMA wal_autocheckpoint"))
                assert backstop == WAL_BACKSTOP_PAGES
            for _ in range(3000):
                async with db.write() as conn:
                    await conn.execute(text("INSERT INTO rows (body) VALUES (:b)"), {"b": body})
                await asyncio.sleep(0)  # as a server's requests let other tasks run
        finally:
            await db.dispose()  # waits for a checkpoint still running

    asyncio.run(scenario())
    assert _count(path) == 3000
    # About 8 KiB of frames a commit: 24 MiB of WAL if nothing were checkpointed, and below the
    # backstop's 40 MiB.
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size < 8 * 1024 * 1024, wal.stat().st_size


def test_a_failed_write_leaves_nothing_and_the_next_one_commits(tmp_path: Path) -> None:
    path, db = _database(tmp_path)

    async def scenario() -> None:
        try:
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    await conn.execute(text("INSERT INTO rows (body) VALUES (x'00')"))
                    raise RuntimeError("refused")
            assert _count(path) == 0
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO rows (body) VALUES (x'01')"))
            assert _count(path) == 1
            # The writer connection is held between transactions; if it is lost, the next
            # write opens another.
            held = db._writer_conn
            assert held is not None
            held[1].invalidate()
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO rows (body) VALUES (x'02')"))
            assert db._writer_conn is not None and db._writer_conn[1] is not held[1]
            assert _count(path) == 2
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_driver_begun_writes_wait_for_an_outside_writer_and_roll_back_whole(
    tmp_path: Path,
) -> None:
    """BEGIN IMMEDIATE and the commit run on the driver: a write waits while a writer outside
    the process holds SQLite's lock, then commits; a failed write of driver statements only
    (no SQLAlchemy transaction under it) leaves nothing; each BEGIN tried counts as a
    statement."""
    path, db = _database(tmp_path)
    insert = HotWrite.of(text("INSERT INTO rows (body) VALUES (x'03')"))

    async def scenario() -> None:
        outside = sqlite3.connect(path, isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, outside.execute, "COMMIT")
            with roundtrips.counting() as count:
                async with db.write() as conn:
                    assert await insert.run(conn, {}) == 1
            assert count.value > 2  # each BEGIN IMMEDIATE tried, and the insert
            assert _count(path) == 1
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    assert await insert.run(conn, {}) == 1
                    raise RuntimeError("refused")
            assert _count(path) == 1
            with roundtrips.counting() as count:
                async with db.write() as conn:  # the writer connection holds no transaction
                    await insert.run(conn, {})
            assert count.value == 2
            assert _count(path) == 2
        finally:
            outside.close()
            await db.dispose()

    asyncio.run(scenario())
