"""The filesystem store's small-body path: a body of one block up to SMALL_BODY is hashed and
written on the event loop (no thread, no O_DIRECT descriptor). It must still replace whatever
an interrupted request left past the counted offset, refuse an upload that lost data, leave
an empty file untruncated, and commit exactly the counted bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargobay.storage import filesystem
from cargobay.storage.filesystem import SMALL_BODY, FilesystemStore


async def _one(data: bytes) -> AsyncIterator[list[bytes]]:
    yield [data]


async def _none() -> AsyncIterator[list[bytes]]:
    return
    yield []


def test_small_bodies_append_exactly_and_replace_leftovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemStore(tmp_path)
        await store.upload_create("u-1")
        seen: list[bytes] = []
        first, second = os.urandom(SMALL_BODY), os.urandom(1000)
        end = await store.upload_append("u-1", 0, _one(first), lambda b: seen.extend(b))
        assert end == len(first)
        # An interrupted request left bytes the upload never counted.
        with open(tmp_path / "uploads" / "u-1", "ab") as fh:
            fh.write(b"uncounted leftovers")
        assert await store.upload_append("u-1", len(first), _one(second)) == end + len(second)
        assert await store.upload_size("u-1") == len(first) + len(second)
        assert b"".join(seen) == first  # observed as written
        # An empty body changes nothing.
        assert await store.upload_append("u-1", end + len(second), _none()) == end + len(second)
        read = b"".join([c async for c in store.upload_read("u-1", end + len(second))])
        assert read == first + second
        digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
        await store.upload_commit("u-1", digest, end + len(second))
        assert b"".join([c async for c in store.read(digest)]) == first + second
        assert await store.upload_size("u-1") is None

    asyncio.run(scenario())


def test_an_upload_that_lost_data_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemStore(tmp_path)
        await store.upload_create("u-2")
        with pytest.raises(FileNotFoundError):
            await store.upload_append("u-2", 10, _one(b"after a gap"))

    asyncio.run(scenario())


def test_a_small_body_takes_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-off to a thread costs more than writing a small part: none is made."""

    async def scenario() -> None:
        store = FilesystemStore(tmp_path)

        class NoThreads:
            def submit(self, *args: object) -> None:
                raise AssertionError("a small body was handed to a thread")

        monkeypatch.setattr(store._io, "get", lambda: NoThreads())
        monkeypatch.setattr(filesystem, "AppendWriter", None)  # nor opens a direct writer
        await store.upload_create("u-3")
        data = os.urandom(4096)
        assert await store.upload_append("u-3", 0, _one(data)) == len(data)
        assert b"".join([c async for c in store.upload_read("u-3", len(data))]) == data

    asyncio.run(scenario())
