"""Appending upload bytes to a file, mostly with direct I/O (O_DIRECT).

Pushed bytes are written once and read back rarely (a pull comes later, often on another
node), so they gain little from the page cache, and putting them there costs a fresh page per
4 KiB: on a virtual machine whose free memory the host has taken back, a buffered write of a
new file was measured at 400-450 MiB/s against 3 GB/s into recycled pages, while O_DIRECT ran
at 2 GB/s (the disk) either way. Direct I/O also leaves the cache to the blobs pulls need.

O_DIRECT wants the buffer, the file offset and the length aligned to the block size, so the
bytes go through an aligned staging buffer and only whole blocks are written directly. The
unaligned head (up to the first block boundary) and tail (after the last one) of each request
are written through the page cache by a second, ordinary descriptor. Nothing here is durable
until the commit's fsync, exactly as with buffered writes. Where the filesystem refuses
O_DIRECT (tmpfs, some overlays), everything is written through the page cache, with early
write-out (`writeback.py`) so that the commit's fsync does not start from zero.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading

from cargobay.storage.writeback import Writeback

ALIGN = 4096
STAGING_BYTES = 2 * 1024 * 1024  # a multiple of ALIGN
# Staging buffers are reused, not unmapped: mapping a fresh one per request would fault in
# (and zero) its pages every time. At most this many are kept per process.
_POOL_MAX = 8
_pool: list[mmap.mmap] = []
_pool_lock = threading.Lock()

# Only bytes past this offset of an upload are written directly. Most blobs (configs, most
# layers) are smaller and are often pulled right after the push (a CI job, a deploy), so they
# stay cached; the bulk of big blobs skips the cache. Measured: with every byte direct, a
# skopeo pull of 5 x 20 MiB layers just pushed read them from disk and lost its lead.
DIRECT_FROM = 32 * 1024 * 1024  # a multiple of ALIGN

_direct_works = hasattr(os, "O_DIRECT")


def release_staging() -> int:
    """Unmap the pooled staging buffers (a worker with no upload in flight: malloc.Trimmer);
    how many were released. The next upload maps a fresh one."""
    with _pool_lock:
        idle = _pool[:]
        _pool.clear()
    for staging in idle:
        with contextlib.suppress(BufferError):
            staging.close()
    return len(idle)


def writes_direct() -> bool:
    """Whether uploads here go past the page cache (after `DIRECT_FROM`)."""
    return _direct_works


class AppendWriter:
    """Writes a stream of byte blocks into a file from `offset` on; not thread-safe (one
    writer thread at a time, as the caller's upload lock guarantees).

    A staging buffer is held only while `write` runs: what is left staged after it (less
    than one block) is kept as a small `bytes`, so a request waiting on its client holds no
    buffer, and buffers in use never outnumber the threads writing."""

    def __init__(self, fd: int, offset: int, path: str) -> None:
        self.fd = fd  # buffered descriptor, owned by the caller
        self.pos = offset  # the file's end: every byte before it has been written
        self._writeback = Writeback(fd, offset)
        self._dfd: int | None = None
        self._staging: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._fill = 0  # bytes staged in the buffer, to go at self.pos
        self._carry = b""  # or, between writes, held here (less than ALIGN bytes)
        if _direct_works:
            with contextlib.suppress(OSError):
                self._dfd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)

    def write(self, block: list[bytes]) -> None:
        try:
            for chunk in block:
                self._write_chunk(memoryview(chunk))
            if self._view is not None and self._fill >= ALIGN:
                self._flush_direct(self._fill - self._fill % ALIGN)
        finally:
            if self._view is not None:
                self._carry = bytes(self._view[: self._fill])
                self._fill = 0
            self._return_staging()

    def finish(self) -> int:
        """Write the last partial block through the page cache and queue the buffered bytes
        for write-out; returns the file's new end."""
        carry, self._carry = self._carry, b""
        if carry:
            self._buffered(memoryview(carry))
        self._writeback.wrote(self.pos, force=True)
        return self.pos

    def close(self) -> None:
        try:
            self._return_staging()
        finally:
            if self._dfd is not None:
                dfd, self._dfd = self._dfd, None
                os.close(dfd)

    # -- internals ------------------------------------------------------------------------

    def _write_chunk(self, data: memoryview) -> None:
        if self._dfd is None:
            self._buffered(data)
            return
        if self.pos < DIRECT_FROM:
            # An upload's first bytes stay in the page cache (see DIRECT_FROM).
            cached = min(len(data), DIRECT_FROM - self.pos)
            self._buffered(data[:cached])
            data = data[cached:]
            if not data:
                return
        if self._view is None and not self._carry and self.pos % ALIGN:
            # Up to the next block boundary through the page cache.
            head = min(len(data), ALIGN - self.pos % ALIGN)
            self._buffered(data[:head])
            data = data[head:]
        while data:
            view = self._staging_view()
            take = min(len(data), len(view) - self._fill)
            view[self._fill : self._fill + take] = data[:take]
            self._fill += take
            data = data[take:]
            if self._fill == len(view):
                self._flush_direct(self._fill)
                if self._dfd is None:  # refused: the rest goes through the page cache
                    self._buffered(data)
                    return

    def _staging_view(self) -> memoryview:
        if self._view is None:
            # Anonymous mappings are page-aligned, which O_DIRECT needs of the buffer.
            with _pool_lock:
                staging = _pool.pop() if _pool else None
            self._staging = staging if staging is not None else mmap.mmap(-1, STAGING_BYTES)
            self._view = memoryview(self._staging)
            carry, self._carry = self._carry, b""
            self._view[: len(carry)] = carry
            self._fill = len(carry)
        return self._view

    def _return_staging(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._staging is not None:
            staging, self._staging = self._staging, None
            with _pool_lock:
                if len(_pool) < _POOL_MAX:
                    _pool.append(staging)
                    return
            with contextlib.suppress(BufferError):  # a failed write's traceback may pin it
                staging.close()

    def _flush_direct(self, length: int) -> None:
        """Write the first `length` staged bytes (a multiple of ALIGN) at self.pos directly,
        keeping any remainder staged. If the filesystem refuses, write everything staged
        through the page cache and stop using direct I/O."""
        assert self._view is not None and self._dfd is not None
        written = 0
        try:
            while written < length:
                with self._view[written:length] as piece:
                    written += os.pwrite(self._dfd, piece, self.pos + written)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # This filesystem takes O_DIRECT at open but not these writes: go buffered.
            global _direct_works
            _direct_works = False
            dfd, self._dfd = self._dfd, None
            os.close(dfd)
            rest = bytes(self._view[written : self._fill])
            self._fill = 0
            self.pos += written
            self._buffered(memoryview(rest))
            return
        self.pos += length
        remainder = self._fill - length
        if remainder:
            self._view[:remainder] = self._view[length : self._fill]
        self._fill = remainder

    def _buffered(self, data: memoryview) -> None:
        written = 0
        while written < len(data):
            with data[written:] as piece:
                written += os.pwrite(self.fd, piece, self.pos + written)
        self.pos += len(data)
        self._writeback.wrote(self.pos)
