"""The parts of blob uploads that differ in a repository under a KMS key: no plaintext byte
of an upload is ever at rest there.

Chunked uploads are staged in the blob's final encrypted layout under a data key of their own
(`storage.staging`) and, once verified, committed as the blob's copy; a monolithic upload is
encrypted as it arrives, with no staging at all. Imported by `registry.uploads`, but it only
loads `cryptography` when a KMS repository is actually written.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from cargobay.errors import LayerDigestMismatch, UploadInvalid
from cargobay.registry.encryption import Encryption, kms_failures
from cargobay.registry.repositories import Repository

if TYPE_CHECKING:
    from cargobay.storage.staging import StagedPosition

Blocks = AsyncIterator[list[bytes]]


@asynccontextmanager
async def staging_failures() -> AsyncIterator[None]:
    """Staged upload data that fails authentication: the upload cannot be completed."""
    from cargobay.storage.staging import StagingCorrupt

    try:
        yield
    except StagingCorrupt as exc:
        raise UploadInvalid(f"the staged upload data is damaged: {exc}") from None


async def start(encryption: Encryption, repo: Repository, upload_id: str) -> StagedPosition:
    """The staging header of a new upload (its data key generated under the repo's key)."""
    assert repo.kms_key_id is not None
    async with kms_failures():
        return await encryption.staging.create(repo.registry_id, repo.kms_key_id, upload_id)


async def read_back(
    encryption: Encryption, repo: Repository, upload_id: str, size: int, hasher: hashlib._Hash
) -> StagedPosition:
    """Decrypt the upload's first `size` bytes into `hasher`; where they end."""
    async with kms_failures(), staging_failures():
        return await encryption.staging.position(repo.registry_id, upload_id, size, hasher.update)


async def commit(
    encryption: Encryption,
    repo: Repository,
    upload_id: str,
    digest: str,
    size: int,
    staged: StagedPosition | None,
) -> None:
    """Commit a verified staged upload as the blob's copy under the repository's key: its
    segments are already in the blob's layout, only the last one is sealed now."""
    assert repo.kms_key_id is not None
    async with kms_failures(), staging_failures():
        if staged is None or staged.size != size:
            staged = await encryption.staging.position(repo.registry_id, upload_id, size)
        await encryption.staging.commit(
            repo.registry_id, repo.kms_key_id, upload_id, staged, digest
        )


async def whole(encryption: Encryption, repo: Repository, digest: str, blocks: Blocks) -> int:
    """A monolithic upload, encrypted as it arrives; its size. Nothing is committed unless
    the bytes hash to `digest`."""
    from cargobay.storage.encrypted import DigestMismatch

    assert repo.kms_key_id is not None
    size, read = 0, False

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal size, read
        read = True
        async for block in blocks:
            for chunk in block:
                size += len(chunk)
                yield chunk

    try:
        async with kms_failures():
            await encryption.blobs.write(
                repo.registry_id, repo.kms_key_id, digest, chunks(), verify=True
            )
    except DigestMismatch:
        raise _mismatch(digest) from None
    if not read:
        # The copy existed already (deduplicated): the body must still be this blob.
        algorithm = digest.partition(":")[0]
        hasher = hashlib.new(algorithm)
        async for chunk in chunks():
            hasher.update(chunk)
        if f"{algorithm}:{hasher.hexdigest()}" != digest:
            raise _mismatch(digest)
    return size


def _mismatch(digest: str) -> LayerDigestMismatch:
    return LayerDigestMismatch(
        "provided digest did not match uploaded content", detail={"digest": digest}
    )
