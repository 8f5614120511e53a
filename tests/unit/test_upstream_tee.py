"""The blob tee with synthetic sources and sinks: both sides get every byte, memory stays
bounded under a slow client, a vanished client does not stop the store fill, and bad bytes are
never committed nor completed to the client."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from cargobay.upstream.errors import DigestMismatch, UpstreamUnavailable
from cargobay.upstream.tee import Tee


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Sink:
    def __init__(self, fail_after: int | None = None, fail_commit: bool = False) -> None:
        self.data = bytearray()
        self.events: list[str] = []
        self.fail_after = fail_after
        self.fail_commit = fail_commit

    async def write(self, chunk: bytes) -> None:
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise OSError("disk full")
        self.data += chunk
        self.events.append("write")

    async def commit(self) -> None:
        self.events.append("commit")
        if self.fail_commit:
            raise RuntimeError("database gone")

    async def abort(self) -> None:
        self.events.append("abort")


class Source:
    """Chunks of a payload; records how far the upstream has been read."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.produced = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise UpstreamUnavailable("connection reset")
            self.produced += 1
            await asyncio.sleep(0)
            yield chunk


CHUNKS = [bytes([i]) * 1000 for i in range(50)]
PAYLOAD = b"".join(CHUNKS)


def test_client_and_store_get_every_byte_and_commit_follows_verification() -> None:
    async def scenario() -> tuple[bytes, Sink, list[str]]:
        sink = Sink()
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD), sink, max_chunks=4)
        received = b""
        order = []
        async for chunk in tee.stream():
            received += chunk
            order.append("client")
        await tee.wait()
        return received, sink, order

    received, sink, order = asyncio.run(scenario())
    assert received == PAYLOAD and bytes(sink.data) == PAYLOAD
    assert sink.events == ["write"] * len(CHUNKS) + ["commit"]
    assert len(order) == len(CHUNKS)


def test_a_slow_client_holds_the_fill_back_instead_of_buffering() -> None:
    max_chunks = 4

    async def scenario() -> int:
        source = Source(CHUNKS)
        tee = Tee(source, digest_of(PAYLOAD), Sink(), max_chunks=max_chunks)
        consumed = 0
        ahead = 0
        async for _ in tee.stream():
            consumed += 1
            for _ in range(20):  # a slow client: the fill runs as far as it may meanwhile
                await asyncio.sleep(0)
            ahead = max(ahead, source.produced - consumed)
        await tee.wait()
        return ahead

    # queued chunks + the held-back last chunk + the one being put
    assert asyncio.run(scenario()) <= max_chunks + 2


def test_a_client_that_goes_away_does_not_stop_the_store_fill() -> None:
    async def scenario() -> tuple[int, Sink]:
        sink = Sink()
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD), sink, max_chunks=2)
        stream = tee.stream()
        received = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()  # the client disconnected
        await tee.wait()
        return len(received), sink

    received, sink = asyncio.run(scenario())
    assert received == 3
    assert bytes(sink.data) == PAYLOAD
    assert sink.events[-1] == "commit"


def test_a_cancelled_client_task_does_not_stop_the_store_fill() -> None:
    async def scenario() -> Sink:
        sink = Sink()
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD), sink, max_chunks=2)

        async def client() -> None:
            async for _ in tee.stream():
                await asyncio.sleep(3600)  # never finishes: cancelled below

        task = asyncio.create_task(client())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tee.wait()
        return sink

    sink = asyncio.run(scenario())
    assert bytes(sink.data) == PAYLOAD and sink.events[-1] == "commit"


def test_bad_bytes_are_never_committed_nor_completed() -> None:
    async def scenario() -> tuple[bytes, BaseException | None, Sink, BaseException | None]:
        sink = Sink()
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD + b"x"), sink, max_chunks=4)
        received = b""
        error = None
        try:
            async for chunk in tee.stream():
                received += chunk
        except DigestMismatch as exc:
            error = exc
        try:
            await tee.wait()
            filled = None
        except DigestMismatch as exc:
            filled = exc
        return received, error, sink, filled

    received, error, sink, filled = asyncio.run(scenario())
    assert isinstance(error, DigestMismatch) and isinstance(filled, DigestMismatch)
    assert received == PAYLOAD[: -len(CHUNKS[-1])]  # the last chunk was withheld
    assert "commit" not in sink.events and sink.events[-1] == "abort"


def test_an_upstream_failure_reaches_the_client_and_aborts_the_store() -> None:
    async def scenario() -> tuple[type, Sink]:
        sink = Sink()
        tee = Tee(Source(CHUNKS, fail_at=10), digest_of(PAYLOAD), sink)
        with pytest.raises(UpstreamUnavailable) as info:
            async for _ in tee.stream():
                pass
        with pytest.raises(UpstreamUnavailable):
            await tee.wait()
        return info.type, sink

    kind, sink = asyncio.run(scenario())
    assert kind is UpstreamUnavailable
    assert sink.events == ["write"] * 10 + ["abort"]


@pytest.mark.parametrize("failure", ["write", "commit"])
def test_a_failing_store_does_not_fail_the_client(failure: str) -> None:
    async def scenario() -> tuple[bytes, Sink, BaseException | None]:
        sink = Sink(fail_after=5000) if failure == "write" else Sink(fail_commit=True)
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD), sink)
        received = b"".join([chunk async for chunk in tee.stream()])
        try:
            await tee.wait()
            error = None
        except Exception as exc:
            error = exc
        return received, sink, error

    received, sink, error = asyncio.run(scenario())
    assert received == PAYLOAD
    if failure == "write":
        assert isinstance(error, OSError)
        assert sink.events == ["write"] * 5 + ["abort"]
    else:
        assert isinstance(error, RuntimeError)
        assert sink.events[-1] == "commit"


def test_a_fill_nobody_reads_completes_on_its_own() -> None:
    async def scenario() -> Sink:
        sink = Sink()
        tee = Tee(Source(CHUNKS), digest_of(PAYLOAD), sink, max_chunks=1)
        tee.detach()  # e.g. a prefetch of an index's children
        await tee.wait()
        return sink

    sink = asyncio.run(scenario())
    assert bytes(sink.data) == PAYLOAD and sink.events[-1] == "commit"


def test_a_self_verifying_source_is_not_hashed_again_and_its_failure_still_aborts() -> None:
    """`verify=False`: the source's own DigestMismatch (before its last chunk) aborts the
    store and withholds the client's last chunk, as the tee's own check would."""

    async def failing() -> AsyncIterator[bytes]:
        for chunk in CHUNKS[:-1]:
            yield chunk
        raise DigestMismatch("bytes do not hash to the digest")

    async def scenario(source: AsyncIterator[bytes], digest: str) -> tuple[bytes, Sink, bool]:
        sink = Sink()
        tee = Tee(source, digest, sink, verify=False)
        received, failed = b"", False
        try:
            async for chunk in tee.stream():
                received += chunk
        except DigestMismatch:
            failed = True
        if not failed:
            await tee.wait()
        return received, sink, failed

    # Not hashed: a digest that does not match is not noticed by the tee itself.
    received, sink, failed = asyncio.run(scenario(Source(CHUNKS).__aiter__(), "sha256:" + "0" * 64))
    assert not failed and received == PAYLOAD and sink.events[-1] == "commit"
    received, sink, failed = asyncio.run(scenario(failing(), digest_of(PAYLOAD)))
    assert failed and sink.events[-1] == "abort" and "commit" not in sink.events
    assert received == b"".join(CHUNKS[:-2])  # the last chunk it sent is held back
