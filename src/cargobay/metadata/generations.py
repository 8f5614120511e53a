"""Generation rows: a `server_keys` value that a change rewrites (a new random value, in the
change's own transaction) and that every request may read to learn whether what its process
remembers is still current (`iam.keygeneration` for access keys).

Read on every request, so as a `metadata.hot` lookup: on a SQLite file on the process's own
driver connection (a few microseconds; no SQLAlchemy statement to execute), on PostgreSQL as one
round trip outside a transaction.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import String, bindparam, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.sql import upsert

_READ = HotRead(
    select(schema.server_keys.c.value).where(
        schema.server_keys.c.name == bindparam("generation", type_=String)
    )
)


class GenerationReader:
    """Reads one generation row (None until the first change writes it)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name

    async def current(self) -> str | None:
        row = await _READ.first(self.db, {"generation": self.name})
        return None if row is None else str(row.value)

    def close(self) -> None:
        """Nothing to release: the driver connection is the database's (`Database.dispose`)."""


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
