"""GC's sweep reads each table once, in key order, and deletes exactly the garbage: many
batches of candidates, garbage scattered among live rows, several rows per write."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

import pgcluster
from cargobay.jobs import gc
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend
OLD = 1_000.0
NOW = 10**9


async def _database(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'gc.db'}"
    await migrations.upgrade(url)
    return url


class DeletedBytes:
    """A blob store that records which blobs' bytes GC deleted."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete(self, digest: str) -> None:
        self.deleted.append(digest)

    async def upload_delete(self, upload_id: str) -> None:
        raise AssertionError("no uploads here")


def _digest(i: int) -> str:
    return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()


async def _seed(db: Database, total: int, garbage: set[int]) -> None:
    """`total` old blobs; those not in `garbage` linked and referenced by one manifest, plus
    one link that nothing references (removed by the first sweep)."""
    r, m = schema.repositories, schema.manifests
    async with db.write() as conn:
        repo = (
            await conn.execute(
                r.insert().values(registry_id="000000000000", name="gc/app", created_at=OLD)
            )
        ).inserted_primary_key[0]
        manifest = "sha256:" + "0" * 64
        await conn.execute(
            m.insert().values(
                repository_id=repo,
                digest=manifest,
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=2,
                content=b"{}",
                pushed_at=OLD,
            )
        )
        await conn.execute(
            schema.blobs.insert(),
            [{"digest": _digest(i), "size": i, "created_at": OLD} for i in range(total)],
        )
        live = [_digest(i) for i in range(total) if i not in garbage]
        await conn.execute(
            schema.repository_blobs.insert(),
            [{"repository_id": repo, "digest": d, "created_at": OLD} for d in live],
        )
        references = [
            {
                "repository_id": repo,
                "manifest_digest": manifest,
                "target_digest": d,
                "kind": "blob",
            }
            for d in live[1:]  # the first live blob's link is unreferenced
        ]
        if references:
            await conn.execute(schema.manifest_references.insert(), references)


def test_sweep_deletes_exactly_the_scattered_garbage_over_many_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "BATCH", 7)
    monkeypatch.setattr(gc, "ROWS_PER_WRITE", 3)
    monkeypatch.setattr(gc, "DIGESTS_SHOWN", 5)  # the report's list stays this short
    total = 200
    garbage = {i for i in range(total) if i % 9 == 4 or i in (0, 199)}

    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            await _seed(db, total, garbage)
            store = DeletedBytes()
            report = await gc.collect(db, store, grace=60, upload_expiry=60, now=NOW, full=True)
            first_live = min(i for i in range(total) if i not in garbage)
            gone = {_digest(i) for i in garbage} | {_digest(first_live)}
            assert report.links_removed == 1
            assert report.blobs_deleted == len(gone)
            assert sorted(store.deleted) == sorted(gone)
            assert report.bytes_freed == sum(garbage) + first_live
            assert len(report.digests) == 5 and set(report.digests) <= gone
            async with db.read() as conn:
                left = set((await conn.execute(select(schema.blobs.c.digest))).scalars())
            assert left == {_digest(i) for i in range(total)} - gone
            again = await gc.collect(db, store, grace=60, upload_expiry=60, now=NOW, full=True)
            assert (again.blobs_deleted, again.links_removed) == (0, 0)
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_sweep_reads_batches_once_and_writes_several_rows_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One candidate read per batch (a short batch ends the sweep without another read), and
    one write transaction per ROWS_PER_WRITE candidates, not one per row."""
    monkeypatch.setattr(gc, "BATCH", 5)
    monkeypatch.setattr(gc, "ROWS_PER_WRITE", 3)
    total = 60
    garbage = set(range(total)) - {0}  # nearly all garbage: 59 rows, 12 batches of 5

    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            await _seed(db, total, garbage)
            calls = {"read": 0, "write": 0}
            real_read, real_write = db.read, db.write

            def counting(kind, real):
                def call():
                    calls[kind] += 1
                    return real()

                return call

            monkeypatch.setattr(db, "read", counting("read", real_read))
            monkeypatch.setattr(db, "write", counting("write", real_write))
            report = await gc._sweep(
                db,
                schema.blobs,
                (schema.blobs.c.digest,),
                gc._orphan_blob(NOW),
                deleted=None,
            )
            assert report == len(garbage)
            # 11 full batches and a short one (4 rows) that ends the sweep; 2 writes each.
            assert calls == {"read": 12, "write": 24}
            async with real_read() as conn:
                count = await conn.execute(select(func.count()).select_from(schema.blobs))
                assert count.scalar_one() == total - len(garbage)
        finally:
            await db.dispose()

    asyncio.run(scenario())
