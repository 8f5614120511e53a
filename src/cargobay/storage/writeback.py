"""Start writing an upload's bytes to disk while it is still arriving.

A commit must fsync the blob before it answers. Left alone, Linux keeps a fresh upload's pages
dirty in memory (background writeback starts only at 10 % of RAM or after 30 s), so that fsync
would write the whole blob at the end, while the client waits: about 0.5 s per GiB on a
1.5-2 GB/s disk. `sync_file_range(SYNC_FILE_RANGE_WRITE)` queues the pages already written for
write-out without waiting for them, so the disk works in parallel with the network and the
final fsync only waits for the tail. Python's `os` module has no binding for it, so this one
goes through libc; elsewhere (or if the call fails) it is a no-op and the fsync does it all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
# Queue write-out once this many bytes are dirty: large enough that the call is rare, small
# enough that the disk starts early.
WRITEBACK_BYTES = 8 * 1024 * 1024

_sync_file_range: Callable[[int, int, int, int], int] | None = None
_loaded = False


def _load() -> Callable[[int, int, int, int], int] | None:
    global _sync_file_range, _loaded
    if not _loaded:
        _loaded = True
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                function = libc.sync_file_range
                function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                function.restype = ctypes.c_int
                _sync_file_range = function
            except (OSError, AttributeError):
                _sync_file_range = None
    return _sync_file_range


class Writeback:
    """Tracks how far a file descriptor's bytes have been queued for write-out."""

    __slots__ = ("_call", "fd", "queued")

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.queued = offset
        self._call = _load()

    def wrote(self, end: int, *, force: bool = False) -> None:
        """The file now holds bytes up to `end`; queue the new ones once enough are dirty
        (or now, with `force`, at the end of a request)."""
        if self._call is None or end <= self.queued:
            return
        if not force and end - self.queued < WRITEBACK_BYTES:
            return
        if self._call(self.fd, self.queued, end - self.queued, SYNC_FILE_RANGE_WRITE) != 0:
            self._call = None  # unsupported here (say, a filesystem without it): stop trying
            return
        self.queued = end
