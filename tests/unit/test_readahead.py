"""storage/readahead.py: a blob file evicted from the page cache is read back into it in the
background, one readahead per file however many responses share it, and none for small
ranges. Residency is read with `fincore` (util-linux)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from cargobay.storage import readahead

MiB = 1024 * 1024


def _resident(path: Path) -> int:
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def _evicted_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "blob"
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
        fh.flush()
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if _resident(path) > size // 2:
        pytest.skip("this filesystem keeps the file cached (tmpfs?): nothing to read ahead")
    return path


def _wait_resident(path: Path, size: int) -> int:
    deadline = time.monotonic() + 60  # a generous bound for a busy machine, not a timing
    while (resident := _resident(path)) < size and time.monotonic() < deadline:
        time.sleep(0.05)
    return resident


def test_an_evicted_file_is_read_back_into_the_page_cache(tmp_path: Path) -> None:
    size = 48 * MiB  # past what one WILLNEED call reads on any device
    path = _evicted_file(tmp_path, size)
    # A second try only when the first was evicted again behind it: this machine pages files
    # out on its own (DAMON's pageout, other sessions' drop_caches; benchmarks/pagecache.py),
    # and a readahead that reads nothing fails both.
    for attempt in (1, 2):
        job = readahead.start(path, 0, size)
        assert job is not None
        try:
            assert job.finished.wait(60)
            resident = _wait_resident(path, size)
        finally:
            job.release()
        if resident == size or attempt == 2:
            break
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # all out again, so a readahead starts
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    assert resident == size


def test_only_the_asked_range_is_read(tmp_path: Path) -> None:
    size = 32 * MiB
    path = _evicted_file(tmp_path, size)
    job = readahead.start(path, 16 * MiB, size)
    assert job is not None
    try:
        assert job.finished.wait(60)
        assert _wait_resident(path, 16 * MiB) >= 16 * MiB
        # The kernel may read a little around the range, never the whole first half.
        assert _resident(path) < 24 * MiB
    finally:
        job.release()


def test_responses_of_one_file_share_a_readahead_until_the_last_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readahead, "_looks_cached", lambda *_: False)
    path = tmp_path / "shared"
    path.write_bytes(b"\0" * (8 * MiB))
    first = readahead.start(path, 0, 8 * MiB)
    second = readahead.start(path, 4 * MiB, 8 * MiB)
    assert first is not None and second is first
    assert first.users == 2
    first.release()
    assert readahead._active.get(str(path)) is first
    second.release()
    assert str(path) not in readahead._active
    # A range the finished one does not cover starts its own.
    third = readahead.start(path, 0, 8 * MiB)
    assert third is not None and third is not first
    third.release()


def test_a_cached_file_needs_no_readahead(tmp_path: Path) -> None:
    path = tmp_path / "warm"
    path.write_bytes(os.urandom(16 * MiB))
    path.read_bytes()
    assert readahead.start(path, 0, 16 * MiB) is None


def test_small_ranges_are_left_to_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"x" * MiB)
    assert readahead.start(path, 0, MiB) is None


def test_a_file_deleted_before_the_readahead_runs_is_no_error(tmp_path: Path) -> None:
    job = readahead.start(tmp_path / "gone", 0, 64 * MiB)
    assert job is not None
    assert job.finished.wait(60)
    job.release()


def test_a_detached_readahead_runs_to_its_end_then_leaves(tmp_path: Path) -> None:
    size = 16 * MiB
    path = _evicted_file(tmp_path, size)
    job = readahead.start(path, 0, size)
    assert job is not None
    job.detach()
    assert job.finished.wait(60)
    assert _wait_resident(path, size) == size
    deadline = time.monotonic() + 60
    while str(path) in readahead._active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert str(path) not in readahead._active
