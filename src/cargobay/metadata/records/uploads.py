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
from cargobay.metadata.hotwrite import HotWrite
from cargobay.metadata.sql import insert_statement

u = schema.uploads

# The upload path's statements, built once and run at the driver level on SQLite
# (`metadata.hotwrite`): constructing and keying a statement cost about as much as running it
# on SQLite, and a small blob's push is a handful of them.
_START = HotWrite(
    lambda _dialect: u.insert(), names=("id", "repository_id", "size", "created_at", "updated_at")
)
_END = HotWrite.of(u.delete().where(u.c.id == bindparam("upload_id")))
_END_AT = HotWrite.of(
    u.delete().where(u.c.id == bindparam("upload_id"), u.c.size == bindparam("held"))
)
_GROW = HotWrite.of(
    u.update()
    .where(u.c.id == bindparam("upload_id"), u.c.size == bindparam("held"))
    .values(size=bindparam("new_size"), updated_at=bindparam("now"))
)
_KEYS = ("repository_id", "digest")
_BLOB = HotWrite(
    lambda dialect: insert_statement(dialect, schema.blobs).on_conflict_do_nothing(),
    names=("digest", "size", "created_at"),
)


def _refresh(table: Any, column: str) -> HotWrite:
    """INSERT a (repository, digest) row, or set its `column` to the new value."""

    def build(dialect: str) -> Any:
        base = insert_statement(dialect, table)
        return base.on_conflict_do_update(
            index_elements=list(_KEYS), set_={column: base.excluded[column]}
        )

    return HotWrite(build, names=(*_KEYS, column))


_LINK = _refresh(schema.repository_blobs, "created_at")
_QUEUE = _refresh(schema.gc_queue, "since")


async def start(conn: Conn, upload_id: str, repository_id: int, now: float) -> None:
    row = {
        "id": upload_id,
        "repository_id": repository_id,
        "size": 0,
        "created_at": now,
        "updated_at": now,
    }
    await _START.run(conn, row)


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
    changed = await _GROW.run(
        conn, {"upload_id": upload_id, "held": size, "new_size": new_size, "now": time.time()}
    )
    return changed == 1


async def end(conn: Conn, upload_id: str) -> None:
    await _END.run(conn, {"upload_id": upload_id})


async def end_at(conn: Conn, upload_id: str, size: int) -> bool:
    """End a session that still holds `size` bytes; False when it does not (a concurrent
    request changed or ended it first)."""
    return await _END_AT.run(conn, {"upload_id": upload_id, "held": size}) == 1


async def register(conn: Conn, repository_id: int, digest: str, size: int) -> None:
    """Make an uploaded blob visible in the repository: its row (idempotent), its GC queue
    entry (reclaimed if no manifest comes to reference it) and its link (its time refreshed,
    so GC's grace period starts again), with statements built once per dialect. The queue row
    is written before the link: GC's lock order (`records.gcqueue`)."""
    now = time.time()
    await _BLOB.run(conn, {"digest": digest, "size": size, "created_at": now})
    link = {"repository_id": repository_id, "digest": digest}
    await _QUEUE.run(conn, {**link, "since": now})
    await _LINK.run(conn, {**link, "created_at": now})
