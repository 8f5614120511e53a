"""`iam.awsrequest.read_body`: the whole body, within a limit, whether it has all arrived when
the door reads it or arrives in pieces meanwhile."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp import streams

from cargobay.iam.awsrequest import BodyTooLarge, read_body


class _Protocol:
    _reading_paused = False
    connected = True

    def pause_reading(self, **_: object) -> None:
        pass

    def resume_reading(self, **_: object) -> None:
        pass


def _request(content: streams.StreamReader, length: int | None) -> SimpleNamespace:
    return SimpleNamespace(content=content, content_length=length)


def _read(chunks: list[bytes], limit: int, *, arrived: bool, length: int | None = None) -> bytes:
    async def run() -> bytes:
        reader = streams.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        request = _request(reader, length)
        if arrived:
            for chunk in chunks:
                reader.feed_data(chunk)
            reader.feed_eof()
            return await read_body(request, limit)  # type: ignore[arg-type]

        async def feed() -> None:
            for chunk in chunks:
                await asyncio.sleep(0)
                reader.feed_data(chunk)
            reader.feed_eof()

        feeding = asyncio.ensure_future(feed())
        try:
            return await read_body(request, limit)  # type: ignore[arg-type]
        finally:
            feeding.cancel()

    return asyncio.run(run())


@pytest.mark.parametrize("arrived", [True, False])
def test_the_whole_body_in_one_piece_or_many(arrived: bool) -> None:
    chunks = [b'{"a": ', b'"' + b"x" * 100_000 + b'"', b"}"]
    assert _read(chunks, 1_000_000, arrived=arrived) == b"".join(chunks)
    assert _read([], 10, arrived=arrived) == b""


@pytest.mark.parametrize("arrived", [True, False])
def test_a_body_over_the_limit_is_refused(arrived: bool) -> None:
    with pytest.raises(BodyTooLarge):
        _read([b"x" * 60, b"y" * 60], 100, arrived=arrived)
    assert _read([b"x" * 60, b"y" * 40], 100, arrived=arrived) == b"x" * 60 + b"y" * 40


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(BodyTooLarge):
        _read([b"x"], 100, arrived=False, length=101)
