"""Blob records: the deployment's blobs, their links into repositories (a blob is visible in
a repository once linked), and the copies kept under KMS keys."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import bindparam, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records import gcqueue
from cargobay.metadata.records.archives import blob_archived_clause
from cargobay.metadata.sql import insert_ignore, upsert

b, rb = schema.blobs, schema.repository_blobs


def _linked_size(repository_id: int, digest: str) -> Any:
    return (
        select(b.c.size)
        .join(rb, rb.c.digest == b.c.digest)
        .where(rb.c.repository_id == repository_id, rb.c.digest == digest)
    )


async def linked_size(conn: Conn, repository_id: int, digest: str) -> int | None:
    """The size of a blob linked to the repository, or None."""
    row = (await conn.execute(_linked_size(repository_id, digest))).first()
    return None if row is None else int(row.size)


_LINKED_SIZE = HotRead(
    select(b.c.size)
    .join(rb, rb.c.digest == b.c.digest)
    .where(rb.c.repository_id == bindparam("repository_id"), rb.c.digest == bindparam("digest"))
)


async def linked_size_now(db: Database, repository_id: int, digest: str) -> int | None:
    """`linked_size` as one `metadata.hot` lookup (CompleteLayerUpload asks it of every
    layer it registers)."""
    row = await _LINKED_SIZE.first(db, {"repository_id": repository_id, "digest": digest})
    return None if row is None else int(row.size)


_PULL_STAT = HotRead(
    select(
        b.c.size,
        blob_archived_clause(bindparam("repository_id"), bindparam("digest")).label("archived"),
    )
    .join(rb, rb.c.digest == b.c.digest)
    .where(rb.c.repository_id == bindparam("repository_id"), rb.c.digest == bindparam("digest"))
)


async def pull_stat(db: Database, repository_id: int, digest: str) -> tuple[int, bool] | None:
    """For a blob GET or HEAD, in one statement (a `HotRead`): the size of a blob linked to
    the repository and whether only archived images of it reference the blob
    (`archives.blob_archived`), or None when it is not linked."""
    row = await _PULL_STAT.first(db, {"repository_id": repository_id, "digest": digest})
    return None if row is None else (int(row.size), bool(row.archived))


async def linked_size_locked(conn: Conn, repository_id: int, digest: str) -> int | None:
    """`linked_size`, with the blob row locked for share on PostgreSQL (SQLite's write
    transaction already excludes garbage collection): it cannot be collected before the
    transaction ends."""
    query = _linked_size(repository_id, digest).with_for_update(read=True, of=b)
    row = (await conn.execute(query)).first()
    return None if row is None else int(row.size)


async def stored_size(conn: Conn, digest: str) -> int | None:
    """The size of a blob the deployment holds (in any repository), or None."""
    found = (await conn.execute(select(b.c.size).where(b.c.digest == digest))).scalar_one_or_none()
    return None if found is None else int(found)


async def link(conn: Conn, repository_id: int, digest: str, size: int) -> None:
    """Record committed bytes and link them to the repository (idempotent)."""
    now = time.time()
    await insert_ignore(conn, b, digest=digest, size=size, created_at=now)
    await gcqueue.enqueue(conn, repository_id, [digest], now)  # reclaimed if never referenced
    await insert_ignore(conn, rb, repository_id=repository_id, digest=digest, created_at=now)


async def mount(conn: Conn, source_id: int, target_id: int, digest: str) -> int | None:
    """Link the blob the source repository links into the target (a cross-repository mount);
    its size, or None (and nothing linked) when the source does not link it. The blob row is
    locked for share on PostgreSQL, so GC cannot remove it before the transaction ends; the
    target's queue row is taken before that lock, in GC's lock order (`records.gcqueue`)."""
    now = time.time()
    await gcqueue.enqueue(conn, target_id, [digest], now)  # reclaimed if never referenced
    size = await linked_size_locked(conn, source_id, digest)
    if size is not None:
        await upsert(
            conn,
            rb,
            ["repository_id", "digest"],
            repository_id=target_id,
            digest=digest,
            created_at=now,
        )
    return size


async def unlink(conn: Conn, repository_id: int, digest: str) -> bool:
    """Remove a blob's link; whether there was one. The blob is queued first (GC's lock
    order, `records.gcqueue`), whether or not the link was there: GC finds it in use then."""
    await gcqueue.enqueue(conn, gcqueue.NO_REPOSITORY, [digest], gcqueue.AT_ONCE)
    result = await conn.execute(
        rb.delete().where(rb.c.repository_id == repository_id, rb.c.digest == digest)
    )
    return bool(result.rowcount)


async def record_copy(conn: Conn, digest: str, key_id: str) -> None:
    """Note that the copy of `digest` under `key_id` exists, refreshing its time."""
    await upsert(
        conn,
        schema.blob_copies,
        ["digest", "key_id"],
        digest=digest,
        key_id=key_id,
        created_at=time.time(),
    )
