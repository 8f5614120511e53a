"""The worker's heap trimmer: freed upload buffers are handed back once no upload has been in
flight for a while, and never between the chunks of one upload (the faults that `tune` keeps
away would come back)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cargobay import malloc

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
        trimmer = malloc.Trimmer(delay=0.3, trim=lambda: trims.append(1))
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
            assert trims == [1] and trimmer.trims == 1
        finally:
            await client.close()

    asyncio.run(scenario())


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_release_returns_freed_heap_to_the_kernel() -> None:
    assert malloc.tune() is True and malloc.tuned()
    # 1 MiB blocks come from the heap (under the mmap threshold); one block allocated after
    # them keeps the heap's top in use, so freeing them trims nothing by itself.
    blocks = [bytearray(MIB) for _ in range(24)]
    pin = bytearray(64 * 1024)
    del blocks
    before = _rss_kib()
    assert malloc.release() is True
    assert before - _rss_kib() > 8 * 1024
    del pin
