"""Database engines and transactions.

Reads and writes go through separate helpers so that, on SQLite, a write transaction takes the
write lock up front (`BEGIN IMMEDIATE`) and waits on the busy timeout instead of failing with
"database is locked" when two worker processes write at once. On PostgreSQL both are ordinary
transactions; races are settled by unique keys and conditional updates in the queries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cargobay.metadata import schema


class SchemaOutOfDate(RuntimeError):
    pass


def async_url(url: str) -> str:
    """Map plain sqlite:// and postgresql:// URLs to their asyncio drivers."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One process's handle on the metadata database."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.reader = self._sqlite_engine(immediate=False)
            self.writer = self._sqlite_engine(immediate=True)
        else:
            self.reader = self.writer = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    def _sqlite_engine(self, *, immediate: bool) -> AsyncEngine:
        engine = create_async_engine(self.url, pool_size=2 if immediate else 5, max_overflow=8)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves; the driver's implicit transactions are deferred.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.writer.begin() as conn:
            yield conn

    async def create_schema(self) -> None:
        """Create missing tables and record the schema version (idempotent)."""
        async with self.write() as conn:
            await conn.run_sync(schema.metadata.create_all)
            row = (await conn.execute(select(schema.schema_info.c.version))).first()
            if row is None:
                await conn.execute(
                    schema.schema_info.insert().values(id=1, version=schema.SCHEMA_VERSION)
                )
            elif row.version > schema.SCHEMA_VERSION:
                raise SchemaOutOfDate(
                    f"database schema version {row.version} is newer than this cargobay "
                    f"understands ({schema.SCHEMA_VERSION}); upgrade cargobay"
                )

    async def check_schema(self) -> None:
        async with self.read() as conn:
            row = (await conn.execute(select(schema.schema_info.c.version))).first()
        if row is None or row.version != schema.SCHEMA_VERSION:
            raise SchemaOutOfDate("database schema is not initialised or out of date")

    async def dispose(self) -> None:
        await self.reader.dispose()
        if self.writer is not self.reader:
            await self.writer.dispose()


def now() -> float:
    return time.time()
