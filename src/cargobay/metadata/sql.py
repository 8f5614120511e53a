"""Small SQL helpers that must behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignore(conn: AsyncConnection, table: Table, **values: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: idempotent links and registrations."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


def upsert(conn: AsyncConnection, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET the other columns."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def add_counts(conn: AsyncConnection, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET counter = counter + new: lossless counters
    that many workers and nodes can add to at once."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).values(**values)
    update = {k: table.c[k] + stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))
