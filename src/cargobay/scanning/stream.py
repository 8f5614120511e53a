"""Blob bytes from an async iterator, read synchronously in a worker thread, decompressed.

Layer walking is CPU work (inflate, tar headers), so it runs in a thread; the blob store's
reader is an async iterator on the event loop. `ChunkPipe` connects the two with a bounded
number of chunks in flight, so a scan holds a few chunks of a layer at a time, never all of it.
"""

from __future__ import annotations

import asyncio
import queue
import zlib
from collections.abc import AsyncIterator
from typing import Protocol

from cargobay.scanning.errors import LayerError

# Chunks buffered between the reading coroutine and the walking thread.
PIPE_DEPTH = 4
# Most decompressed bytes produced per read: bounds memory even for a decompression bomb.
READ_SIZE = 1024 * 1024

_END = object()


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class ChunkPipe:
    """The consuming end of an async chunk iterator, for one thread; a file-like `read`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._credits: asyncio.Semaphore | None = None
        self._rest = memoryview(b"")
        self._done = False
        self.bytes_read = 0

    async def pump(self, chunks: AsyncIterator[bytes]) -> None:
        """Feed the pipe (run as a task on the loop) until the iterator ends or fails."""
        self._loop = asyncio.get_running_loop()
        self._credits = asyncio.Semaphore(PIPE_DEPTH)
        try:
            async for chunk in chunks:
                await self._credits.acquire()
                self._queue.put(chunk)
            self._queue.put(_END)
        except asyncio.CancelledError:
            self._queue.put(LayerError("the scan was cancelled"))
            raise
        except Exception as exc:  # handed to the thread, which raises it in the scan
            self._queue.put(exc)

    def next_chunk(self) -> bytes:
        """The next chunk of the blob (b"" at its end); blocks the calling thread."""
        if self._rest:
            rest, self._rest = self._rest, memoryview(b"")
            return bytes(rest)
        if self._done:
            return b""
        item = self._queue.get()
        if item is _END:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            raise item
        assert isinstance(item, bytes)
        if self._loop is not None and self._credits is not None:
            self._loop.call_soon_threadsafe(self._credits.release)
        self.bytes_read += len(item)
        return item

    def read(self, size: int = -1) -> bytes:
        """At most `size` bytes (one chunk or less), b"" at the end."""
        if not self._rest:
            chunk = self.next_chunk()
            if size < 0 or len(chunk) <= size:
                return chunk
            self._rest = memoryview(chunk)
        if size < 0:
            size = len(self._rest)
        out, self._rest = self._rest[:size], self._rest[size:]
        return bytes(out)

    def unread(self, data: bytes) -> None:
        """Push bytes back (after sniffing the compression)."""
        self._rest = memoryview(data + bytes(self._rest))


class GzipReader:
    """Inflates a gzip stream (every member of a multi-member one), at most READ_SIZE bytes
    per `read`, however compressible the input."""

    def __init__(self, source: ChunkPipe) -> None:
        self._source = source
        self._inflate = zlib.decompressobj(31)
        self._tail = b""
        self._ended = False

    def read(self, size: int = READ_SIZE) -> bytes:
        size = min(size, READ_SIZE) if size > 0 else READ_SIZE
        while not self._ended:
            if self._inflate.eof:
                rest = self._inflate.unused_data or self._source.next_chunk()
                if not rest.startswith(b"\x1f"):  # the end (gzip ignores trailing zeros too)
                    self._ended = True
                    return b""
                self._inflate = zlib.decompressobj(31)
                self._tail = rest
            data, self._tail = (self._tail or self._source.next_chunk()), b""
            if not data:
                raise LayerError("the layer's gzip stream is truncated")
            try:
                out = self._inflate.decompress(data, size)
            except zlib.error as exc:
                raise LayerError(f"the layer is not valid gzip: {exc}") from exc
            self._tail = self._inflate.unconsumed_tail
            if out:
                return out
        return b""


def zstd_reader(source: ChunkPipe) -> Readable:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(
        source, read_size=READ_SIZE, read_across_frames=True
    )

    class _Zstd:
        def read(self, size: int = READ_SIZE) -> bytes:
            size = min(size, READ_SIZE) if size > 0 else READ_SIZE
            try:
                return reader.read(size)
            except zstandard.ZstdError as exc:
                raise LayerError(f"the layer is not valid zstd: {exc}") from exc

    return _Zstd()


def decompressed(source: ChunkPipe) -> Readable:
    """The layer's tar bytes, whatever its compression (sniffed from the magic bytes, which
    outrank the media type: some registries label zstd layers as gzip)."""
    head = b""
    while len(head) < 4:
        chunk = source.next_chunk()
        if not chunk:
            break
        head += chunk
    source.unread(head)
    if head.startswith(b"\x1f\x8b"):
        return GzipReader(source)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstd_reader(source)
    return source
