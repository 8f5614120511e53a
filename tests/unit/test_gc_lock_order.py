"""GC and the writers that link or unlink blobs take their row locks in one order (queue rows,
then links, then blobs; `records.gcqueue`), so a GC batch and a push never deadlock on
PostgreSQL. Each test stages the interleaving that deadlocked before (CI, stop 24: an upload's
registration against a GC batch): GC takes a queue row, the writer starts and blocks, then
GC locks the links and blobs and commits; both must complete. SQLite serializes writers, so
the interleaving cannot arise there."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

import pgcluster
from cargobay.jobs import gc, gc_queue
from cargobay.metadata import migrations, schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs, gcqueue, repositories, uploads

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(
        pgcluster.backend() != "postgres", reason="SQLite serializes every write transaction"
    ),
]
OLD = 1_000.0
LAYER = "sha256:" + hashlib.sha256(b"lock-order").hexdigest()
CONDITIONS = {"link": gc._unreferenced_link, "blob": gc._orphan_blob, "copy": gc._orphan_copy}


async def _nothing(_digest: str, _row: Any) -> None:
    return None


async def _blocked(db: Database, deadline: float = 30.0) -> None:
    """Return once some backend of this database waits on a row lock (the writer)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        async with db.read_now() as conn:
            if (await conn.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the writer never waited on GC's locks")


Writer = Callable[[Conn, int, int], Awaitable[Any]]


async def _register(conn: Conn, repo: int, _source: int) -> None:
    await uploads.register(conn, repo, LAYER, 7)


async def _link(conn: Conn, repo: int, _source: int) -> None:
    await blobs.link(conn, repo, LAYER, 7)


async def _mount(conn: Conn, repo: int, source: int) -> None:
    assert await blobs.mount(conn, source, repo, LAYER) == 7


async def _unlink(conn: Conn, repo: int, _source: int) -> None:
    await blobs.unlink(conn, repo, LAYER)


@pytest.mark.parametrize("writer", [_register, _link, _mount, _unlink], ids=lambda w: w.__name__)
def test_a_writer_racing_a_gc_batch_completes(tmp_path: Path, writer: Writer) -> None:
    async def scenario() -> None:
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
        await migrations.upgrade(url)
        db = Database(url)
        try:
            async with db.write() as conn:
                ids = []
                for name in ("lock/target", "lock/source"):
                    assert await repositories.insert(conn, "000000000000", name)
                    ids.append(await repositories.id_of(conn, "000000000000", name))
                repo, source = ids
                await blobs.link(conn, repo, LAYER, 7)
                await blobs.link(conn, source, LAYER, 7)
                await gcqueue.enqueue(conn, gcqueue.NO_REPOSITORY, [LAYER], OLD)
                await gcqueue.enqueue(conn, repo, [LAYER], OLD)
                for table in (schema.blobs, schema.repository_blobs):
                    await conn.execute(table.update().values(created_at=OLD))
            cutoff = OLD + 1
            async with db.write() as gc_conn:
                keys = [(gcqueue.NO_REPOSITORY, LAYER), (repo, LAYER)]
                claimed = await gc_queue._take(gc_conn, keys, cutoff)
                assert len(claimed) == 2

                async def write() -> None:
                    async with db.write() as conn:
                        await writer(conn, repo, source)

                task = asyncio.create_task(write())
                await _blocked(db)
                await gc_queue._handle(gc_conn, claimed, cutoff, CONDITIONS, _nothing, _nothing)
            await task  # a deadlock would have failed one of the two

            async with db.read_now() as conn:
                rb = schema.repository_blobs
                linked = await conn.scalar(
                    select(rb.c.digest).where(rb.c.repository_id == repo, rb.c.digest == LAYER)
                )
                queued = (await conn.execute(select(schema.gc_queue))).all()
            # GC removed the unreferenced link first; the writer's change came after it.
            assert (linked is None) == (writer is _unlink)
            assert queued, "the writer's change must leave GC a candidate"
        finally:
            await db.dispose()

    asyncio.run(scenario())
