"""Blobs as repositories see them: a blob is visible in a repository once linked to it.

In a repository encrypted under a KMS key the bytes are the blob's copy under that key
(`storage.encrypted.EncryptedBlobs`, recorded in `blob_copies`); reads decrypt, and a mount
from a repository under another key (or none) re-encrypts first."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cargobay.errors import BlobUnknown
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs as records
from cargobay.registry.encryption import Encryption, kms_failures
from cargobay.registry.repositories import Repository
from cargobay.storage import BlobStore, readahead


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    # Only archived images of the repository reference it (`stat_for_pull` says; False
    # from `stat`, which does not look).
    archived: bool = False


class BlobService:
    def __init__(self, db: Database, store: BlobStore, encryption: Encryption) -> None:
        self.db = db
        self.store = store
        self.encryption = encryption

    async def stat(self, repo: Repository, digest: str) -> BlobInfo:
        """Size of a blob linked to the repository, or BLOB_UNKNOWN."""
        size = await records.linked_size_now(self.db, repo.id, digest)
        if size is None:
            raise BlobUnknown(detail={"digest": digest})
        return BlobInfo(digest, size)

    async def stat_for_pull(self, repo: Repository, digest: str) -> BlobInfo:
        """`stat` for a blob GET or HEAD, with `archived` filled in by the same statement
        (the archive check used to be a second one); BLOB_UNKNOWN when not linked."""
        found = await records.pull_stat(self.db, repo.id, digest)
        if found is None:
            raise BlobUnknown(detail={"digest": digest})
        return BlobInfo(digest, *found)

    def local_path(self, repo: Repository, digest: str) -> Path | None:
        """A file to send as is (sendfile); never for a repository under a KMS key."""
        if repo.kms_key_id is not None:
            return None
        return self.store.local_path(digest)

    def read_ahead(self, path: Path, start: int, end: int) -> Callable[[], None]:
        """Start reading [start, end) of a `local_path` file into the page cache ahead of
        its sender (`storage.readahead`); returns the call that ends it."""
        job = readahead.start(path, start, end)
        return job.release if job is not None else lambda: None

    def serves_plaintext(self, repo: Repository) -> bool:
        """Whether the store's own bytes (and presigned URLs to them) are the blob."""
        return repo.kms_key_id is None

    def read(
        self, repo: Repository, digest: str, start: int, end: int, size: int
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes [start, end) of a linked blob of `size` bytes: the store's own
        stream for a plain repository (nothing added to that path). Under a KMS key the key is
        checked before the first byte (KmsKeyUnavailable names its state) and only the touched
        segments are read and decrypted; FileNotFoundError when the bytes are gone."""
        key_id = repo.kms_key_id
        if key_id is None:
            return self.store.read(digest, start, end)
        return self._decrypted(digest, key_id, start, end, size)

    async def local_plaintext(
        self, repo: Repository, digest: str, start: int, end: int, size: int
    ) -> Iterator[memoryview] | None:
        """Under a KMS key on a store with local files: plaintext [start, end) in batches
        that a sending thread pulls (the key checked now; each view valid until the next is
        asked for); otherwise None (use `read`)."""
        key_id = repo.kms_key_id
        if key_id is None:
            return None
        async with kms_failures():
            local = await self.encryption.blobs.local_range(digest, key_id, start, end, size)
        return None if local is None else local.batches()

    async def _decrypted(
        self, digest: str, key_id: str, start: int, end: int, size: int
    ) -> AsyncIterator[bytes]:
        async with kms_failures():
            chunks = self.encryption.blobs.read(digest, key_id, start, end, expected_size=size)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()

    async def _copy_for(self, source: Repository, target: Repository, digest: str) -> bool:
        """Make `target`'s copy of a blob `source` holds, re-encrypting between keys; False
        when the target stores plaintext and the source does not (the client uploads)."""
        to_key = target.kms_key_id
        from_key = source.kms_key_id
        if to_key == from_key:
            return True
        if to_key is None:
            return False
        async with kms_failures():
            if from_key is None:
                chunks = self.store.read(digest, 0, None)
                await self.encryption.blobs.write(target.registry_id, to_key, digest, chunks)
            else:
                await self.encryption.blobs.copy(target.registry_id, digest, from_key, to_key)
        await record_copy(self.db, digest, to_key)
        return True

    async def link(self, repo: Repository, digest: str, size: int) -> None:
        """Record committed bytes and make them visible in the repository (idempotent)."""
        async with self.db.write() as conn:
            await records.link(conn, repo.id, digest, size)

    async def mount(self, source: Repository, target: Repository, digest: str) -> BlobInfo | None:
        """Link a blob another repository holds; None when the source does not have it.

        The check and the link are one write transaction (the blob row locked on PostgreSQL),
        so garbage collection cannot remove the blob in between; re-mounting refreshes the
        link's time, restarting its grace period."""
        if source.kms_key_id != target.kms_key_id:
            try:
                if (await self.stat(source, digest)) is None:
                    return None
                if not await self._copy_for(source, target, digest):
                    return None
            except BlobUnknown:
                return None
        async with self.db.write() as conn:
            size = await records.mount(conn, source.id, target.id, digest)
        return None if size is None else BlobInfo(digest, size)

    async def copy(self, source: Repository, target: Repository, digest: str, size: int) -> None:
        """Make a blob `source` holds visible in `target` whatever the keys of the two
        (replication within a deployment): a link when they share one, a re-encrypting mount
        between keys, and a decrypted, streamed write for a target that stores plaintext."""
        if source.kms_key_id == target.kms_key_id:
            await self.link(target, digest, size)
            return
        if target.kms_key_id is not None:
            if await self.mount(source, target, digest) is None:
                raise BlobUnknown(detail={"digest": digest})
            return
        if await self.store.stat(digest) is None:
            await self._write_plaintext(source, digest, size)
        await self.link(target, digest, size)

    async def held(self, repo: Repository, digest: str) -> bool:
        """Whether the store has bytes `adopt` can link into `repo`: the plaintext blob, or
        its copy under the repository's KMS key."""
        if await self.store.stat(digest) is not None:
            return True
        key_id = repo.kms_key_id
        return key_id is not None and await self.encryption.blobs.exists(digest, key_id)

    async def adopt(self, repo: Repository, digest: str, size: int) -> None:
        """Link a blob whose plaintext the store holds (a pull-through cache fill): under a
        KMS key, its encrypted copy under that key is made first."""
        key_id = repo.kms_key_id
        if key_id is not None:
            async with kms_failures():
                await self.encryption.blobs.write(
                    repo.registry_id, key_id, digest, self.store.read(digest, 0, None)
                )
            await record_copy(self.db, digest, key_id)
        await self.link(repo, digest, size)

    async def commit_upload(self, repo: Repository, upload_id: str, digest: str, size: int) -> None:
        """Commit a finished, verified upload of the store as `repo`'s blob: as the plaintext
        blob, or, under a KMS key, as its encrypted copy only (the upload is dropped)."""
        key_id = repo.kms_key_id
        if key_id is None:
            await self.store.upload_commit(upload_id, digest, size)
        else:
            async with kms_failures():
                await self.encryption.blobs.write_upload(
                    repo.registry_id, key_id, digest, upload_id, size
                )
            await record_copy(self.db, digest, key_id)
        await self.link(repo, digest, size)

    async def _write_plaintext(self, source: Repository, digest: str, size: int) -> None:
        upload_id = f"copy-{uuid.uuid4()}"
        await self.store.upload_create(upload_id)

        async def blocks() -> AsyncIterator[list[bytes]]:
            async for chunk in self.read(source, digest, 0, size, size):
                yield [chunk]

        try:
            written = await self.store.upload_append(upload_id, 0, blocks())
            if written != size:
                raise BlobUnknown(detail={"digest": digest, "size": written})
            await self.store.upload_commit(upload_id, digest, size)
        except BaseException:
            await self.store.upload_delete(upload_id)
            raise

    async def unlink(self, repo: Repository, digest: str) -> None:
        """Remove a blob from a repository; garbage collection reclaims unused bytes later."""
        async with self.db.write() as conn:
            removed = await records.unlink(conn, repo.id, digest)
        if not removed:
            raise BlobUnknown(detail={"digest": digest})


async def record_copy(db: Database, digest: str, key_id: str) -> None:
    """Note that the copy of `digest` under `key_id` exists, refreshing its time so GC's grace
    period covers the link about to be made to it (idempotent)."""
    async with db.write() as conn:
        await records.record_copy(conn, digest, key_id)
