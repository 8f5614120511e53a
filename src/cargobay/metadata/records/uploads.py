"""Upload records: a blob upload session of a repository and how many bytes it holds (the
bytes themselves are the blob store's)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import bindparam, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.sql import ignoring, upserting

u = schema.uploads

# The upload path's statements, built once: constructing and keying a statement cost about
# as much as running it on SQLite, and a small blob's push is a handful of them.
_START = u.insert()
_END = u.delete().where(u.c.id == bindparam("upload_id"))
_END_AT = u.delete().where(u.c.id == bindparam("upload_id"), u.c.size == bindparam("size"))


async def start(conn: Conn, upload_id: str, repository_id: int, now: float) -> None:
    row = {
        "id": upload_id,
        "repository_id": repository_id,
        "size": 0,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(_START, row)


async def find(conn: Conn, repository_id: int, upload_id: str) -> Any | None:
    """The session (id, repository_id, size, created_at) if it is the repository's."""
    query = select(u.c.id, u.c.repository_id, u.c.size, u.c.created_at).where(
        u.c.id == upload_id, u.c.repository_id == repository_id
    )
    return (await conn.execute(query)).first()


_FIND = HotRead(
    select(u.c.id, u.c.repository_id, u.c.size, u.c.created_at).where(
        u.c.id == bindparam("upload_id"), u.c.repository_id == bindparam("repository_id")
    )
)


async def find_now(db: Database, repository_id: int, upload_id: str) -> Any | None:
    """`find` as one `metadata.hot` lookup (every part of an upload reads its size first)."""
    return await _FIND.first(db, {"upload_id": upload_id, "repository_id": repository_id})


async def grow(conn: Conn, upload_id: str, size: int, new_size: int) -> bool:
    """Move a session from `size` to `new_size` bytes; False when it no longer holds `size`
    (a concurrent request changed it first)."""
    result = await conn.execute(
        u.update()
        .where(u.c.id == upload_id, u.c.size == size)
        .values(size=new_size, updated_at=time.time())
    )
    return bool(result.rowcount)


async def end(conn: Conn, upload_id: str) -> None:
    await conn.execute(_END, {"upload_id": upload_id})


async def end_at(conn: Conn, upload_id: str, size: int) -> bool:
    """End a session that still holds `size` bytes; False when it does not (a concurrent
    request changed or ended it first)."""
    result = await conn.execute(_END_AT, {"upload_id": upload_id, "size": size})
    return bool(result.rowcount)


async def register(conn: Conn, repository_id: int, digest: str, size: int) -> None:
    """Make an uploaded blob visible in the repository: its row (idempotent), its link (its
    time refreshed, so GC's grace period starts again) and its GC queue entry (reclaimed if
    no manifest comes to reference it), with statements built once per dialect."""
    now = time.time()
    await conn.execute(
        ignoring(conn, schema.blobs), {"digest": digest, "size": size, "created_at": now}
    )
    link = {"repository_id": repository_id, "digest": digest}
    keys = ("repository_id", "digest")
    await conn.execute(
        upserting(conn, schema.repository_blobs, keys, ("created_at",)),
        {**link, "created_at": now},
    )
    await conn.execute(upserting(conn, schema.gc_queue, keys, ("since",)), {**link, "since": now})
