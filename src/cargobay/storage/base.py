"""The BlobStore interface: content-addressed blobs plus in-progress upload data.

A store knows nothing about repositories or visibility: the metadata database decides what
exists, and who may write an upload (the registry holds a lease on an upload around each
append and commit: a database lease, or on a SQLite file a lock of the host; so a store never
sees two writers of one upload at once). A store only
promises that a committed blob's bytes are durable and complete before `commit` returns, and
that partial uploads never appear at a blob's address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

# Called with each block of bytes as it is written, so the caller can hash while streaming.
Observer = Callable[[list[bytes]], None]


class BlobStore(Protocol):
    async def stat(self, digest: str) -> int | None:
        """The stored size of a committed blob, or None."""

    def local_path(self, digest: str) -> Path | None:
        """A filesystem path to serve with sendfile, when the backend has one."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a committed blob."""

    async def delete(self, digest: str) -> None:
        """Remove a blob's bytes (only once no metadata names it)."""

    async def download_url(self, digest: str, expires_in: int) -> str | None:
        """A URL that fetches the blob without other credentials for `expires_in` seconds
        (a presigned object-store GET), or None when the backend has none."""

    async def upload_create(self, upload_id: str) -> None: ...

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes stored so far for an upload, or None if it has no data."""

    async def upload_append(
        self,
        upload_id: str,
        offset: int,
        blocks: AsyncIterator[list[bytes]],
        observe: Observer | None = None,
    ) -> int:
        """Write blocks at `offset` (discarding anything stored past it); return the new size."""

    def upload_read(self, upload_id: str, length: int) -> AsyncIterator[bytes]:
        """Stream an upload's first `length` bytes (to re-hash after a hop or restart)."""

    async def upload_commit(self, upload_id: str, digest: str, size: int | None = None) -> None:
        """Make the upload's first `size` bytes (all when None) durable at the blob's address
        and drop the upload."""

    async def upload_delete(self, upload_id: str) -> None: ...

    async def expire_uploads(self, older_than: float) -> int:
        """Remove upload data last written before the Unix time `older_than` (abandoned
        uploads, leftovers of interrupted commits); return how many were removed."""

    async def ready(self) -> None:
        """Raise if the backend cannot be reached."""
