"""Generation rows: a `server_keys` value that a change rewrites (a new random value, in the
change's own transaction) and that every request may read to learn whether what its process
remembers is still current (`iam.keygeneration` for access keys).

Read on every request, so as cheaply as the backend allows: on a SQLite file through a plain
`sqlite3` connection of the process's own (a few microseconds; no SQLAlchemy statement to
build or execute), elsewhere as one primary-key SELECT.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time

from sqlalchemy import select
from sqlalchemy.engine import make_url

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert

_SQL = "SELECT value FROM server_keys WHERE name = ?"


class GenerationReader:
    """Reads one generation row (None until the first change writes it)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._query = select(schema.server_keys.c.value).where(schema.server_keys.c.name == name)
        self._path = _sqlite_file(db)
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    async def current(self) -> str | None:
        if self._path is not None:
            return self._read_file(self._path)
        async with self.db.read_now() as conn:
            return (await conn.execute(self._query)).scalar_one_or_none()

    def _read_file(self, path: str) -> str | None:
        if self._conn is None or self._pid != os.getpid():  # reopened after a fork
            self._conn = _open_reader(path)
            self._pid = os.getpid()
        row = self._conn.execute(_SQL, (self.name,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


async def bump(conn: Conn, name: str) -> None:
    """Write a new generation, inside the caller's write transaction."""
    await upsert(
        conn,
        schema.server_keys,
        ["name"],
        name=name,
        value=secrets.token_hex(8),
        created_at=time.time(),
    )


def _sqlite_file(db: Database) -> str | None:
    """The database file when `db` is SQLite on a file, else None."""
    if not db.is_sqlite:
        return None
    parsed = make_url(db.url)
    database = parsed.database or ""
    if not database or database == ":memory:" or "memory" in str(parsed.query):
        return None
    return database


def _open_reader(path: str) -> sqlite3.Connection:
    # Autocommit, so each SELECT sees the latest commit (WAL readers never wait for writers);
    # only used on the event loop, between awaits.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA query_only=ON")
    return conn
