"""The upload path's write statements (`metadata.hotwrite`, run on the sqlite3 driver inside a
SQLite file's write transaction, through SQLAlchemy elsewhere) on every backend: an upload's
size moves only from the size it holds, a session ends only at the size it holds, a blob's
registration is idempotent and refreshes its link, and each statement counts as one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cargobay.metadata import roundtrips, schema
from cargobay.metadata.db import Database
from cargobay.metadata.hotwrite import HotWrite
from cargobay.metadata.records import blobs, uploads
from metadata.conftest import Store
from metadata.helpers import digest, new_repo

pytestmark = pytest.mark.backend


def test_grow_and_end_at_hold_to_the_size_they_were_given(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        upload_id = f"{registry_id[-8:]}-0000-4000-8000-000000000001"
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "w/grow")
            await uploads.start(conn, upload_id, repo, 1.0)
        with roundtrips.counting() as count:
            async with db.write() as conn:
                assert await uploads.grow(conn, upload_id, 0, 10) is True
                assert await uploads.grow(conn, upload_id, 0, 99) is False  # holds 10 now
                assert await uploads.end_at(conn, upload_id, 5) is False
        assert count.value >= 3  # every statement is counted, on the driver path too
        row = await uploads.find_now(db, repo, upload_id)
        assert row is not None and int(row.size) == 10
        async with db.write() as conn:
            assert await uploads.end_at(conn, upload_id, 10) is True
        assert await uploads.find_now(db, repo, upload_id) is None

    store.run(scenario)


def test_register_is_idempotent_and_refreshes_the_link(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        layer = digest("w/layer")
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "w/register")
            await uploads.register(conn, repo, layer, 42)
        rb = schema.repository_blobs
        link = select(rb.c.created_at).where(rb.c.repository_id == repo, rb.c.digest == layer)
        async with db.read_now() as conn:
            first = (await conn.execute(link)).scalar_one()
        async with db.write() as conn:
            await uploads.register(conn, repo, layer, 42)
        async with db.read_now() as conn:
            assert (await conn.execute(link)).scalar_one() >= first
            assert await blobs.linked_size(conn, repo, layer) == 42
            queued = schema.gc_queue
            found = select(queued.c.since).where(
                queued.c.repository_id == repo, queued.c.digest == layer
            )
            assert (await conn.execute(found)).scalar_one() >= first
        assert await blobs.linked_size_now(db, repo, layer) == 42
        assert await blobs.linked_size_now(db, repo, digest("w/absent")) is None

    store.run(scenario)


def test_a_hot_write_rolls_back_with_its_transaction(store: Store) -> None:
    """Run on the driver, a statement is still part of the transaction it runs in."""
    t = schema.uploads
    grow = HotWrite.of(t.update().where(t.c.id == "absent").values(size=1))

    async def scenario(db: Database, registry_id: str) -> None:
        upload_id = f"{registry_id[-8:]}-0000-4000-8000-000000000002"
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "w/rollback")
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await uploads.start(conn, upload_id, repo, 1.0)
                assert await grow.run(conn, {}) == 0
                raise RuntimeError("abandon")
        assert await uploads.find_now(db, repo, upload_id) is None

    store.run(scenario)


def test_run_many_takes_dicts_or_tuples_in_names_order_as_one_statement(store: Store) -> None:
    """The push's references (dicts) and the audit flush (tuples) share `run_many`: the same
    rows either way, one counted statement a call, none for no rows. The names are in another
    order than the table's columns, so a tuple row is reordered for the driver."""
    mr = schema.manifest_references
    names = ("kind", "target_digest", "manifest_digest", "repository_id")
    insert_many = HotWrite.of(mr.insert(), names=names)

    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "w/many")
        as_tuples = [("blob", digest(f"t{i}"), digest("tuples"), repo) for i in range(3)]
        as_dicts = [
            dict(zip(names, (k, t, digest("dicts"), r), strict=True)) for k, t, _, r in as_tuples
        ]
        async with db.write() as conn:
            for rows, statements in ((as_tuples, 1), (as_dicts, 1), ([], 0)):
                with roundtrips.counting() as count:
                    await insert_many.run_many(conn, rows)
                assert count.value == statements
        query = select(mr.c.manifest_digest, mr.c.target_digest, mr.c.kind).where(
            mr.c.repository_id == repo
        )
        async with db.read_now() as conn:
            rows = {tuple(r) for r in (await conn.execute(query)).all()}
        for source in ("tuples", "dicts"):
            stored = {(t, k) for m, t, k in rows if m == digest(source)}
            assert stored == {(digest(f"t{i}"), "blob") for i in range(3)}, source

    store.run(scenario)
