"""Blobs on a local filesystem.

Layout under the root: `blobs/<algorithm>/<first two hex>/<hex>` for committed content and
`uploads/<id>` for data still arriving. Both share one filesystem so a commit is an fsync and an
atomic rename; a crash at any point leaves either no blob or a complete one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cargobay.storage import direct, readahead
from cargobay.storage.base import Observer
from cargobay.storage.direct import AppendWriter
from cargobay.threads import ProcessPool, settle

READ_BLOCK = 1024 * 1024
# Threads that hash and write uploads, per process: one busy per upload being received.
IO_THREADS = 8


# A body up to this size that arrives in one block is hashed on the event loop and written in
# one thread hand-off (a small blob's push is mostly hand-offs otherwise).
SMALL_BODY = 128 * 1024


def _length(block: list[bytes]) -> int:
    return sum(len(b) for b in block)


def _write_small(fd: int, offset: int, block: list[bytes]) -> int:
    """Write a small body at `offset` through the page cache; the file's new end."""
    for chunk in block:
        view = memoryview(chunk)
        while view:
            written = os.pwrite(fd, view, offset)
            offset += written
            view = view[written:]
    return offset


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.blob_root = self.root / "blobs"
        self.upload_root = self.root / "uploads"
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.upload_root.mkdir(parents=True, exist_ok=True)
        self._io = ProcessPool(IO_THREADS, "blob-io")

    # Digests and upload ids are validated by the services before they get here; the asserts
    # keep a path component from ever escaping the root if that contract is broken.
    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        assert algorithm.isalnum() and hexpart.isalnum(), digest
        return self.blob_root / algorithm / hexpart[:2] / hexpart

    def _upload_path(self, upload_id: str) -> Path:
        assert upload_id.replace("-", "").isalnum(), upload_id
        return self.upload_root / upload_id

    async def stat(self, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def local_path(self, digest: str) -> Path | None:
        return self._blob_path(digest)

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._blob_path(digest)
        with open(path, "rb") as fh:
            # The disk runs ahead of the reads (readahead.py), as for sendfile.
            stop = os.fstat(fh.fileno()).st_size if end is None else end
            job = readahead.start(path, start, stop)
            try:
                fh.seek(start)
                remaining = None if end is None else end - start
                while remaining is None or remaining > 0:
                    size = READ_BLOCK if remaining is None else min(READ_BLOCK, remaining)
                    data = await asyncio.to_thread(fh.read, size)
                    if not data:
                        break
                    if remaining is not None:
                        remaining -= len(data)
                    yield data
            finally:
                if job is not None:
                    job.release()

    async def delete(self, digest: str) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    async def download_url(self, digest: str, expires_in: int) -> str | None:
        return None  # served by the registry itself (sendfile)

    async def upload_create(self, upload_id: str) -> None:
        # Path.touch's equivalent (a new, empty file; never an existing one), in one call.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        os.close(os.open(self._upload_path(upload_id), flags, 0o666))

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    async def upload_append(
        self,
        upload_id: str,
        offset: int,
        blocks: AsyncIterator[list[bytes]],
        observe: Observer | None = None,
    ) -> int:
        path = self._upload_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        writer: AppendWriter | None = None
        running: list[concurrent.futures.Future[Any]] = []

        def release() -> None:
            if writer is not None:
                writer.close()
            os.close(fd)

        try:
            stored = os.fstat(fd).st_size
            if stored < offset:
                raise FileNotFoundError(f"upload {upload_id} has lost data")
            if stored > offset:
                # Leftovers of an interrupted write. Only then: on ext4, truncating a file to
                # nothing (a first part) makes its close start writing it out (auto_da_alloc).
                os.ftruncate(fd, offset)
            size = offset

            # While the loop receives the next block, threads hash this one and write it: in
            # parallel, since a direct write mostly waits on the disk and hashing on the CPU.
            executor = self._io.get()
            held: list[bytes] | None = None  # a small first block, which may be the body
            first = True
            async for block in blocks:
                if first and _length(block) <= SMALL_BODY:
                    held, first = block, False
                    continue
                first = False
                if writer is None:
                    writer = AppendWriter(fd, offset, str(path))
                for part in (block,) if held is None else (held, block):
                    for job in running:
                        await asyncio.wrap_future(job)
                    size += _length(part)
                    running = [executor.submit(writer.write, part)]
                    if observe is not None:
                        running.append(executor.submit(observe, part))
                held = None
            if held is not None:
                # The whole body was one small block (an ECR part, a small blob's PUT): hashed
                # and written right here, through the page cache (microseconds, where a
                # thread hand-off costs about a hundred). Its bytes are made durable by the
                # commit's fsync, as any upload's; no early write-out is queued for so few.
                if observe is not None:
                    observe(held)
                return _write_small(fd, offset, held)
            if writer is None:
                return size  # an empty body
            for job in running:
                await asyncio.wrap_future(job)
            running = [executor.submit(writer.finish)]
            end = await asyncio.wrap_future(running[0])
            assert end == size, (end, size)
            return size
        finally:
            # Interrupted (a dropped client, a cancelled task) while the threads still work:
            # wait for them. Once this returns, the caller releases the upload's lease, and a
            # retry may rewrite these offsets; a late write from this request must not land on
            # top. Nor may a thread find its descriptor closed, or reused by another file.
            cancelled = False
            for job in running:
                cancelled = await settle(job) or cancelled
            release()
            if cancelled:
                raise asyncio.CancelledError

    async def upload_read(self, upload_id: str, length: int) -> AsyncIterator[bytes]:
        with open(self._upload_path(upload_id), "rb") as fh:
            if length <= SMALL_BODY:
                # As small a read as a small body's write (just written, in the page cache):
                # here, rather than a thread hand-off that costs more than the read.
                if length > 0 and (data := fh.read(length)):
                    yield data
                return
            while length > 0 and (
                data := await asyncio.to_thread(fh.read, min(READ_BLOCK, length))
            ):
                length -= len(data)
                yield data

    async def upload_commit(self, upload_id: str, digest: str, size: int | None = None) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)

        def commit() -> int | None:
            if target.exists():
                # Content-addressed: the same bytes are already durable there.
                source.unlink(missing_ok=True)
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(source, os.O_RDWR)
            try:
                if size is not None:
                    # Bytes past the counted size are leftovers of an interrupted write.
                    os.ftruncate(fd, size)
                os.fsync(fd)
                written = os.fstat(fd).st_size
            finally:
                os.close(fd)
            os.replace(source, target)
            _fsync_dir(target.parent)
            return written

        written = await asyncio.to_thread(commit)
        if written is not None and direct.writes_direct():
            # Durable and visible: now read back what O_DIRECT left out of the page cache,
            # in the background. A blob just pushed is the likeliest to be pulled next (a CI
            # job's deploy, the other nodes), and Distribution's buffered writes serve that
            # pull from memory.
            job = readahead.start(target, min(direct.DIRECT_FROM, written), written)
            if job is not None:
                job.detach()

    async def upload_delete(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)

    async def expire_uploads(self, older_than: float) -> int:
        def expire() -> int:
            removed = 0
            for path in self.upload_root.iterdir():
                try:
                    if path.stat().st_mtime < older_than:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass  # committed or deleted meanwhile
            return removed

        return await asyncio.to_thread(expire)

    async def ready(self) -> None:
        if not os.access(self.blob_root, os.W_OK):
            raise OSError(f"blob directory {self.blob_root} is not writable")
