"""The worker's heap trimmer: freed upload buffers are handed back once no upload has been in
flight for a while, and never between the chunks of one upload (the faults that `tune` keeps
away would come back)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cargobay import malloc
from cargobay.storage import direct
from cargobay.storage.direct import AppendWriter

MIB = 1024 * 1024


async def _sink(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.Response(text=str(total))


async def _small(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _client(trimmer: malloc.Trimmer) -> TestClient:
    app = web.Application(middlewares=[trimmer.middleware])
    app.router.add_post("/upload", _sink)
    app.router.add_get("/small", _small)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_trims_once_after_uploads_stop_and_not_for_small_requests() -> None:
    trims: list[int] = []

    async def scenario() -> None:
        freed: list[int] = []
        trimmer = malloc.Trimmer(
            delay=0.3, trim=lambda: trims.append(1), before=[lambda: freed.append(1)]
        )
        client = await _client(trimmer)
        try:
            for _ in range(5):  # small requests never trim
                assert (await client.get("/small")).status == 200
                assert (await client.post("/upload", data=b"x" * 1000)).status == 200
            await asyncio.sleep(0.6)
            assert trims == []
            # Chunks of one upload follow each other closely: one trim, after the last.
            for _ in range(3):
                response = await client.post("/upload", data=b"x" * (2 * MIB))
                assert await response.text() == str(2 * MIB)
            assert trims == []
            await asyncio.sleep(0.8)
            assert trims == [1] and trimmer.trims == 1 and freed == [1]
        finally:
            await client.close()

    asyncio.run(scenario())


# In a fresh interpreter: how much heap a test process already holds would blur the figure.
RELEASE_PROBE = """
from cargobay import malloc

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

assert malloc.tune() and malloc.tuned()
# 1 MiB blocks come from the heap (under the mmap threshold); one block allocated after them
# keeps the heap's top in use, so freeing them trims nothing by itself.
blocks = [bytearray(1024 * 1024) for _ in range(24)]
pin = bytearray(64 * 1024)
del blocks
before = rss_kib()
released = malloc.release()
print(released, before - rss_kib())
"""


def test_release_returns_freed_heap_to_the_kernel() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    released, dropped_kib = result.stdout.split()
    assert released == "True"
    assert int(dropped_kib) > 8 * 1024


def test_idle_staging_buffers_are_unmapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "DIRECT_FROM", 0)  # direct from the first byte
    path = tmp_path / "upload"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = AppendWriter(fd, 0, str(path))
    try:
        writer.write([os.urandom(direct.STAGING_BYTES + 1)])
        writer.finish()
    finally:
        writer.close()
        os.close(fd)
    pooled = list(direct._pool)
    assert pooled, "the staging buffer was not returned to the pool"
    assert direct.release_staging() == len(pooled)
    assert direct._pool == [] and all(staging.closed for staging in pooled)
