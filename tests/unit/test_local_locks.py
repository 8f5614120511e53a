"""Locks of one host for a SQLite file's deployment (`metadata.locallocks`): one holder at a
time across processes and within one, released when the holder dies (SIGKILL), and not
shared with a child forked after the lock file was opened (the supervisor forks workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from cargobay.metadata import locallocks
from cargobay.metadata.db import Database
from cargobay.metadata.leases import LeaseBusy
from cargobay.metadata.locallocks import LocalLocks

pytestmark = pytest.mark.skipif(
    locallocks._OFD_SETLK is None, reason="no OFD locks on this platform"
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from cargobay.metadata.locallocks import LocalLocks
    locks = LocalLocks(sys.argv[1])
    locks.acquire(sys.argv[2])
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_only_sqlite_files_get_local_locks(tmp_path: Path) -> None:
    """A SQLite file's workers share a host; PostgreSQL's nodes do not (database leases)."""
    on_file = LocalLocks.for_database(Database(f"sqlite:///{tmp_path / 'm.db'}"), ".l")
    assert on_file is not None and on_file.path == f"{tmp_path / 'm.db'}.l"
    memory = SimpleNamespace(is_sqlite=True, url="sqlite+aiosqlite:///:memory:")
    assert LocalLocks.for_database(memory, ".l") is None  # type: ignore[arg-type]
    postgres = SimpleNamespace(is_sqlite=False, url="postgresql+asyncpg://u:p@db/registry")
    assert LocalLocks.for_database(postgres, ".l") is None  # type: ignore[arg-type]


def test_one_holder_at_a_time_within_a_process(tmp_path: Path) -> None:
    path = str(tmp_path / "locks")
    one, two = LocalLocks(path), LocalLocks(path)
    one.acquire("upload:a")
    with pytest.raises(LeaseBusy):
        one.acquire("upload:a")  # another request of the same process
    with pytest.raises(LeaseBusy):
        two.acquire("upload:a")  # another open file (a second store in one process)
    two.acquire("upload:b")  # other names are free
    one.release("upload:a")
    with two.hold("upload:a"), pytest.raises(LeaseBusy):
        one.acquire("upload:a")
    one.acquire("upload:a")


def test_a_killed_holder_s_lock_is_free_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "locks")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path, "upload:x"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"held"
        mine = LocalLocks(path)
        with pytest.raises(LeaseBusy):
            mine.acquire("upload:x")
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        mine.acquire("upload:x")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_forked_child_does_not_share_its_parent_s_locks(tmp_path: Path) -> None:
    """Workers are forked from one supervisor: a lock file opened before the fork must not
    make the parent's and the child's locks one (an inherited descriptor shares them)."""
    locks = LocalLocks(str(tmp_path / "locks"))
    locks._file()  # opened before the fork, nothing held
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child takes the lock through the same object, then waits
        try:
            locks.acquire("upload:p")
            os.write(from_child, b"held")
            os.read(to_child, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(to_parent, 16) == b"held"
        with pytest.raises(LeaseBusy):
            locks.acquire("upload:p")
    finally:
        os.write(from_parent, b"x")
        os.waitpid(pid, 0)
        for fd in (to_parent, from_child, to_child, from_parent):
            os.close(fd)
    locks.acquire("upload:p")  # the child is gone, and its lock with it
