"""The tee over a real upstream blob: a client and a file-backed store sink get the same,
verified bytes, and a client that leaves early still leaves a complete stored blob."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cargobay.upstream.auth import Credentials
from cargobay.upstream.client import UpstreamClient
from cargobay.upstream.tee import Tee
from upstream.conftest import Upstream
from upstream.distribution import PASSWORD, USER


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_suffix(".partial")
        self._file = self.partial.open("wb")

    async def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    async def commit(self) -> None:
        self._file.close()
        self.partial.rename(self.path)

    async def abort(self) -> None:
        self._file.close()
        self.partial.unlink(missing_ok=True)


def test_tee_of_a_real_upstream_blob(upstreams: dict[str, Upstream], tmp_path: Path) -> None:
    upstream = upstreams["token"]
    layer = upstream.image.layers[1]
    digest = next(d for d, b in upstream.image.blobs.items() if b == layer)

    async def scenario() -> tuple[bytes, int]:
        async with UpstreamClient(
            upstream.registry.url, credentials=Credentials(USER, PASSWORD), chunk_size=32 * 1024
        ) as client:
            full = Tee(client.get_blob("app/single", digest), digest, FileSink(tmp_path / "a"))
            served = b"".join([chunk async for chunk in full.stream()])
            await full.wait()
            early = Tee(client.get_blob("app/single", digest), digest, FileSink(tmp_path / "b"))
            stream = early.stream()
            first = await stream.__anext__()
            await stream.aclose()
            await early.wait()
        return served, len(first)

    served, first = asyncio.run(scenario())
    assert served == layer
    assert (tmp_path / "a").read_bytes() == layer
    assert 0 < first < len(layer)
    assert (tmp_path / "b").read_bytes() == layer
