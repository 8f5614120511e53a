"""Small SQL helpers that must behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, select

from cargobay.metadata.conn import Conn


def _insert(conn: Conn, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT; each dialect is imported only where it is
    used, so an embedded (SQLite) process never loads PostgreSQL's."""
    return insert_statement(conn.dialect.name, table)


def insert_statement(dialect: str, table: Table) -> Any:
    """`_insert` by the dialect's name (for statements built once, `metadata.hotwrite`)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(table)


def insert_ignore(conn: Conn, table: Table, **values: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: idempotent links and registrations."""
    return conn.execute(_insert(conn, table).values(**values).on_conflict_do_nothing())


def upsert(conn: Conn, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET the other columns."""
    stmt = _insert(conn, table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def add_counts(conn: Conn, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET counter = counter + new: lossless counters
    that many workers and nodes can add to at once."""
    stmt = _insert(conn, table).values(**values)
    update = {k: table.c[k] + stmt.excluded[k] for k in values if k not in keys}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def add_counts_many(
    conn: Conn, table: Table, keys: list[str], counter: str, rows: list[dict[str, Any]]
) -> Any:
    """`add_counts` for several rows in one statement (`counter` is the column added to)."""
    stmt = _insert(conn, table).values(rows)
    update = {counter: table.c[counter] + stmt.excluded[counter]}
    return conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


async def names_in_order(conn: Conn, query: Any) -> list[str]:
    """The one-column `query`'s values, in its (lexical) order. On SQLite the JSON array is
    built in C, far cheaper than thousands of result rows; the sort (linear on sorted input)
    keeps the order exact whatever the aggregate does (Python's str order is SQLite's default
    BINARY order). Elsewhere, the rows."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy import func, select

        names = query.subquery()
        array = (await conn.execute(select(func.json_group_array(names.c[0])))).scalar()
        return sorted(json.loads(array or "[]"))
    return list((await conn.execute(query)).scalars())


async def lock_rows(conn: Conn, table: Table, match: Any) -> None:
    """Lock the rows of `table` that `match` selects FOR UPDATE until the transaction ends, in
    primary-key order (two transactions locking overlapping sets so cannot deadlock), on
    PostgreSQL; nothing on SQLite, whose write transaction already excludes every other
    writer (so no statement is spent there)."""
    if conn.dialect.name != "sqlite":
        key = list(table.primary_key.columns)
        await conn.execute(select(*key).where(match).order_by(*key).with_for_update())
