"""SQLite's write path on a database file: writers queued across processes before `BEGIN
IMMEDIATE`, and WAL checkpoints run off the write path (both used by `metadata.db`)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import Connection

from cargobay.metadata import roundtrips
from cargobay.threads import ProcessPool

log = logging.getLogger("cargobay.db")


async def begin_immediate(conn: Connection, timeout: float = 30.0) -> None:
    """BEGIN IMMEDIATE, waiting (off the loop) while a writer outside this lock holds SQLite's
    lock, as `busy_timeout` would; cargobay's own writers are already queued by WriterLock.
    Issued on the driver (sqlite3) connection, counted as a statement (`roundtrips`):
    SQLAlchemy's execution cost more than SQLite's BEGIN, and SQLAlchemy needs no transaction
    of its own over the driver's (its statements' autobegin issues nothing on SQLite; the
    writer commits or rolls back on the driver, `Database.write`)."""
    driver = conn.connection.driver_connection
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        roundtrips.add()
        try:
            driver.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


class Checkpointer:
    """Copies the WAL back into the database file from a thread, off the write path: after
    `EVERY_COMMITS` of this process's commits, or its first commit `EVERY_SECONDS` after the
    last checkpoint, one at a time. SQLite's automatic checkpoint (which the writer connections
    turn off) runs inside the commit that crosses its threshold, on the event loop, with every
    other writer queued behind its copying and fsyncs.

    Two PASSIVE passes (neither waits for a reader or writer): the first copies the bulk while
    writers go on; the second, with this deployment's writers held off (`WriterLock`), copies
    what they appended meanwhile, so the next write finds the WAL wholly copied and starts it
    over from its beginning. (SQLite restarts a WAL only then: a checkpoint that always trailed
    the writers would let it grow without bound.) Durability is unchanged: a commit is in the
    WAL when it returns, and a checkpoint fsyncs the WAL before copying it."""

    EVERY_COMMITS = 100
    EVERY_SECONDS = 1.0

    def __init__(self, path: str, writers: WriterLock) -> None:
        self.path = path
        self._writers = writers
        self._threads = ProcessPool(1, "db-checkpoint")
        self._commits = 0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._pid = 0
        self._conn: tuple[int, sqlite3.Connection] | None = None

    def committed(self) -> None:
        """Count a commit of this process (on the event loop, its writer lock released)."""
        self._commits += 1
        loop = asyncio.get_running_loop()
        task = self._task
        # A task of another process (inherited over a fork) or of a finished loop never ends.
        mine = task is not None and task.get_loop() is loop and self._pid == os.getpid()
        if mine and task is not None and not task.done():
            return
        now = time.monotonic()
        if self._commits < self.EVERY_COMMITS and now - self._last < self.EVERY_SECONDS:
            return
        self._commits, self._last = 0, now
        self._task, self._pid = loop.create_task(self._checkpoint()), os.getpid()

    async def _checkpoint(self) -> None:
        loop = asyncio.get_running_loop()
        threads = self._threads.get()
        try:
            await loop.run_in_executor(threads, self.copy)
            async with self._writers.held():
                await loop.run_in_executor(threads, self.copy)
        except Exception:  # never a request's error; the next checkpoint copies the rest
            log.warning("WAL checkpoint failed", exc_info=True)

    def copy(self) -> None:
        """One PASSIVE checkpoint (in the checkpoint thread)."""
        held = self._conn
        if held is None or held[0] != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=1.0, isolation_level=None, check_same_thread=False
            )
            held = self._conn = (os.getpid(), conn)
        try:
            held[1].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as exc:  # e.g. another process's is running
            log.debug("WAL checkpoint skipped: %s", exc)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])
        self._threads.shutdown()
        if self._conn is not None and self._conn[0] == os.getpid():
            self._conn[1].close()
        self._conn = None


class WriterLock:
    """Queues SQLite writers before `BEGIN IMMEDIATE`: one at a time per process (an asyncio
    lock) and across processes (flock on a file beside the database, whose waiters the kernel
    wakes as soon as it is released). SQLite's busy handler alone polls with sleeps of up to
    100 ms, so under steady write load a worker could lose the race for seconds. The lock only
    orders writers; SQLite's own locking still guarantees correctness if it is bypassed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[Any] | None = None

    def _file(self) -> int:
        # Reopened after a fork: flock only excludes other open file descriptions.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def held_here(self) -> bool:
        """Whether the running task holds the lock (is inside a write transaction)."""
        task = asyncio.current_task()
        return task is not None and task is self._owner

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            # SQLite has one writer: a write inside a write would wait for itself forever.
            raise RuntimeError("nested write transaction")
        async with self._lock:
            fd = self._file()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waiting = loop.run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
                try:
                    await asyncio.shield(waiting)
                except asyncio.CancelledError:
                    waiting.add_done_callback(lambda _: fcntl.flock(fd, fcntl.LOCK_UN))
                    raise
            self._owner = task
            try:
                yield
            finally:
                self._owner = None
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
