"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW): the BlobStore.

Layout under the URL's prefix (see config.py for the URL, uploads.py for the upload objects):

    blobs/<algorithm>/<2 hex>/<hex>    committed blobs, complete or absent, never partial
    _uploads/<id>/...                  uploads still arriving

A committed blob appears only when its server-side assembly completes; an existing blob is kept
(content-addressed dedup) and the upload is dropped.

S3 calls used (all standard, so AWS S3, MinIO and Ceph RGW behave alike): HeadBucket,
HeadObject, GetObject (with Range), PutObject (with `If-None-Match: *` for upload creation),
DeleteObject, CopyObject, CreateMultipartUpload, UploadPartCopy (with CopySourceRange),
CompleteMultipartUpload, AbortMultipartUpload, ListObjectsV2, ListMultipartUploads, and
presigned GetObject URLs (SigV4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from cargobay.storage.base import Observer
from cargobay.storage.s3.config import S3Config
from cargobay.storage.s3.objects import Objects
from cargobay.storage.s3.uploads import Uploads

PRESIGN_MAX = 7 * 24 * 3600  # SigV4's longest presigned URL


class S3Store:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self.objects = Objects(config)
        self.uploads = Uploads(self.objects)
        self.client = self.objects.client
        self._blob_root = f"{self.objects.prefix}blobs/"

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.config.prefix!r})"

    def _blob_key(self, digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        if not (algorithm.isalnum() and hexpart.isalnum()):
            raise ValueError(f"not a digest: {digest!r}")
        return f"{self._blob_root}{algorithm}/{hexpart[:2]}/{hexpart}"

    # -- committed blobs -----------------------------------------------------------------

    async def stat(self, digest: str) -> int | None:
        return await self.objects.size(self._blob_key(digest))

    def local_path(self, digest: str) -> Path | None:
        return None

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        async for chunk in self.objects.stream(self._blob_key(digest), start, end):
            yield chunk

    async def delete(self, digest: str) -> None:
        await self.objects.delete(self._blob_key(digest))

    async def download_url(self, digest: str, expires_in: int) -> str | None:
        """A presigned GET for the blob, valid `expires_in` seconds (at most 7 days)."""
        expires = max(1, min(int(expires_in), PRESIGN_MAX))
        # In a thread: role credentials may refresh over the network.
        return await self.objects.call(self.client.presigned_get, self._blob_key(digest), expires)

    async def ready(self) -> None:
        await self.objects.call(self.client.head_bucket)

    # -- uploads -------------------------------------------------------------------------

    async def upload_create(self, upload_id: str) -> None:
        await self.uploads.create(upload_id)

    async def upload_size(self, upload_id: str) -> int | None:
        return await self.uploads.size(upload_id)

    async def upload_append(
        self,
        upload_id: str,
        offset: int,
        blocks: AsyncIterator[list[bytes]],
        observe: Observer | None = None,
    ) -> int:
        return await self.uploads.append(upload_id, offset, blocks, observe)

    def upload_read(self, upload_id: str, length: int) -> AsyncIterator[bytes]:
        return self.uploads.read(upload_id, length)

    async def upload_commit(self, upload_id: str, digest: str, size: int | None = None) -> None:
        target = self._blob_key(digest)
        if await self.stat(digest) is not None:
            # Content-addressed: the same bytes are already durable there.
            await self.uploads.delete(upload_id)
            return
        await self.uploads.commit(upload_id, target, size)

    async def upload_delete(self, upload_id: str) -> None:
        await self.uploads.delete(upload_id)

    async def expire_uploads(self, older_than: float) -> int:
        """Remove uploads not written since the Unix time `older_than`, and abort multipart
        uploads (commits a crash interrupted) started before it."""
        return await self.uploads.expire(older_than, self._blob_root)

    def close(self) -> None:
        self.objects.close()
