"""The upload service holds a database lease on an upload around every append and commit:
requests racing on one upload, from one worker or from two nodes, are refused with 416 and the
upload's Range; a crashed worker's replacement continues its upload at once. In-process, on
the test run's metadata and storage backends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import pgcluster
from cargobay.config import Settings
from cargobay.errors import LayerDigestMismatch, UploadNotFound
from cargobay.iam.authz import Authorizer
from cargobay.iam.secrets import load_box
from cargobay.metadata.db import Database
from cargobay.metadata.leases import Leases, node_holder
from cargobay.oci.errors import RangeInvalid
from cargobay.registry.encryption import Encryption
from cargobay.registry.repositories import RepositoryService
from cargobay.registry.uploads import UploadService
from cargobay.storage import BlobStore, open_store
from server import storage_backend

pytestmark = pytest.mark.backend

ACCOUNT = "123456789012"


@pytest.fixture
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if storage_backend() == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = f"exclusion-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(bucket)
        return s3.storage_url(bucket, "registry", with_credentials=True)
    return f"file://{tmp_path / 'storage'}"


def tmp_key_dir() -> Path:
    """Where the sealing key of these tests' (unused) KMS lives."""
    path = Path(tempfile.mkdtemp(prefix="exclusion-key-"))
    return path


class Node:
    """One worker's services on the shared database and store."""

    def __init__(self, url: str, storage_url: str, holder: str) -> None:
        self.db = Database(url)
        self.store: BlobStore = open_store(storage_url)
        self.leases = Leases(self.db, holder)
        encryption = Encryption(self.db, self.store, load_box("", tmp_key_dir()), "us-east-1")
        self.uploads = UploadService(self.db, self.store, self.leases, encryption)

    async def close(self) -> None:
        await self.db.dispose()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


async def _chunks(*parts: bytes) -> AsyncIterator[list[bytes]]:
    for part in parts:
        yield [part]


async def _gated(first: bytes, gate: asyncio.Event, started: asyncio.Event, rest: bytes):
    yield [first]
    started.set()
    await gate.wait()
    yield [rest]


def _repos(db: Database) -> RepositoryService:
    return RepositoryService(db, Settings(), Authorizer(db))


def test_racing_requests_on_one_upload_get_416(tmp_path: Path, storage_url: str) -> None:
    async def scenario() -> None:
        url = await pgcluster.migrated_database(tmp_path)
        a = Node(url, storage_url, node_holder(tmp_path / "a", 0))
        b = Node(url, storage_url, node_holder(tmp_path / "b", 0))
        try:
            repo, _ = await _repos(a.db).create(ACCOUNT, "exclusion/race")
            upload = await a.uploads.start(repo)
            await a.uploads.append(repo, upload.id, _chunks(b"first"))
            gate, started = asyncio.Event(), asyncio.Event()
            slow = asyncio.ensure_future(
                a.uploads.append(repo, upload.id, _gated(b"-second", gate, started, b"-third"))
            )
            await started.wait()
            racers = [
                b.uploads.append(repo, upload.id, _chunks(b"other node")),
                a.uploads.append(repo, upload.id, _chunks(b"same worker")),
                b.uploads.complete(repo, upload.id, "sha256:" + "0" * 64, None),
            ]
            for racer in racers:
                with pytest.raises(RangeInvalid) as refused:
                    await racer
                assert refused.value.size == 5  # "first" only: the door answers Range: 0-4
            gate.set()
            assert (await slow).size == len(b"first-second-third")
            # Free again: the other node finishes the upload.
            data = b"first-second-third-last"
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            info = await b.uploads.complete(repo, upload.id, digest, _chunks(b"-last"))
            assert (info.digest, info.size) == (digest, len(data))
            assert b"".join([c async for c in b.store.read(digest)]) == data
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_crashed_worker_s_replacement_continues_its_upload(
    tmp_path: Path, storage_url: str
) -> None:
    async def scenario() -> None:
        url = await pgcluster.migrated_database(tmp_path)
        holder = node_holder(tmp_path / "a", 0)
        dead = Node(url, storage_url, holder)
        other = Node(url, storage_url, node_holder(tmp_path / "b", 0))
        replacement = Node(url, storage_url, holder)
        try:
            repo, _ = await _repos(dead.db).create(ACCOUNT, "exclusion/crash")
            upload = await dead.uploads.start(repo)
            await dead.uploads.append(repo, upload.id, _chunks(b"before the crash"))
            name = f"upload:{upload.id}"
            if dead.uploads.locks is not None:
                # On a SQLite file the upload is held by a lock of this host, which the kernel
                # drops with its holder (closing the descriptor is what dying does to it):
                # any worker continues at once.
                dead.uploads.locks.acquire(name)
                with pytest.raises(RangeInvalid):
                    await other.uploads.append(repo, upload.id, _chunks(b"too soon"))
                dead.uploads.locks.close()
                state = await other.uploads.append(repo, upload.id, _chunks(b", after"))
                assert state.size == len(b"before the crash, after")
                return
            # The worker dies while it holds the upload: its lease stays behind, unexpired.
            await dead.leases.acquire(name)
            with pytest.raises(RangeInvalid):
                await other.uploads.append(repo, upload.id, _chunks(b"too soon"))
            state = await replacement.uploads.append(repo, upload.id, _chunks(b", after"))
            assert state.size == len(b"before the crash, after")
        finally:
            for node in (dead, other, replacement):
                await node.close()

    asyncio.run(scenario())


