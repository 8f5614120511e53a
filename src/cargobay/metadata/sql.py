"""Small SQL helpers that must behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def _insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT; each dialect is imported only where it is
    used, so an embedded (SQLite) process never loads PostgreSQL's."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(table)


def insert_ignore(conn: AsyncConnection, table: Table, **values: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: idempotent links and registrations."""
    return conn.execute(_insert(conn, table).values(**values).on_conflict_do_nothing())


def upsert(conn: AsyncConnection, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET the other columns."""
    stmt = _insert(conn, table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def add_counts(conn: AsyncConnection, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET counter = counter + new: lossless counters
    that many workers and nodes can add to at once."""
    stmt = _insert(conn, table).values(**values)
    update = {k: table.c[k] + stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))
