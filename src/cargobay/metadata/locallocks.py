"""Exclusion between the processes of one host, for a deployment on a SQLite file.

A SQLite database in WAL mode is shared only by processes of one host (they share its index
in memory), so every worker and tool that can write an upload runs there. Excluding them needs
no database lease (`metadata.leases`: a write transaction to claim and a statement to
release): an open-file-description lock (`F_OFD_SETLK`) on one byte of a lock file beside the
database, at an offset hashed from the resource's name, is a system call each way. The kernel
drops it when its holder dies, so a crashed worker's uploads are free again at once, for its
replacement and everyone else. Within a process, requests are excluded by a set of the names
held (one open file description serves them all).

Only where the platform has OFD locks; elsewhere (and on PostgreSQL, whose nodes share no
host) the database leases do it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from cargobay.metadata.db import Database
from cargobay.metadata.leases import LeaseBusy

_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)
# struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid (0), (pad).
_FLOCK = "hhxxxxqqixxxx"
_SPAN = 1 << 62  # lock offsets: a hash of the name, far past any collision that matters


def sqlite_file(db: Database) -> str | None:
    """The database file, when `db` is a SQLite file (not an in-memory database)."""
    if not db.is_sqlite:
        return None
    parsed = make_url(db.url)
    database = parsed.database or ""
    if not database or database == ":memory:" or "memory" in str(parsed.query):
        return None
    return database


class LocalLocks:
    """Named locks held by one request of one process of this host at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._held: set[str] = set()

    @classmethod
    def for_database(cls, db: Database, suffix: str) -> LocalLocks | None:
        """Locks for the resources of a SQLite file's deployment (the file beside it ends in
        `suffix`), or None where the database leases must do (PostgreSQL, no OFD locks)."""
        database = sqlite_file(db)
        if database is None or _OFD_SETLK is None or struct.calcsize(_FLOCK) != 32:
            return None
        return cls(f"{database}{suffix}")

    def _file(self) -> int:
        # Per process: a descriptor inherited over a fork shares its open file description,
        # and with it the locks, with the parent.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
            self._held = set()
        return self._fd

    def _lock(self, name: str, kind: int) -> None:
        offset = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % _SPAN
        fcntl.fcntl(self._file(), _OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, offset, 1, 0))

    def acquire(self, name: str) -> None:
        """Take the lock on `name`; LeaseBusy if any request of any process holds it."""
        self._file()
        if name in self._held:
            raise LeaseBusy(name)
        try:
            self._lock(name, fcntl.F_WRLCK)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LeaseBusy(name) from None
            raise
        self._held.add(name)

    def release(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            self._lock(name, fcntl.F_UNLCK)

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        self.acquire(name)
        try:
            yield
        finally:
            self.release(name)

    def close(self) -> None:
        """Drop every lock of this process (its descriptor)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        self._held = set()
