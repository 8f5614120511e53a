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

from cargobay.metadata.db import WAL_BACKSTOP_PAGES, Database


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
