"""The store side of a pull-through blob fill: an upload written while the blob streams from
the upstream, committed under its digest and linked to the cache repository. (One fetch per
blob across workers and nodes is a lease in `metadata.leases`, taken in `blobs`.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from cargobay.registry.blobs import BlobService
from cargobay.registry.repositories import Repository
from cargobay.storage import BlobStore

_END = object()


class StoreSink:
    """The store side of a tee: an upload written as the chunks arrive (one append stream, fed
    through a small queue), committed under the digest and linked to the repository."""

    def __init__(self, store: BlobStore, blobs: BlobService, repo: Repository, digest: str):
        self.store = store
        self.blobs = blobs
        self.repo = repo
        self.digest = digest
        self.upload_id = str(uuid.uuid4())
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=4)
        self._task: asyncio.Task[int] | None = None

    async def _blocks(self) -> AsyncIterator[list[bytes]]:
        while (item := await self._queue.get()) is not _END:
            yield [item]  # type: ignore[list-item]

    async def write(self, chunk: bytes) -> None:
        if self._task is None:
            await self.store.upload_create(self.upload_id)
            self._task = asyncio.ensure_future(
                self.store.upload_append(self.upload_id, 0, self._blocks())
            )
        await self._put(chunk)

    async def _put(self, item: object) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # raises the store's failure
            raise OSError("the store stopped reading the blob")
        try:
            self._queue.put_nowait(item)  # the usual case: the writer keeps up
            return
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            self._task.result()  # raises the store's failure
            raise OSError("the store stopped reading the blob")

    async def commit(self) -> None:
        if self._task is None:  # an empty blob
            await self.store.upload_create(self.upload_id)
            size = 0
        else:
            await self._put(_END)
            size = await self._task
        # Under the repository's KMS key (a PULL_THROUGH_CACHE template's) when it has one.
        await self.blobs.commit_upload(self.repo, self.upload_id, self.digest, size)

    async def abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self.store.upload_delete(self.upload_id)
