"""The store side of a pull-through fill: `StoreSink` under a real `Tee`, on a migrated
database and the filesystem store. A verified blob is stored and linked to the cache
repository; bad bytes leave neither a blob row nor upload data behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargobay.config import Settings
from cargobay.errors import BlobUnknown
from cargobay.iam.authz import Authorizer
from cargobay.iam.secrets import load_box
from cargobay.metadata.db import Database
from cargobay.metadata.records import archives as archive_records
from cargobay.metadata.records import manifests as manifest_records
from cargobay.pullthrough.fills import StoreSink
from cargobay.registry.blobs import BlobService
from cargobay.registry.encryption import Encryption
from cargobay.registry.repositories import RepositoryService
from cargobay.storage import open_store
from cargobay.upstream.errors import DigestMismatch
from cargobay.upstream.tee import Tee
from secretsmanager.conftest import database_url


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


def test_a_fill_stores_and_links_only_verified_bytes(tmp_path: Path) -> None:
    data = os.urandom(1_000_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + "0" * 64

    async def scenario() -> None:
        db = Database(await database_url(tmp_path))
        store = open_store(f"file://{tmp_path / 'storage'}")
        blobs = BlobService(db, store, Encryption(db, store, load_box("", tmp_path), "us-east-1"))
        repositories = RepositoryService(db, Settings(data_dir=tmp_path), Authorizer(db))
        repo, _ = await repositories.create("000000000000", "hub/library/app")
        try:
            tee = Tee(chunks(data), digest, StoreSink(store, blobs, repo, digest))
            served = b"".join([chunk async for chunk in tee.stream()])
            await tee.wait()
            assert served == data
            assert (await blobs.stat(repo, digest)).size == len(data)
            assert b"".join([c async for c in store.read(digest)]) == data

            bad = Tee(chunks(data), wrong, StoreSink(store, blobs, repo, wrong))
            with pytest.raises(DigestMismatch):
                async for _ in bad.stream():
                    pass
            with pytest.raises(DigestMismatch):
                await bad.wait()
            with pytest.raises(BlobUnknown):
                await blobs.stat(repo, wrong)
            assert await store.stat(wrong) is None
            assert await store.expire_uploads(float("inf")) == 0  # no upload data left behind
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_the_manifest_a_fill_reads_sizes_from(tmp_path: Path) -> None:
    """`records.manifests.referencing_blob`: a manifest of the repository referencing the blob,
    an active one before an archived one, none for a blob no manifest references; reading it
    records no pull."""
    blob = "sha256:" + "b" * 64

    async def scenario() -> None:
        db = Database(await database_url(tmp_path))
        repositories = RepositoryService(db, Settings(data_dir=tmp_path), Authorizer(db))
        repo, _ = await repositories.create("000000000000", "hub/library/refs")
        try:
            async with db.write() as conn:
                for digest in ("sha256:" + "1" * 64, "sha256:" + "2" * 64):
                    await manifest_records.insert(
                        conn, repo.id, digest, blobs=[blob], children=[],
                        media_type="application/vnd.oci.image.manifest.v1+json",
                        size=2, content=b"{}",
                    )  # fmt: skip
                await archive_records.archive(conn, repo.id, "sha256:" + "1" * 64, 1.0)
            async with db.read() as conn:
                found = await manifest_records.referencing_blob(conn, repo.id, blob)
                assert found.digest == "sha256:" + "2" * 64 and found.archive_status is None
                other = "sha256:" + "c" * 64
                assert await manifest_records.referencing_blob(conn, repo.id, other) is None
            async with db.write() as conn:
                await archive_records.archive(conn, repo.id, "sha256:" + "2" * 64, 2.0)
            async with db.read() as conn:
                found = await manifest_records.referencing_blob(conn, repo.id, blob)
                assert found.archive_status == archive_records.ARCHIVED
                pulled = await manifest_records.many_for_pull(conn, repo.id, [found.digest])
                assert pulled[found.digest].last_pulled_at is None
        finally:
            await db.dispose()

    asyncio.run(scenario())
