"""Where an upload's digest stands: the SHA-256 state of its bytes so far, kept by the worker
that last wrote it, or rebuilt from the stored prefix.

Split from `registry.uploads` because it is a job of its own: the upload service decides what
is written and when it becomes a blob, this module only keeps hashing cheap. The state stays
in this worker (a bounded cache, most recently written first); any other worker, or this one
after a restart or an eviction, re-hashes the stored prefix (decrypting it in a KMS
repository, `registry.sealed_uploads`) and carries on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING

from cargobay.registry import sealed_uploads
from cargobay.registry.encryption import Encryption
from cargobay.registry.repositories import Repository
from cargobay.storage import BlobStore

if TYPE_CHECKING:
    from cargobay.storage.staging import StagedPosition

_CACHE = 256

# (offset the hash covers, sha256 state, where encrypted staging ends)
_State = tuple[int, "hashlib._Hash", "StagedPosition | None"]


class UploadHashes:
    """This worker's hash states of the uploads it writes, by upload id."""

    def __init__(self, store: BlobStore, encryption: Encryption) -> None:
        self.store = store
        self.encryption = encryption
        self._states: OrderedDict[str, _State] = OrderedDict()

    def remember(
        self,
        upload_id: str,
        offset: int,
        hasher: hashlib._Hash,
        staged: StagedPosition | None = None,
    ) -> None:
        """Keep the state after a write, for the upload's next request on this worker."""
        self._states[upload_id] = (offset, hasher, staged)
        self._states.move_to_end(upload_id)
        while len(self._states) > _CACHE:
            self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        """The upload ended (a blob, or cancelled): nothing more is written to it."""
        self._states.pop(upload_id, None)

    async def state_at(
        self, repo: Repository, upload_id: str, offset: int
    ) -> tuple[hashlib._Hash, StagedPosition | None]:
        """A SHA-256 state covering the upload's first `offset` bytes (and, for a KMS
        repository, where its encrypted staging ends), taken from the cache (and removed from
        it while a write may change it) or rebuilt from stored data."""
        cached = self._states.pop(upload_id, None)
        if cached is not None and cached[0] == offset:
            return cached[1], cached[2]
        hasher = hashlib.sha256()
        if offset == 0 and repo.kms_key_id is None:
            return hasher, None  # nothing stored to hash (a first part, on any worker)
        return hasher, await self._read_back(repo, upload_id, offset, hasher)

    async def rehash(self, repo: Repository, upload_id: str, size: int, algorithm: str) -> str:
        """The digest of the upload's first `size` bytes by another algorithm than SHA-256
        (no state is kept for those)."""
        hasher = hashlib.new(algorithm)
        await self._read_back(repo, upload_id, size, hasher)
        return f"{algorithm}:{hasher.hexdigest()}"

    async def _read_back(
        self, repo: Repository, upload_id: str, size: int, hasher: hashlib._Hash
    ) -> StagedPosition | None:
        """Feed the upload's first `size` plaintext bytes to `hasher`."""
        if repo.kms_key_id is None:
            async for data in self.store.upload_read(upload_id, size):
                hasher.update(data)
            return None
        return await sealed_uploads.read_back(self.encryption, repo, upload_id, size, hasher)


def feed(hasher: hashlib._Hash, block: list[bytes]) -> None:
    """Hash a block of chunks as the store writes it (the `observe` of `upload_append`)."""
    for chunk in block:
        hasher.update(chunk)