def test_a_chunk_s_size_and_the_end_of_its_lease_commit_together(
    tmp_path: Path, storage_url: str
) -> None:
    """The transaction that records a chunk's new size also deletes the upload's lease row:
    nothing of the lease is left once the append returns, so the same worker and another
    node each append the next chunk at once."""
    from sqlalchemy import select

    from cargobay.metadata import schema

    async def leases_of(node: Node, upload_id: str) -> list[str]:
        t = schema.resource_leases
        async with node.db.read_now() as conn:
            rows = await conn.execute(select(t.c.name).where(t.c.name == f"upload:{upload_id}"))
            return [row.name for row in rows]

    async def scenario() -> None:
        url = await pgcluster.migrated_database(tmp_path)
        a = Node(url, storage_url, node_holder(tmp_path / "a", 0))
        b = Node(url, storage_url, node_holder(tmp_path / "b", 0))
        try:
            repo, _ = await _repos(a.db).create(ACCOUNT, "exclusion/fold")
            upload = await a.uploads.start(repo)
            assert (await a.uploads.append(repo, upload.id, _chunks(b"one"))).size == 3
            assert await leases_of(a, upload.id) == []
            assert not a.leases._held
            assert (await a.uploads.append(repo, upload.id, _chunks(b"-two"), start=3)).size == 7
            assert (await b.uploads.append(repo, upload.id, _chunks(b"-three"), start=7)).size == 13
            assert await leases_of(b, upload.id) == []
            # A chunk refused (it does not start where the upload ends) leaves no lease either.
            with pytest.raises(RangeInvalid):
                await a.uploads.append(repo, upload.id, _chunks(b"x"), start=3)
            assert await leases_of(a, upload.id) == [] and not a.leases._held
            data = b"one-two-three"
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            info = await a.uploads.complete(repo, upload.id, digest, None)
            assert info.size == len(data)
            assert b"".join([c async for c in a.store.read(digest)]) == data
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_completion_ends_its_session_and_lease_in_the_registering_transaction(
    tmp_path: Path, storage_url: str
) -> None:
    """A completion without a body (ECR's CompleteLayerUpload, `/v2/` PUT with no chunk) takes
    two write transactions, the lease's claim and the registration that also ends the session
    and the lease, not a third to release the lease (on a SQLite file, where a lock of the host
    holds the upload, the registration alone); a refused completion leaves nothing held."""
    from sqlalchemy import select

    from cargobay.metadata import schema

    async def scenario() -> None:
        url = await pgcluster.migrated_database(tmp_path)
        a = Node(url, storage_url, node_holder(tmp_path / "a", 0))
        b = Node(url, storage_url, node_holder(tmp_path / "b", 0))
        writes = 0
        real_write = a.db.write

        def counted_write():  # type: ignore[no-untyped-def]
            nonlocal writes
            writes += 1
            return real_write()

        a.db.write = counted_write  # type: ignore[method-assign]
        t = schema.resource_leases
        try:
            repo, _ = await _repos(b.db).create(ACCOUNT, "exclusion/complete")
            # Refused: the digest is not the content's; the lease goes with the session.
            upload = await b.uploads.start(repo)
            await b.uploads.append(repo, upload.id, _chunks(b"wrong"))
            with pytest.raises(LayerDigestMismatch):
                await a.uploads.complete(repo, upload.id, "sha256:" + "1" * 64, None)
            assert not a.leases._held
            # Completed from another node than the one that wrote it (it re-hashes the bytes).
            upload = await b.uploads.start(repo)
            data = os.urandom(5000)
            await b.uploads.append(repo, upload.id, _chunks(data), start=0, end=len(data) - 1)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            writes = 0
            info = await a.uploads.complete(repo, upload.id, digest, None)
            assert (info.digest, info.size) == (digest, len(data))
            assert writes == (1 if a.uploads.locks is not None else 2)
            assert not a.leases._held
            assert a.uploads.locks is None or not a.uploads.locks._held
            async with a.db.read_now() as conn:
                left = await conn.execute(select(t.c.name).where(t.c.name.like("upload:%")))
                assert [row.name for row in left] == []
            with pytest.raises(UploadNotFound):
                await b.uploads.get(repo, upload.id)
            assert b"".join([c async for c in b.store.read(digest)]) == data
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
