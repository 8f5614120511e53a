"""GC's queue of candidates (`gc_queue`): written in the same transaction as every change that
may leave a blob or a link unused, so GC reads the queue instead of scanning every blob.

A row names a (repository, digest) pair: GC re-checks that link and then the blob itself, each
under lock (jobs/gc.py). `since` is when the grace period starts: the link's creation for a
link just made (an upload or mount nothing references yet), 0 for a removal (the link's and
blob's own times still guard them). Repository 0 stands for "the blob only".

Lock order, on PostgreSQL: queue rows, then links, then blob rows, each in key order. GC
takes them so (jobs/gc_queue.py), and so does every writer that touches more than one of
them (an upload's registration, a link, a mount, an unlink): the other order deadlocks with
a concurrent GC batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Float, Integer, literal, select, true, union

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.sql import _insert

q = schema.gc_queue
NO_REPOSITORY = 0
AT_ONCE = 0.0


async def enqueue(
    conn: Conn, repository_id: int, digests: Iterable[str], since: float | None = None
) -> None:
    """Queue these digests of the repository (their grace period from `since`, default now);
    an entry already queued takes the new time."""
    when = time.time() if since is None else since
    rows = [
        {"repository_id": repository_id, "digest": d, "since": when} for d in sorted(set(digests))
    ]
    if not rows:
        return
    stmt = _insert(conn, q).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["repository_id", "digest"], set_={"since": stmt.excluded.since}
        )
    )


async def enqueue_repository(conn: Conn, repository_id: int) -> None:
    """Queue every blob a repository links or references (before it is deleted): each may be
    used nowhere else."""
    rb, mr = schema.repository_blobs, schema.manifest_references
    digests = union(
        select(rb.c.digest).where(rb.c.repository_id == repository_id),
        select(mr.c.target_digest).where(mr.c.repository_id == repository_id, mr.c.kind == "blob"),
    ).subquery()
    rows = (
        select(literal(repository_id, Integer), digests.c[0], literal(AT_ONCE, Float))
        .where(true())  # SQLite needs a WHERE before ON CONFLICT in an INSERT ... SELECT
        .order_by(digests.c[0])  # the lock order
    )
    stmt = _insert(conn, q).from_select(["repository_id", "digest", "since"], rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["repository_id", "digest"], set_={"since": stmt.excluded.since}
        )
    )
