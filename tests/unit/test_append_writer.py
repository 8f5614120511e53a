"""The filesystem store's upload writer: direct I/O for whole blocks, the page cache for the
unaligned edges, and a buffered fallback; whatever the chunk sizes and offsets, the file must
hold exactly the bytes appended, in order."""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import random
from pathlib import Path

import pytest

from cargobay import malloc
from cargobay.storage import direct
from cargobay.storage.direct import ALIGN, STAGING_BYTES, AppendWriter
from cargobay.storage.filesystem import FilesystemStore
from cargobay.storage.writeback import Writeback


def _append(path: Path, offset: int, chunks: list[bytes]) -> int:
    """One request's worth of appends, as the store does it (truncate, write, finish)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = AppendWriter(fd, offset, str(path))
    try:
        os.ftruncate(fd, offset)
        writer.write(chunks)
        return writer.finish()
    finally:
        writer.close()
        os.close(fd)


def _requests(seed: int) -> list[list[bytes]]:
    """Requests of odd-sized chunks whose boundaries fall everywhere relative to ALIGN and to
    the staging buffer."""
    rng = random.Random(seed)
    sizes = [1, ALIGN - 1, ALIGN, ALIGN + 1, STAGING_BYTES - 7, STAGING_BYTES, 3 * ALIGN + 5]
    requests = []
    for _ in range(6):
        chunks = [rng.randbytes(rng.choice([*sizes, rng.randrange(1, 300_000)])) for _ in range(4)]
        requests.append(chunks)
    return requests


@pytest.fixture(autouse=True)
def _direct_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exercise direct I/O with small files: no cached prefix unless a test sets one."""
    monkeypatch.setattr(direct, "DIRECT_FROM", 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("use_direct", [True, False])
@pytest.mark.parametrize("direct_from", [0, 3 * ALIGN, STAGING_BYTES + ALIGN])
def test_appends_hold_exactly_the_bytes_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, use_direct: bool, direct_from: int
) -> None:
    monkeypatch.setattr(direct, "DIRECT_FROM", direct_from)
    if not use_direct:
        monkeypatch.setattr(direct, "_direct_works", False)
    path = tmp_path / "upload"
    expected = b""
    for chunks in _requests(seed):
        end = _append(path, len(expected), chunks)
        expected += b"".join(chunks)
        assert end == len(expected)
    assert path.read_bytes() == expected


def test_a_later_append_replaces_bytes_past_its_offset(tmp_path: Path) -> None:
    """An interrupted request may leave bytes the upload never counted; the next one writes
    over them from the counted offset."""
    path = tmp_path / "upload"
    first = os.urandom(STAGING_BYTES + 123)
    _append(path, 0, [first])
    _append(path, len(first), [os.urandom(ALIGN * 3)])  # never counted
    again = os.urandom(ALIGN + 17)
    assert _append(path, len(first), [again]) == len(first) + len(again)
    assert path.read_bytes() == first + again


@pytest.mark.parametrize("size", [2 * STAGING_BYTES + 99, STAGING_BYTES - 7, 3 * ALIGN + 5])
def test_writes_go_buffered_when_direct_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """A filesystem that opens with O_DIRECT but refuses the writes (EINVAL) still gets every
    byte, through the page cache, and later writers do not try again."""
    monkeypatch.setattr(direct, "_direct_works", True)
    real_pwrite = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: object, offset: int) -> int:
        if fd in direct_fds:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    direct_fds: set[int] = set()
    monkeypatch.setattr(direct.os, "pwrite", pwrite)
    path = tmp_path / "upload"
    data = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = AppendWriter(fd, 0, str(path))
    if writer._dfd is None:
        pytest.skip("this filesystem has no O_DIRECT")
    direct_fds.add(writer._dfd)
    try:
        writer.write([data])
        assert writer.finish() == len(data)
    finally:
        writer.close()
        os.close(fd)
    assert refused, "the direct write was never attempted"
    assert path.read_bytes() == data
    assert direct._direct_works is False


def test_no_staging_buffer_is_held_between_writes(tmp_path: Path) -> None:
    """A request waiting on its client holds no staging buffer, only its sub-block tail."""
    path = tmp_path / "upload"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = AppendWriter(fd, 0, str(path))
    try:
        first, second = os.urandom(STAGING_BYTES + ALIGN + 10), os.urandom(ALIGN - 3)
        writer.write([first])
        assert writer._view is None and writer._staging is None
        assert len(writer._carry) < ALIGN
        writer.write([second])
        assert writer._view is None
        assert writer.finish() == len(first) + len(second)
    finally:
        writer.close()
        os.close(fd)
    assert path.read_bytes() == first + second


def test_staging_buffers_are_reused(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    _append(path, 0, [os.urandom(STAGING_BYTES + 1)])
    pooled = list(direct._pool)
    assert pooled, "the staging buffer was not returned to the pool"
    _append(path, STAGING_BYTES + 1, [os.urandom(STAGING_BYTES)])
    assert set(map(id, direct._pool)) == set(map(id, pooled))


def test_an_interrupted_append_leaves_a_prefix_and_a_usable_upload(tmp_path: Path) -> None:
    """A body that fails mid-stream (a dropped client) raises; the store keeps writing nothing
    after, and the upload continues from the counted offset."""
    store = FilesystemStore(tmp_path)
    good = os.urandom(3 * 1024 * 1024 + 5)

    async def scenario() -> bytes:
        await store.upload_create("u-1")

        async def blocks():
            yield [good[: 1024 * 1024]]
            yield [good[1024 * 1024 :]]

        size = await store.upload_append("u-1", 0, blocks())
        assert size == len(good)

        async def broken():
            yield [os.urandom(1024 * 1024)]
            raise ConnectionResetError("client went away")

        with pytest.raises(ConnectionResetError):
            await store.upload_append("u-1", size, broken())
        tail = os.urandom(777)

        async def last():
            yield [tail]

        assert await store.upload_append("u-1", size, last()) == size + len(tail)
        return tail

    tail = asyncio.run(scenario())
    assert (tmp_path / "uploads" / "u-1").read_bytes() == good + tail


def test_writeback_queues_only_new_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        writeback = Writeback(fd, 0)
        os.write(fd, b"x" * 1000)
        writeback.wrote(1000)  # below the threshold: not yet
        assert writeback.queued == 0
        writeback.wrote(1000, force=True)
        assert writeback.queued in (0, 1000)  # 0 where sync_file_range is unavailable
    finally:
        os.close(fd)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_thresholds_take_effect_on_glibc() -> None:
    assert malloc.tune() is True
