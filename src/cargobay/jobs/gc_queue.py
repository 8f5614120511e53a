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

from sqlalchemy import and_, exists, or_, select, tuple_

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import gcqueue
from cargobay.metadata.sql import lock_rows

q, b, rb = schema.gc_queue, schema.blobs, schema.repository_blobs
FOREVER = 1e18  # a cutoff no time reaches: "garbage once its grace period is over"

Condition = Callable[[float], Any]
Gone = Callable[[str, Any], Awaitable[None]]


def _pairs(repository: Any, digest: Any, keys: Sequence[tuple[int, str]]) -> Any:
    """`(repository, digest) IN keys` as one `repository = ? AND digest IN (...)` per
    repository: a primary-key lookup per key on every backend (a row-value IN list can make
    SQLite scan the table)."""
    grouped: dict[int, list[str]] = {}
    for r, d in keys:
        grouped.setdefault(r, []).append(d)
    return or_(*(and_(repository == r, digest.in_(ds)) for r, ds in grouped.items()))


def eligible(cutoff: float) -> Any:
    """Queue rows whose grace period is over."""
    return q.c.since < cutoff


async def _take(conn: Conn, keys: Sequence[tuple[int, str]], cutoff: float) -> list[Any]:
    """Delete and return the keys' queue rows whose grace period is over, locked in key order
    first (the DELETE alone would lock them in the table's physical order)."""
    match = _pairs(q.c.repository_id, q.c.digest, keys)
    await _lock(conn, q, match)
    statement = q.delete().where(match, eligible(cutoff)).returning(q.c.repository_id, q.c.digest)
    return list(await conn.execute(statement))


async def _lock(conn: Conn, table: Any, match: Any) -> None:
    """Lock the matching rows FOR UPDATE (`metadata.sql.lock_rows`)."""
    await lock_rows(conn, table, match)


async def _handle(
    conn: Conn,
    claimed: list[Any],
    cutoff: float,
    conditions: dict[str, Condition],
    blob_gone: Gone,
    copy_gone: Gone,
) -> int:
    """Links, then blobs, then encrypted copies of the taken queue rows, each locked and
    re-checked in the statement that deletes it; what is garbage but for its grace period goes
    back on the queue, under a key this transaction took (a blob under any of its digest's
    keys: GC checks a key's link, then its blob), so GC writes no queue row it has not locked
    first (the lock order, `records.gcqueue`). Returns the links removed. (Three statements
    per batch when every candidate is an orphan blob without copies.)"""
    pairs = [(r, d) for r, d in claimed if r != gcqueue.NO_REPOSITORY]
    digests = sorted({d for _r, d in claimed})
    key_of = {d: (r, d) for r, d in claimed}
    waiting: dict[tuple[int, str], float] = {}

    def wait(key: tuple[int, str], since: float) -> None:
        waiting[key] = max(waiting.get(key, 0.0), since)

    removed = 0
    if pairs:
        match = _pairs(rb.c.repository_id, rb.c.digest, pairs)
        await _lock(conn, rb, match)
        statement = rb.delete().where(match, conditions["link"](cutoff)).returning(rb.c.digest)
        removed = len((await conn.execute(statement)).all())
        young = select(rb.c.repository_id, rb.c.digest, rb.c.created_at).where(
            match, conditions["link"](FOREVER)
        )
        for row in await conn.execute(young):
            wait((row.repository_id, row.digest), row.created_at)
    gone = await _remove(conn, b, digests, conditions["blob"](cutoff), blob_gone)
    rest = [d for d in digests if d not in gone]
    if rest:
        young = select(b.c.digest, b.c.created_at).where(
            b.c.digest.in_(rest), conditions["blob"](FOREVER)
        )
        for row in await conn.execute(young):
            wait(key_of[row.digest], row.created_at)
    c = schema.blob_copies
    copies = (await conn.execute(select(c.c.digest).where(c.c.digest.in_(digests)))).all()
    if copies:
        with_copies = sorted({row.digest for row in copies})
        await _remove(conn, c, with_copies, conditions["copy"](cutoff), copy_gone)
        young = select(c.c.digest, c.c.created_at).where(
            c.c.digest.in_(with_copies), conditions["copy"](FOREVER)
        )
        for row in await conn.execute(young):
            wait(key_of[row.digest], row.created_at)
    if waiting:
        await _requeue(
            conn, [{"repository_id": r, "digest": d, "since": t} for (r, d), t in waiting.items()]
        )
    return removed


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
                if claimed:
                    links_removed += await _handle(
                        conn, claimed, cutoff, conditions, blob_gone, copy_gone
                    )
        if len(candidates) < batch:
            return taken, links_removed


async def _remove(
    conn: Conn, table: Any, digests: list[str], condition: Any, gone: Gone
) -> set[str]:
    """Lock the rows of these digests, delete those that still match, and call `gone` for
    each before the transaction commits; the digests deleted."""
    match = table.c.digest.in_(digests)
    await _lock(conn, table, match)
    columns = [*table.primary_key.columns, *([table.c.size] if "size" in table.c else [])]
    statement = table.delete().where(match, condition).returning(*columns)
    deleted = set()
    for row in (await conn.execute(statement)).all():
        deleted.add(row.digest)
        await gone(row.digest, row)
    return deleted


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
