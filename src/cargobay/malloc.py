"""Keep the C allocator from handing upload buffers back to the kernel during a request, and
hand them back once the uploads stop.

An upload arrives as a stream of 64-256 KiB `bytes` objects that live for a millisecond each.
With glibc's defaults, buffers that size are mmap'd and unmapped one by one (or the heap top
is trimmed and regrown), so pages are faulted in and zeroed afresh all the time: 25,000-54,000
page faults per 256 MiB chunked upload, measured here, and 400-470 MiB/s; with these
thresholds, under 2,000 faults and 490-580 MiB/s. Raising them lets those buffers be
reused from the heap. The cost was up to `TRIM_BYTES` of freed heap kept per process for
good (6 MiB: an upload keeps 3-4 MiB of buffers live; below that, the faults came back), and
a worker that had received one upload stayed 8 MiB larger.

`Trimmer` gives that memory back: when a worker has had no request body of `LARGE_BODY` or
more in flight for `TRIM_DELAY` seconds, it calls `malloc_trim(0)`. Chunks of one upload
follow each other more closely than that, so an upload keeps its buffers warm throughout.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web  # only serving workers import this module

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 4 * 1024 * 1024
TRIM_BYTES = 6 * 1024 * 1024
LARGE_BODY = 1024 * 1024  # a request body this large (or of unknown length) counts as upload
TRIM_DELAY = 0.5  # seconds with no upload in flight before the heap is trimmed

_libc: ctypes.CDLL | None = None
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None  # not glibc (musl has no mallopt): its allocator keeps its own ways
        _libc = libc
    return _libc


def tune() -> bool:
    """Apply the thresholds if this is glibc; True if they took effect."""
    global _tuned
    libc = _glibc()
    if libc is None:
        return False
    _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)
    )
    return _tuned


def tuned() -> bool:
    """Whether `tune` took effect in this process (so freed heap is kept until trimmed)."""
    return _tuned


def release() -> bool:
    """Return free heap memory (every arena's) to the kernel; True if any was returned."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Trimmer:
    """Counts request bodies in flight and trims the heap once none has been for a while."""

    def __init__(
        self,
        delay: float = TRIM_DELAY,
        trim: Callable[[], object] = release,
        before: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.delay = delay
        self.trim = trim
        self.before = tuple(before)  # frees other upload buffers (direct I/O staging) first
        self.trims = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, request: web.BaseRequest) -> bool:
        """Note a request whose body counts as an upload (True); `end` must follow it."""
        length = request.content_length
        if not request.body_exists or (length is not None and length < LARGE_BODY):
            return False
        self._in_flight += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    def end(self) -> None:
        """An upload `begin` counted has been handled: trim once none has been for a while."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._run)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """`begin` and `end` around a handler (the worker calls them from its one request
        handler, `connections.ConnectionGuard.wrap`, instead)."""
        if not self.begin(request):
            return await handler(request)
        try:
            return await handler(request)
        finally:
            self.end()

    def _run(self) -> None:
        self._timer = None
        if self._in_flight == 0:
            for free in self.before:
                free()
            self.trim()
            self.trims += 1
