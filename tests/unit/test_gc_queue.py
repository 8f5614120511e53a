"""GC from its queue: the delete, upload and unlink records queue their candidates in the
transaction that makes them; a run reads the queue, never the whole blob table; `full` still
sweeps every table (garbage from before the queue); a blob a push references between GC's read
of the queue and its write is kept (the re-check under lock)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select, update

import pgcluster
from cargobay.jobs import gc
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs, manifests, repositories

pytestmark = pytest.mark.backend
OLD = 1_000.0
NOW = 10**9
GRACE = 60.0


class DeletedBytes:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete(self, digest: str) -> None:
        self.deleted.append(digest)


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


async def _database(tmp_path: Path) -> Database:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'gc.db'}"
    await migrations.upgrade(url)
    return Database(url)


async def _image(db: Database, name: str, layers: list[str]) -> tuple[int, str]:
    """A repository with one manifest referencing `layers`, everything back-dated."""
    async with db.write() as conn:
        assert await repositories.insert(conn, "000000000000", name)
        repo = await repositories.id_of(conn, "000000000000", name)
        assert repo is not None
        for layer in layers:
            await blobs.link(conn, repo, layer, 7)
        manifest = _digest(name)
        await manifests.insert(
            conn,
            repo,
            manifest,
            blobs=layers,
            children=[],
            media_type="application/vnd.oci.image.manifest.v1+json",
            size=2,
            content=b"{}",
        )
        for table in (schema.blobs, schema.repository_blobs):
            await conn.execute(update(table).values(created_at=OLD))
    return repo, manifest


async def _queue(db: Database) -> set[tuple[int, str]]:
    q = schema.gc_queue
    async with db.read() as conn:
        return {(r.repository_id, r.digest) for r in await conn.execute(select(q))}


async def _blobs(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(select(schema.blobs.c.digest))).scalars())


def _no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    async def sweep(*_args, **_kwargs):
        raise AssertionError("a queue run must not sweep the tables")

    monkeypatch.setattr(gc, "_sweep", sweep)


def test_a_delete_queues_its_blobs_and_gc_reclaims_them_from_the_queue_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = [_digest("layer-a"), _digest("layer-b")]
    before = _digest("garbage-from-before-the-queue")

    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            repo, manifest = await _image(db, "gc/queue", layers)
            async with db.write() as conn:  # garbage no path queued (an old registry's)
                await conn.execute(
                    schema.blobs.insert().values(digest=before, size=3, created_at=OLD)
                )
                await conn.execute(schema.gc_queue.delete())
            # Deleting the image (as registry/deletes.py does) queues its blobs.
            async with db.write() as conn:
                assert await manifests.delete(conn, repo, manifest)
                await manifests.delete_references(conn, repo, manifest)
            assert await _queue(db) == {(repo, d) for d in layers}

            _no_sweep(monkeypatch)
            store = DeletedBytes()
            report = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=NOW)
            assert (report.queued, report.links_removed, report.blobs_deleted) == (2, 2, 2)
            assert sorted(store.deleted) == sorted(layers)
            assert await _blobs(db) == {before}  # not queued: a queue run does not see it
            assert await _queue(db) == set()
            monkeypatch.undo()

            # The full run still finds it.
            full = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=NOW, full=True)
            assert (full.full, full.blobs_deleted, full.digests) == (True, 1, [before])
            assert await _blobs(db) == set()
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_an_upload_never_referenced_is_reclaimed_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _digest("uploaded-then-forgotten")

    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            async with db.write() as conn:
                assert await repositories.insert(conn, "000000000000", "gc/upload")
                repo = await repositories.id_of(conn, "000000000000", "gc/upload")
                await blobs.link(conn, repo, layer, 5)  # an upload's commit
            queued = await _queue(db)
            assert queued == {(repo, layer)}
            _no_sweep(monkeypatch)
            store = DeletedBytes()
            async with db.read() as conn:
                linked_at = (
                    await conn.execute(select(schema.repository_blobs.c.created_at))
                ).scalar_one()
            early = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=linked_at + 1)
            assert (early.queued, early.blobs_deleted) == (0, 0)
            assert await _queue(db) == queued  # still waiting for its grace period
            late = linked_at + GRACE + 1
            report = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=late)
            assert (report.links_removed, report.blobs_deleted) == (1, 1)
            assert store.deleted == [layer]
            assert await _queue(db) == set()
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_push_referencing_a_queued_blob_before_gc_writes_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GC reads the queue, a push references the blob, then GC's write transaction runs: it
    re-checks under lock and keeps the link and the blob."""
    layer = _digest("shared-layer")

    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            repo, manifest = await _image(db, "gc/race", [layer])
            async with db.write() as conn:
                await manifests.delete(conn, repo, manifest)
                await manifests.delete_references(conn, repo, manifest)
            assert await _queue(db) == {(repo, layer)}

            real_write = db.write
            pushed = []

            def write():
                if not pushed:  # the push commits first, between GC's read and its write
                    pushed.append(True)

                    async def push() -> None:
                        async with real_write() as conn:
                            await manifests.insert(
                                conn,
                                repo,
                                _digest("new-image"),
                                blobs=[layer],
                                children=[],
                                media_type="application/vnd.oci.image.manifest.v1+json",
                                size=2,
                                content=b"{}",
                            )

                    return _after(push(), real_write())
                return real_write()

            monkeypatch.setattr(db, "write", write)
            store = DeletedBytes()
            report = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=NOW)
            monkeypatch.undo()
            assert pushed and report.queued == 1
            assert (report.links_removed, report.blobs_deleted, store.deleted) == (0, 0, [])
            assert await _blobs(db) == {layer}
            assert await _queue(db) == set()  # referenced: out of the queue until released

            # Released again, it is queued again and goes.
            async with db.write() as conn:
                await manifests.delete(conn, repo, _digest("new-image"))
                await manifests.delete_references(conn, repo, _digest("new-image"))
            report = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=NOW)
            assert (report.links_removed, report.blobs_deleted) == (1, 1)
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_deleted_repository_queues_its_blobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = [_digest("repo-layer-1"), _digest("repo-layer-2")]

    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            repo, _manifest = await _image(db, "gc/gone", layers)
            async with db.write() as conn:
                await conn.execute(schema.gc_queue.delete())
                await repositories.delete(conn, repo)
            assert await _queue(db) == {(repo, d) for d in layers}
            _no_sweep(monkeypatch)
            store = DeletedBytes()
            report = await gc.collect(db, store, grace=GRACE, upload_expiry=GRACE, now=NOW)
            assert sorted(store.deleted) == sorted(layers) and report.blobs_deleted == 2
        finally:
            await db.dispose()

    asyncio.run(scenario())


class _after:
    """An async context manager that runs `first` before entering `inner`."""

    def __init__(self, first, inner) -> None:
        self.first, self.inner = first, inner

    async def __aenter__(self):
        await self.first
        return await self.inner.__aenter__()

    async def __aexit__(self, *exc):
        return await self.inner.__aexit__(*exc)
