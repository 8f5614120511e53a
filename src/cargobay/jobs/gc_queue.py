"""GC from its queue (`gc_queue`): the candidates the delete, upload and mount paths wrote, so a
run costs the garbage (and the recent uploads still in their grace period), not the registry.

Each batch of queued (repository, digest) pairs is handled in one write transaction that
first takes the queue rows (deleting them: on PostgreSQL a concurrent enqueue of the same pair
waits for it, or inserts again after it), then does what the full sweep does for those keys
only, with the same conditions: lock the links and delete those no manifest of their
repository references, then lock the blobs and delete those with no link and no reference
(their bytes before the commit), then the encrypted copies no repository under their key
links. Every condition is re-checked in the statement that deletes, after the lock, exactly as
in the sweep (docs/gc.md), so a push that re-links or references a queued blob keeps it. A
candidate still in its grace period goes back on the queue with its own time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import and_, exists, select, tuple_

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import gcqueue

q, b, rb = schema.gc_queue, schema.blobs, schema.repository_blobs
FOREVER = 1e18  # a cutoff no time reaches: "garbage once its grace period is over"

Condition = Callable[[float], Any]
Gone = Callable[[str, Any], Awaitable[None]]


def eligible(cutoff: float) -> Any:
    """Queue rows whose grace period is over."""
    return q.c.since < cutoff


async def _take(conn: Conn, keys: Sequence[tuple[int, str]], cutoff: float) -> list[Any]:
    statement = (
        q.delete()
        .where(tuple_(q.c.repository_id, q.c.digest).in_(keys), eligible(cutoff))
        .returning(q.c.repository_id, q.c.digest)
    )
    return list(await conn.execute(statement))


async def _remove_links(
    conn: Conn, pairs: list[tuple[int, str]], unreferenced: Condition, cutoff: float
) -> int:
    if not pairs:
        return 0
    match = tuple_(rb.c.repository_id, rb.c.digest).in_(pairs)
    await conn.execute(select(rb.c.digest).where(match).with_for_update())  # not SQLite
    gone = await conn.execute(rb.delete().where(match, unreferenced(cutoff)).returning(rb.c.digest))
    return len(gone.all())


async def _waiting(
    conn: Conn, pairs: list[tuple[int, str]], digests: list[str], conditions: dict[str, Condition]
) -> list[dict[str, Any]]:
    """Queue rows for the candidates that would be garbage but for their grace period."""
    rows: dict[tuple[int, str], float] = {}
    if pairs:
        match = tuple_(rb.c.repository_id, rb.c.digest).in_(pairs)
        query = select(rb.c.repository_id, rb.c.digest, rb.c.created_at).where(
            match, conditions["link"](FOREVER)
        )
        for row in await conn.execute(query):
            rows[(row.repository_id, row.digest)] = row.created_at
    for name, table in (("blob", b), ("copy", schema.blob_copies)):
        query = select(table.c.digest, table.c.created_at).where(
            table.c.digest.in_(digests), conditions[name](FOREVER)
        )
        for row in await conn.execute(query):
            key = (gcqueue.NO_REPOSITORY, row.digest)
            rows[key] = max(rows.get(key, 0.0), row.created_at)
    return [{"repository_id": r, "digest": d, "since": s} for (r, d), s in rows.items()]


async def drain(
    db: Database,
    cutoff: float,
    conditions: dict[str, Condition],
    *,
    blob_gone: Gone,
    copy_gone: Gone,
    batch: int,
    per_write: int,
) -> tuple[int, int]:
    """Handle every queue row whose grace period is over, in key order, `per_write` rows per
    write transaction. `conditions` are the sweep's: "link" (unreferenced link), "blob" (orphan
    blob), "copy" (orphan encrypted copy), each a function of the cutoff. Returns (queue rows
    taken, links removed)."""
    taken = links_removed = 0
    after: tuple[int, str] | None = None
    key = tuple_(q.c.repository_id, q.c.digest)
    while True:
        query = select(q.c.repository_id, q.c.digest).where(eligible(cutoff))
        if after is not None:
            query = query.where(key > tuple_(*after))
        query = query.order_by(q.c.repository_id, q.c.digest).limit(batch)
        async with db.read() as conn:
            candidates = [(row.repository_id, row.digest) for row in await conn.execute(query)]
        if not candidates:
            return taken, links_removed
        after = candidates[-1]
        for start in range(0, len(candidates), per_write):
            async with db.write() as conn:
                claimed = await _take(conn, candidates[start : start + per_write], cutoff)
                taken += len(claimed)
                pairs = [(r, d) for r, d in claimed if r != gcqueue.NO_REPOSITORY]
                digests = sorted({d for _r, d in claimed})
                links_removed += await _remove_links(conn, pairs, conditions["link"], cutoff)
                if digests:
                    await _remove(conn, b, digests, conditions["blob"](cutoff), blob_gone)
                    c = schema.blob_copies
                    await _remove(conn, c, digests, conditions["copy"](cutoff), copy_gone)
                    waiting = await _waiting(conn, pairs, digests, conditions)
                    if waiting:
                        await _requeue(conn, waiting)
        if len(candidates) < batch:
            return taken, links_removed


async def _remove(conn: Conn, table: Any, digests: list[str], condition: Any, gone: Gone) -> None:
    """Lock the rows of these digests, delete those that still match, and call `gone` for
    each before the transaction commits."""
    match = table.c.digest.in_(digests)
    await conn.execute(select(table.c.digest).where(match).with_for_update())  # not SQLite
    columns = [*table.primary_key.columns, *([table.c.size] if "size" in table.c else [])]
    statement = table.delete().where(match, condition).returning(*columns)
    for row in (await conn.execute(statement)).all():
        await gone(row.digest, row)


async def _requeue(conn: Conn, rows: list[dict[str, Any]]) -> None:
    from cargobay.metadata.sql import _insert

    stmt = _insert(conn, q).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["repository_id", "digest"], set_={"since": stmt.excluded.since}
        )
    )


def queued_digests(cutoff: float) -> Any:
    """The digests queued with their grace period over (for the dry run)."""
    return select(q.c.digest).where(eligible(cutoff))


def queued_pair(cutoff: float) -> Any:
    """Whether a link's (repository, digest) is queued with its grace period over."""
    return exists().where(
        and_(q.c.repository_id == rb.c.repository_id, q.c.digest == rb.c.digest, eligible(cutoff))
    )
