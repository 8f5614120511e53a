"""Blob uploads: monolithic, chunked and streamed, resumable across workers and restarts.

The upload's size lives in the database and advances only after its bytes are written, with a
conditional update, so an interrupted or racing PATCH never moves it. The SHA-256 state stays
in the worker that last wrote the upload; any other worker (or the same one after a restart)
re-hashes the stored prefix and carries on (`registry.upload_hashes`).

Into a repository under a KMS key, no plaintext byte is ever at rest: chunks are staged in the
blob's final encrypted layout under a data key of the upload's own (`storage.staging`), a
monolithic upload is encrypted as it arrives, and the verified upload is committed as the
blob's encrypted copy under the repository's key, never as a plaintext blob (docs/kms.md).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cargobay.errors import (
    DigestInvalid,
    LayerDigestMismatch,
    RangeInvalid,
    SizeInvalid,
    UploadInvalid,
    UploadNotFound,
)
from cargobay.metadata.db import Database
from cargobay.metadata.leases import Lease, LeaseBusy, Leases
from cargobay.metadata.locallocks import LocalLocks
from cargobay.metadata.records import blobs as blob_records
from cargobay.metadata.records import uploads as records
from cargobay.oci.digest import parse_digest
from cargobay.registry import sealed_uploads
from cargobay.registry.blobs import BlobInfo, record_copy
from cargobay.registry.encryption import Encryption
from cargobay.registry.repositories import Repository
from cargobay.registry.upload_hashes import UploadHashes, feed
from cargobay.storage import BlobStore

if TYPE_CHECKING:
    from cargobay.storage.staging import StagedPosition

# UUIDs with dashes, the form ECR's UploadId takes; both front doors share uploads.
_UPLOAD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

Blocks = AsyncIterator[list[bytes]]


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    repository_id: int
    size: int
    created_at: float

    @property
    def range_header(self) -> str:
        """`Range` as Distribution reports it: inclusive end, `0-0` when empty."""
        return f"0-{max(self.size - 1, 0)}"


class UploadService:
    def __init__(
        self, db: Database, store: BlobStore, leases: Leases, encryption: Encryption
    ) -> None:
        self.db = db
        self.store = store
        self.leases = leases
        self.encryption = encryption
        # On a SQLite file, uploads are excluded by locks of this host (no transaction to
        # claim them); on PostgreSQL, by the database leases shared by every node.
        self.locks = LocalLocks.for_database(db, "-uploads.lock")
        self.hashes = UploadHashes(store, encryption)

    async def start(self, repo: Repository) -> Upload:
        upload_id = str(uuid.uuid4())
        now = time.time()
        await self.store.upload_create(upload_id)
        staged = None
        if repo.kms_key_id is not None:
            try:
                staged = await sealed_uploads.start(self.encryption, repo, upload_id)
            except BaseException:
                await self.store.upload_delete(upload_id)
                raise
        async with self.db.write() as conn:
            await records.start(conn, upload_id, repo.id, now)
        self.hashes.remember(upload_id, 0, hashlib.sha256(), staged)
        return Upload(upload_id, repo.id, 0, now)

    async def get(self, repo: Repository, upload_id: str) -> Upload:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UploadNotFound(_missing(repo, upload_id), detail={"uuid": upload_id})
        row = await records.find_now(self.db, repo.id, upload_id)
        if row is None:
            raise UploadNotFound(_missing(repo, upload_id), detail={"uuid": upload_id})
        return Upload(row.id, row.repository_id, int(row.size), row.created_at)

    @asynccontextmanager
    async def _exclusive(self, repo: Repository, upload_id: str) -> AsyncIterator[Lease | None]:
        """Hold the upload alone, across workers and nodes, while writing or committing it:
        a database lease (yielded, for the holder's last transaction to end), or on a SQLite
        file a lock of this host (`metadata.locallocks`; None is yielded). Otherwise a racing
        request could write under bytes another worker has hashed, or into the data after it
        became a blob. The loser gets 416 with the current Range and may retry."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UploadNotFound(detail={"uuid": upload_id})
        try:
            if self.locks is not None:
                with self.locks.hold(f"upload:{upload_id}"):
                    yield None
            else:
                async with self.leases.hold(f"upload:{upload_id}") as lease:
                    yield lease
        except LeaseBusy:
            upload = await self.get(repo, upload_id)
            raise RangeInvalid(
                "the upload is being written by another request",
                size=upload.size,
            ) from None
        except FileNotFoundError:
            raise UploadNotFound("upload data is missing", detail={"uuid": upload_id}) from None

    async def append(
        self,
        repo: Repository,
        upload_id: str,
        blocks: Blocks,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> Upload:
        """Append a chunk; with a Content-Range, it must start where the upload ends."""
        async with self._exclusive(repo, upload_id) as lease:
            return await self._append(repo, upload_id, blocks, start=start, end=end, lease=lease)

    async def _append(
        self,
        repo: Repository,
        upload_id: str,
        blocks: Blocks,
        *,
        start: int | None = None,
        end: int | None = None,
        lease: Lease | None = None,
    ) -> Upload:
        """`append` under the upload's lease; with `lease`, the transaction that records the
        new size also ends the lease (one write transaction less per chunk)."""
        # The size is read under the lock, so no other writer can move it until we are done.
        upload = await self.get(repo, upload_id)
        if start is not None and start != upload.size:
            raise RangeInvalid(
                f"chunk starts at {start} but the upload has {upload.size} bytes",
                size=upload.size,
            )
        hasher, staged = await self.hashes.state_at(repo, upload.id, upload.size)
        try:
            if staged is None:
                new_size = await self.store.upload_append(
                    upload.id, upload.size, blocks, observe=lambda block: feed(hasher, block)
                )
            else:
                staged = await self.encryption.staging.append(
                    upload.id, staged, blocks, hasher.update
                )
                new_size = staged.size
        except FileNotFoundError:
            raise UploadNotFound("upload data is missing", detail={"uuid": upload_id}) from None
        if end is not None and new_size != end + 1:
            raise SizeInvalid(
                f"Content-Range ends at {end} but {new_size - upload.size} bytes were sent",
                size=upload.size,
            )
        # Encrypted staging settles after the size is recorded, still under the lease.
        ends_lease = lease is not None and staged is None
        async with self.db.write() as conn:
            grown = await records.grow(conn, upload.id, upload.size, new_size)
            if ends_lease and grown:
                assert lease is not None
                await self.leases.release_in(conn, lease)
        if not grown:
            raise UploadInvalid("the upload was changed by a concurrent request")
        # The hash state is this worker's: kept before the next request of it can run.
        self.hashes.remember(upload.id, new_size, hasher, staged)
        if ends_lease:
            assert lease is not None
            lease.released = True
        if staged is not None:
            await self.encryption.staging.settle(upload.id, upload.size, new_size)
        return Upload(upload.id, upload.repository_id, new_size, upload.created_at)

    async def complete(
        self, repo: Repository, upload_id: str, digest: str | None, blocks: Blocks | None
    ) -> BlobInfo:
        """Finish an upload (with an optional last chunk) and commit it under `digest`."""
        if not digest:
            raise DigestInvalid("the digest query parameter is required")
        parse_digest(digest)
        async with self._exclusive(repo, upload_id) as lease:
            return await self._complete(repo, upload_id, digest, blocks, lease)

    async def _complete(
        self,
        repo: Repository,
        upload_id: str,
        digest: str,
        blocks: Blocks | None,
        lease: Lease | None,
    ) -> BlobInfo:
        expected = parse_digest(digest)
        upload = await self.get(repo, upload_id)
        if blocks is not None and repo.kms_key_id is None and expected.algorithm == "sha256":
            # The last chunk's new size is never recorded: the transaction that makes the
            # blob visible ends the session only if it still holds the bytes we read
            # (`end_at`), and ends the lease too (one write transaction, not three).
            hasher, _ = await self.hashes.state_at(repo, upload.id, upload.size)
            new_size = await self._write_plain(upload, blocks, hasher)
            actual = "sha256:" + hasher.hexdigest()
            if actual != str(expected):
                await self.cancel(repo, upload_id)
                raise _mismatch(digest, actual)
            await self._commit(repo, upload.id, actual, new_size)
            return await self._register(
                repo, actual, new_size, upload.id, held_size=upload.size, lease=lease
            )
        if blocks is not None:
            upload = await self._append(repo, upload_id, blocks)
        staged = None
        if expected.algorithm == "sha256":
            hasher, staged = await self.hashes.state_at(repo, upload.id, upload.size)
            actual = "sha256:" + hasher.hexdigest()
        else:
            actual = await self.hashes.rehash(repo, upload.id, upload.size, expected.algorithm)
        if actual != str(expected):
            await self.cancel(repo, upload_id)
            raise _mismatch(digest, actual)
        # Commit exactly the counted bytes: an interrupted write may have left more behind.
        await self._commit(repo, upload.id, actual, upload.size, staged)
        self.hashes.forget(upload.id)
        if blocks is None:
            # The size was read under the lease: the transaction that makes the blob visible
            # ends the session at that size and the lease with it (one transaction, not two).
            return await self._register(
                repo, actual, upload.size, upload.id, held_size=upload.size, lease=lease
            )
        return await self._register(repo, actual, upload.size, upload.id)

    async def _write_plain(self, upload: Upload, blocks: Blocks, hasher: hashlib._Hash) -> int:
        """Append a plaintext chunk at the upload's recorded end; its new size."""
        try:
            return await self.store.upload_append(
                upload.id, upload.size, blocks, observe=lambda block: feed(hasher, block)
            )
        except FileNotFoundError:
            raise UploadNotFound("upload data is missing", detail={"uuid": upload.id}) from None

    async def upload_whole(self, repo: Repository, digest: str, blocks: Blocks) -> BlobInfo:
        """A monolithic upload (`POST ?digest=`): one request, no session row."""
        expected = parse_digest(digest)
        if repo.kms_key_id is not None:
            size = await sealed_uploads.whole(self.encryption, repo, str(expected), blocks)
            await record_copy(self.db, str(expected), repo.kms_key_id)
            return await self._register(repo, str(expected), size)
        upload_id = str(uuid.uuid4())
        hasher = hashlib.new(expected.algorithm)
        await self.store.upload_create(upload_id)
        try:
            size = await self.store.upload_append(
                upload_id, 0, blocks, observe=lambda block: feed(hasher, block)
            )
            actual = f"{expected.algorithm}:{hasher.hexdigest()}"
            if actual != str(expected):
                raise _mismatch(digest, actual)
            await self._commit(repo, upload_id, actual, size)
        finally:
            await self.store.upload_delete(upload_id)
        return await self._register(repo, actual, size)

    async def _commit(
        self,
        repo: Repository,
        upload_id: str,
        digest: str,
        size: int,
        staged: StagedPosition | None = None,
    ) -> None:
        """Turn verified upload bytes into the repository's blob: plaintext, or the copy
        under the repository's KMS key (the staged segments, sealed to the end)."""
        key_id = repo.kms_key_id
        if key_id is None:
            await self.store.upload_commit(upload_id, digest, size)
            return
        await sealed_uploads.commit(self.encryption, repo, upload_id, digest, size, staged)
        await record_copy(self.db, digest, key_id)

    async def _exists(self, repo: Repository, digest: str) -> bool:
        key_id = repo.kms_key_id
        if key_id is None:
            return await self.store.stat(digest) is not None
        return await self.encryption.blobs.exists(digest, key_id)

    async def _register(
        self,
        repo: Repository,
        digest: str,
        size: int,
        upload_id: str | None = None,
        *,
        held_size: int | None = None,
        lease: Lease | None = None,
    ) -> BlobInfo:
        """Make committed bytes visible: the blob row, the repository's link (refreshed, so the
        GC grace period starts again) and the end of the upload session, in one transaction.
        With `held_size`, the session ends only if it still records that size (otherwise a
        concurrent request changed it, and nothing is registered); with `lease`, the same
        transaction releases the upload's lease."""
        async with self.db.write() as conn:
            if upload_id is not None:
                if held_size is None:
                    await records.end(conn, upload_id)
                elif not await records.end_at(conn, upload_id, held_size):
                    raise UploadInvalid("the upload was changed by a concurrent request")
            await records.register(conn, repo.id, digest, size)
            if lease is not None:
                await self.leases.release_in(conn, lease)
        if lease is not None:
            lease.released = True
        if upload_id is not None:
            self.hashes.forget(upload_id)
        if not await self._exists(repo, digest):
            # Garbage collection removed identical bytes between our dedup check and the
            # commit: undo the link and let the client push again, rather than expose a blob
            # without bytes.
            async with self.db.write() as conn:
                await blob_records.unlink(conn, repo.id, digest)
            raise UploadInvalid("the blob was garbage-collected during the upload; retry")
        return BlobInfo(digest, size)

    async def cancel(self, repo: Repository, upload_id: str) -> None:
        upload = await self.get(repo, upload_id)
        async with self.db.write() as conn:
            await records.end(conn, upload.id)
        if repo.kms_key_id is not None:
            await self.encryption.staging.discard(upload.id, upload.size)
        else:
            await self.store.upload_delete(upload.id)
        self.hashes.forget(upload.id)


def _mismatch(digest: str, actual: str) -> LayerDigestMismatch:
    """The client's digest is not that of the bytes it sent (`actual`)."""
    return LayerDigestMismatch(
        "provided digest did not match uploaded content",
        detail={"digest": digest, "actual": actual},
    )


def _missing(repo: Repository, upload_id: str) -> str:
    return (
        f"Upload with id '{upload_id}' does not exist in the repository with name "
        f"'{repo.name}' in registry with id '{repo.registry_id}'"
    )
