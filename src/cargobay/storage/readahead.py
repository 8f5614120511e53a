"""Reading a blob file into the page cache ahead of the sendfile that serves it.

sendfile(2) runs on the event loop: on a page not yet cached it waits for the disk, and the
loop waits with it (every other request of that worker too). A blob not in the cache is
common: uploads are written with O_DIRECT past their first 32 MiB (`direct.py`), and any blob
is cold once the kernel has reclaimed it. So a thread reads the file ahead of the socket: it
splices the range to /dev/null (sendfile again, no copy to user space), so the disk waits
happen there and the response's own sendfile finds the pages cached. The same thread reads a
freshly committed upload back into the cache (`filesystem.py`).

Why a splice and not `posix_fadvise(WILLNEED)`: one WILLNEED call reads at most the device's
readahead size (a WILLNEED over a whole 64 MiB file read 8 MiB here), and it reads page by
page, where the sequential read path reads large folios. Measured on a cold 1 GiB file:
0.12-0.16 CPU s for WILLNEED in 0.5-8 MiB windows against 0.03 CPU s for the splice, at the
same disk speed. WILLNEED remains the fallback where a file cannot be spliced to /dev/null.

Pages already cached cost a lookup, not a read. One readahead runs per file and process: a
pull storm on one layer starts one, not fifty.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from pathlib import Path

WINDOW = 4 * 1024 * 1024  # bytes read per call: the stop flag is checked between calls
# Below this the kernel's readahead alone does as well: no thread hop.
READAHEAD_FROM = 4 * 1024 * 1024
THREADS = 4

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_active: dict[str, Readahead] = {}
_lock = threading.Lock()
_works = hasattr(os, "posix_fadvise") and hasattr(os, "sendfile")


class Readahead:
    """A readahead of [start, end) of one file for one or more responses; it ends early once
    every response it serves has ended (`release`), say because the clients left."""

    def __init__(self, path: str, start: int, end: int) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.next = start  # the first byte not yet asked for
        self.users = 1  # guarded by _lock
        self.finished = threading.Event()  # every window asked for, or stopped
        self._stopped = threading.Event()
        self._detached = False  # guarded by _lock

    def detach(self) -> None:
        """Let the readahead run to its end with no response waiting on it."""
        with _lock:
            if not self.finished.is_set():
                self._detached = True
                return
        self.release()

    def release(self) -> None:
        with _lock:
            self.users -= 1
            if self.users > 0:
                return
            if _active.get(self.path) is self:
                del _active[self.path]
        self._stopped.set()

    def _covers(self, start: int, end: int) -> bool:
        # Bytes behind `next` were asked for already: cached, or on their way. A finished
        # readahead still covers its range while a response it serves is being sent.
        return not self._stopped.is_set() and self.start <= start and end <= self.end

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1  # deleted meanwhile: the response itself reports it
        sink = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            while fd >= 0 and self.next < self.end and not self._stopped.is_set():
                length = min(WINDOW, self.end - self.next)
                if not _cached(fd, self.next, length):
                    try:
                        if os.sendfile(sink, fd, self.next, length) <= 0:
                            break  # the file is shorter than the range
                    except OSError:
                        os.posix_fadvise(fd, self.next, length, _WILLNEED)
                self.next += length
        except OSError:
            pass  # a hint only: the response reads the bytes either way
        finally:
            os.close(sink)
            if fd >= 0:
                os.close(fd)
            with _lock:
                self.finished.set()
                detached = self._detached
            if detached:
                self.release()


_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", 3)
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def _cached(fd: int, offset: int, length: int) -> bool:
    """Whether a window looks cached: its first and last byte read without waiting for the
    disk (RWF_NOWAIT). A warm blob (most pulls) then costs two small reads per window, not
    a splice of every page."""
    if not _NOWAIT:
        return False
    probe = bytearray(1)
    try:
        return all(os.preadv(fd, [probe], at, _NOWAIT) == 1 for at in (offset, offset + length - 1))
    except OSError:  # EAGAIN: not cached; or a filesystem without RWF_NOWAIT
        return False


def _looks_cached(path: Path, start: int, end: int) -> bool:
    """Whether the range's first, middle and last bytes are cached: then a warm blob (a
    pull storm's, a pull right after its push) needs no thread at all. RWF_NOWAIT reads never
    wait for the disk, so this is safe on the event loop."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        middle = start + (end - start) // 2
        return _cached(fd, start, middle - start) and _cached(fd, middle, end - middle)
    finally:
        os.close(fd)


def start(path: Path, start: int, end: int) -> Readahead | None:
    """Begin reading [start, end) of `path` into the page cache in the background, or join
    the readahead of this file that already covers the range; None when not worth it. The
    caller `release`s what it gets once its response has ended."""
    global _pool
    if not _works or end - start < READAHEAD_FROM or _looks_cached(path, start, end):
        return None
    key = str(path)
    with _lock:
        running = _active.get(key)
        if running is not None and running._covers(start, end):
            running.users += 1
            return running
        job = Readahead(key, start, end)
        _active[key] = job
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="readahead")
    try:
        _pool.submit(job.run)
    except RuntimeError:  # the interpreter is shutting down
        job.release()
        return None
    return job
