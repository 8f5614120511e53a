"""The range side of a first pull through the cache (`distribution.streams._clip`): the
bytes of the range are cut out of the chunks as they arrive, and the range's last piece is
written only once the whole blob's stream has ended cleanly (verified by the tee)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cargobay.distribution.streams import _clip
from cargobay.upstream.errors import DigestMismatch


async def _collect(parts: list[bytes], clipped: AsyncIterator[bytes]) -> None:
    async for part in clipped:
        parts.append(part)


async def _chunks(data: bytes, size: int, fail: bool = False) -> AsyncIterator[bytes]:
    for start in range(size, len(data), size):  # the first chunk is passed on its own
        yield data[start : start + size]
    if fail:
        raise DigestMismatch("bad bytes")


@pytest.mark.parametrize("start,end", [(0, 1), (0, 1000), (5, 17), (99, 301), (990, 1000)])
def test_the_range_is_cut_out_of_the_chunks(start: int, end: int) -> None:
    data = bytes(range(250)) * 4
    parts: list[bytes] = []
    asyncio.run(_collect(parts, _clip(data[:100], _chunks(data, 100), start, end)))  # type: ignore[arg-type]
    assert b"".join(parts) == data[start:end]


def test_the_last_piece_waits_for_a_clean_end() -> None:
    data = bytes(range(250)) * 4
    parts: list[bytes] = []
    with pytest.raises(DigestMismatch):
        asyncio.run(_collect(parts, _clip(data[:100], _chunks(data, 100, fail=True), 0, 250)))  # type: ignore[arg-type]
    # The range ends in the third chunk; that piece is held back, so the client is short.
    assert b"".join(parts) == data[:200]
