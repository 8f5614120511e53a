"""The credentials generation: one row every process reads before trusting a remembered key.

Every change that can make a remembered access key wrong (a key deactivated, re-activated or
deleted, a user deleted, the administrator key re-installed) writes a new random value to the
`credentials-epoch` row of `server_keys`, in the same transaction as the change. A process
remembers a key's row together with the generation it read *before* reading the row, and uses
it only while the generation is still that value. So a deactivated key is refused by every
worker and node from the first request after the change commits, and a remembered row costs one
tiny indexed read instead of the join of `access_keys` and `users`.

On a SQLite file that read goes through a plain `sqlite3` connection of its own (a few
microseconds: no SQLAlchemy statement to build); elsewhere it is one primary-key SELECT.
Nothing here caches a decision: the signature is still checked, and authorization still runs,
on every request.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections import OrderedDict
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import make_url

from cargobay.metadata import schema
from cargobay.metadata.db import Conn, Database
from cargobay.metadata.sql import upsert

EPOCH_KEY = "credentials-epoch"
_READ = select(schema.server_keys.c.value).where(schema.server_keys.c.name == EPOCH_KEY)
_SQL = "SELECT value FROM server_keys WHERE name = ?"

T = TypeVar("T")


class Generation:
    """Reads the current credentials generation (None before any change was ever made)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._path = _sqlite_file(db)
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    async def current(self) -> str | None:
        if self._path is not None:
            return self._read_file()
        async with self.db.read_now() as conn:
            return (await conn.execute(_READ)).scalar_one_or_none()

    def _read_file(self) -> str | None:
        if self._conn is None or self._pid != os.getpid():  # reopened after a fork
            self._conn = _open_reader(self._path or "")
            self._pid = os.getpid()
        row = self._conn.execute(_SQL, (EPOCH_KEY,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


async def bump(conn: Conn) -> None:
    """Start a new generation, inside the caller's write transaction (see the module's note)."""
    await upsert(
        conn,
        schema.server_keys,
        ["name"],
        name=EPOCH_KEY,
        value=secrets.token_hex(8),
        created_at=time.time(),
    )


class Remembered(Generic[T]):
    """A bounded LRU of values per access key id, each valid only in the generation it was read
    in. Holds what was read from the database (a key's row), never whether a request was
    allowed."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str | None, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_id: str, generation: str | None) -> T | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry[0] != generation:
            del self._entries[key_id]
            return None
        self._entries.move_to_end(key_id)
        return entry[1]

    def put(self, key_id: str, generation: str | None, value: T) -> None:
        self._entries[key_id] = (generation, value)
        self._entries.move_to_end(key_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, *key_ids: str) -> None:
        for key_id in key_ids:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        self._entries.clear()


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
    # the connection is only used on the event loop, between awaits.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA query_only=ON")
    return conn
