"""Blob records on every backend: links (idempotent, refreshed, removed), the locked lookup
a mount makes, and the copies kept under KMS keys."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs, uploads
from metadata.conftest import Store
from metadata.helpers import digest, new_repo

pytestmark = pytest.mark.backend


def test_links_make_blobs_visible_per_repository(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        layer, other = digest("b/layer"), digest("b/other")
        async with db.write() as conn:
            source = await new_repo(conn, registry_id, "b/source")
            target = await new_repo(conn, registry_id, "b/target")
            await blobs.link(conn, source, layer, 42)
            await blobs.link(conn, source, layer, 42)  # idempotent
            assert await blobs.linked_size_locked(conn, source, layer) == 42
            assert await blobs.linked_size_locked(conn, target, layer) is None
            assert await blobs.mount(conn, source, target, layer) == 42
            assert await blobs.mount(conn, source, target, layer) == 42  # refreshes the link
            assert await blobs.mount(conn, source, target, other) is None  # not the source's
        async with db.read_now() as conn:
            assert await blobs.linked_size(conn, target, layer) == 42
            assert await blobs.linked_size(conn, target, other) is None
        async with db.write() as conn:
            assert await blobs.unlink(conn, source, layer)
            assert not await blobs.unlink(conn, source, layer)
        async with db.read() as conn:
            assert await blobs.linked_size(conn, source, layer) is None
            assert await blobs.linked_size(conn, target, layer) == 42
            b = schema.blobs
            assert await conn.scalar(select(func.count()).where(b.c.digest == layer)) == 1

    store.run(scenario)


def test_a_copy_under_a_key_is_recorded_once_and_refreshed(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        copied, key = digest(f"copy-{registry_id}"), "2f3e5a1c-0000-4000-8000-000000000001"
        c = schema.blob_copies
        when = select(c.c.created_at).where(c.c.digest == copied, c.c.key_id == key)
        async with db.write() as conn:
            await blobs.record_copy(conn, copied, key)
            first = await conn.scalar(when)
            await blobs.record_copy(conn, copied, key)
        async with db.read() as conn:
            rows = (await conn.execute(when)).all()
            assert len(rows) == 1 and rows[0].created_at >= first

    store.run(scenario)


def test_an_upload_session_grows_only_from_the_size_it_holds(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        session = f"upload-{registry_id}"
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "b/uploads")
            other = await new_repo(conn, registry_id, "b/elsewhere")
            await uploads.start(conn, session, repo, 1.0)
            assert await uploads.grow(conn, session, 0, 100)
            assert not await uploads.grow(conn, session, 0, 50)  # a concurrent request won
        async with db.read_now() as conn:
            row = await uploads.find(conn, repo, session)
            assert row is not None and (row.size, row.created_at) == (100, 1.0)
            assert await uploads.find(conn, other, session) is None
        async with db.write() as conn:
            await blobs.link(conn, repo, digest("b/uploaded"), 100)
            await uploads.end(conn, session)
        async with db.read() as conn:
            assert await uploads.find(conn, repo, session) is None
            assert await blobs.linked_size(conn, repo, digest("b/uploaded")) == 100

    store.run(scenario)
