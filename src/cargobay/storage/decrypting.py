"""Reading plaintext ranges of encrypted copies (`storage.encrypted`): as async streams of
decrypted pieces (any store), and, for stores with local files, as `LocalRange`, a synchronous
producer that a sending thread drives (`distribution.sendthread`), decrypting into two
reused buffers so no byte of a download is allocated, copied or handed to the event loop.
Any failure to authenticate raises (`StreamError`, `BlobCorrupt`); no unauthenticated byte is
ever yielded."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cargobay.crypto import stream

# Ciphertext read and decrypted per batch (rounded to whole sealed segments).
READ_BYTES = 2 * 1024 * 1024


T = TypeVar("T")


def _in_thread(work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Start `work` in the default executor now (not when awaited)."""
    return asyncio.get_running_loop().run_in_executor(None, work, *args)


@dataclass(frozen=True, slots=True)
class LocalRange:
    """The planned plaintext range of one stored copy on a local file."""

    digest: str
    path: Path
    decryptor: stream.StreamDecryptor
    plan: stream.RangePlan

    @property
    def length(self) -> int:
        return self.plan.length

    def batches(self) -> Iterator[memoryview]:
        """The range's plaintext, one batch of whole segments at a time (pread, then AES into
        a reused buffer). Each view is valid until the next is asked for: the caller sends it
        first. Raises BlobCorrupt on any tampering or truncation."""
        from cargobay.storage.encrypted import BlobCorrupt

        try:
            yield from self._batches()
        except stream.StreamError as exc:
            raise BlobCorrupt(f"the stored copy of {self.digest}: {exc}") from None

    def _batches(self) -> Iterator[memoryview]:
        dec, plan = self.decryptor, self.plan
        sealed = dec.segment_size + dec.overhead
        per = max(1, READ_BYTES // sealed)
        cipher_view = memoryview(bytearray(per * sealed))
        plain_view = memoryview(bytearray(per * dec.segment_size))
        skip, remaining = plan.skip, plan.length
        index, offset = plan.first, plan.cipher_start
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while index <= plan.last:
                count = min(per, plan.last - index + 1)
                want = min(count * sealed, plan.cipher_end - offset)
                if os.preadv(fd, [cipher_view[:want]], offset) != want:
                    raise stream.StreamError("ciphertext ended early")
                out = 0
                for i in range(count):
                    segment = cipher_view[i * sealed : min((i + 1) * sealed, want)]
                    length = len(segment) - dec.overhead
                    dec.open_segment_into(index + i, segment, plain_view[out : out + length])
                    out += length
                piece = plain_view[skip : min(out, skip + remaining)]
                skip, remaining = 0, remaining - len(piece)
                index, offset = index + count, offset + want
                if piece:
                    yield piece
        finally:
            os.close(fd)
        if remaining:
            raise stream.StreamError("ciphertext ended early")


async def read_local(
    path: Path, reader: stream.RangeReader, plan: stream.RangePlan, segment_size: int
) -> AsyncIterator[bytes]:
    """A planned range of a stored file: each thread job reads whole sealed segments with
    pread and decrypts them (no partial segment is ever carried between reads), while the
    loop sends the previous job's plaintext."""
    sealed = segment_size + reader.overhead
    batch = max(1, READ_BYTES // sealed) * sealed
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    position, end = plan.cipher_start, plan.cipher_end

    def step(offset: int) -> list[bytes | bytearray]:
        data = os.pread(fd, min(batch, end - offset), offset)
        if not data:
            raise stream.StreamError("ciphertext ended early")
        return reader.update(data)

    job: asyncio.Future[list[bytes | bytearray]] | None = None
    try:
        if position < end:
            job, position = _in_thread(step, position), position + batch
        while job is not None:
            pieces = await job
            job = None
            if position < end:
                job, position = _in_thread(step, position), position + batch
            for piece in pieces:
                yield piece  # type: ignore[misc]
    finally:
        if job is not None and not job.done():
            # Closed early (a client gone): the descriptor outlives the job still using it.
            job.add_done_callback(lambda _: os.close(fd))
        else:
            os.close(fd)


async def read_store(
    chunks: AsyncIterator[bytes], reader: stream.RangeReader
) -> AsyncIterator[bytes]:
    """A planned range from any store: each chunk decrypts in a thread while the loop sends
    the previous chunk's plaintext and reads the next."""
    job: asyncio.Future[list[bytes | bytearray]] | None = None
    async for chunk in chunks:
        pieces = [] if job is None else await job
        job = _in_thread(reader.update, chunk)
        for piece in pieces:
            yield piece  # type: ignore[misc]
    if job is not None:
        for piece in await job:
            yield piece  # type: ignore[misc]
