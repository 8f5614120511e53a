"""Tag records: a tag names one manifest in its repository."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.hotwrite import HotWrite
from cargobay.metadata.sql import insert_statement, names_in_order

t = schema.tags
_KEY = ("repository_id", "name")
_COLUMNS = (*_KEY, "digest", "updated_at")


def _upsert(dialect: str) -> Any:
    base = insert_statement(dialect, t)
    moved = {k: base.excluded[k] for k in ("digest", "updated_at")}
    return base.on_conflict_do_update(index_elements=list(_KEY), set_=moved)


# A push's tag writes, built once per dialect and run on the driver in a SQLite file's write
# transaction (`metadata.hotwrite`).
_INSERT_IF_ABSENT = HotWrite(
    lambda dialect: insert_statement(dialect, t).on_conflict_do_nothing(), names=_COLUMNS
)
_PUT = HotWrite(_upsert, names=_COLUMNS)


async def digest_of(conn: Conn, repository_id: int, tag: str) -> str | None:
    """The digest `tag` names, or None."""
    query = select(t.c.digest).where(t.c.repository_id == repository_id, t.c.name == tag)
    return (await conn.execute(query)).scalar_one_or_none()


async def digests_of(conn: Conn, repository_id: int, tags: list[str]) -> dict[str, str]:
    """The digests the existing ones of `tags` name, in one query."""
    if not tags:
        return {}
    query = select(t.c.name, t.c.digest).where(
        t.c.repository_id == repository_id, t.c.name.in_(sorted(set(tags)))
    )
    return {row.name: row.digest for row in await conn.execute(query)}


async def on(conn: Conn, repository_id: int, digest: str) -> list[str]:
    """The tags on one manifest."""
    query = select(t.c.name).where(t.c.repository_id == repository_id, t.c.digest == digest)
    return [row.name for row in await conn.execute(query)]


async def on_each(conn: Conn, repository_id: int, digests: list[str]) -> dict[str, list[str]]:
    """The tags on each of `digests`, each list in byte order (empty lists included)."""
    found: dict[str, list[str]] = {d: [] for d in digests}
    if digests:
        query = (
            select(t.c.digest, t.c.name)
            .where(t.c.repository_id == repository_id, t.c.digest.in_(digests))
            # By digest first: the (repository, digest) index finds the few rows asked for;
            # ordering by name alone walks every tag of the repository (benchmarks/flat_costs).
            .order_by(t.c.digest, t.c.name)
        )
        for row in await conn.execute(query):
            found[row.digest].append(row.name)
    return found


async def insert_if_absent(conn: Conn, repository_id: int, tag: str, digest: str) -> bool:
    """Point a new tag at `digest`; False (and nothing changed) when the tag exists."""
    row = {"repository_id": repository_id, "name": tag, "digest": digest, "updated_at": time.time()}
    return bool(await _INSERT_IF_ABSENT.run(conn, row))


async def put(conn: Conn, repository_id: int, tag: str, digest: str) -> None:
    """Point `tag` at `digest`, moving it if it named another manifest."""
    row = {"repository_id": repository_id, "name": tag, "digest": digest, "updated_at": time.time()}
    await _PUT.run(conn, row)


async def delete(conn: Conn, repository_id: int, tag: str) -> bool:
    """Remove one tag; whether it existed."""
    result = await conn.execute(
        t.delete().where(t.c.repository_id == repository_id, t.c.name == tag)
    )
    return bool(result.rowcount)


async def delete_on(conn: Conn, repository_id: int, digest: str) -> list[str]:
    """Remove every tag on a manifest; their names, in byte order."""
    removed = await conn.execute(
        t.delete()
        .where(t.c.repository_id == repository_id, t.c.digest == digest)
        .returning(t.c.name)
    )
    return sorted(row.name for row in removed)


async def list_names(
    conn: Conn, repository_id: int, last: str | None, limit: int | None
) -> list[str]:
    """Tag names in byte order after `last`: an index range scan, any repository size."""
    query = select(t.c.name).where(t.c.repository_id == repository_id).order_by(t.c.name)
    if last:
        query = query.where(t.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return await names_in_order(conn, query)
