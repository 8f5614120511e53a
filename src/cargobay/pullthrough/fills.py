"""One upstream fetch per blob, across workers and nodes: a lease row per (registry, digest)
in the database, and the sink that writes a fetched blob into the store while it streams.

The worker that inserts (or takes over an expired) lease row fetches the blob; it renews the
lease while the fetch runs and deletes the row once the blob is stored or the fetch failed.
Every other puller waits for the stored blob, or for the lease to end without one (then it
tries to take the fetch over). A worker that dies mid-fetch leaves a lease that expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore
from cargobay.registry.blobs import BlobService
from cargobay.registry.repositories import Repository
from cargobay.storage import BlobStore

LEASE_SECONDS = 60.0


async def claim(db: Database, registry_id: str, digest: str, holder: str) -> bool:
    """Take the fetch of `digest` if nobody holds a live lease on it."""
    t = schema.pull_through_fills
    now = time.time()
    async with db.write() as conn:
        inserted = await insert_ignore(
            conn,
            t,
            registry_id=registry_id,
            digest=digest,
            holder=holder,
            lease_expires_at=now + LEASE_SECONDS,
        )
        if inserted.rowcount:
            return True
        taken = await conn.execute(
            t.update()
            .where(t.c.registry_id == registry_id, t.c.digest == digest)
            .where(t.c.lease_expires_at < now)
            .values(holder=holder, lease_expires_at=now + LEASE_SECONDS)
        )
        return taken.rowcount == 1


async def renew(db: Database, registry_id: str, digest: str, holder: str) -> None:
    t = schema.pull_through_fills
    async with db.write() as conn:
        await conn.execute(
            t.update()
            .where(t.c.registry_id == registry_id, t.c.digest == digest, t.c.holder == holder)
            .values(lease_expires_at=time.time() + LEASE_SECONDS)
        )


async def release(db: Database, registry_id: str, digest: str, holder: str) -> None:
    t = schema.pull_through_fills
    async with db.write() as conn:
        await conn.execute(
            t.delete().where(
                t.c.registry_id == registry_id, t.c.digest == digest, t.c.holder == holder
            )
        )


async def held(db: Database, registry_id: str, digest: str) -> bool:
    """Whether a live lease on the fetch exists."""
    t = schema.pull_through_fills
    async with db.read_now() as conn:
        expires = (
            await conn.execute(
                select(t.c.lease_expires_at).where(
                    t.c.registry_id == registry_id, t.c.digest == digest
                )
            )
        ).scalar_one_or_none()
    return expires is not None and expires >= time.time()


async def keep_renewing(db: Database, registry_id: str, digest: str, holder: str) -> None:
    """Renew the lease until cancelled."""
    while True:
        await asyncio.sleep(LEASE_SECONDS / 3)
        with contextlib.suppress(Exception):
            await renew(db, registry_id, digest, holder)


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
