"""Streaming one upstream blob to a client and into the store at once.

One fill task reads the upstream source, writes each chunk to the store sink and offers it to
the client through a bounded queue:
- a slow client holds the fill back (at most `max_chunks` chunks wait in memory) instead of
  making memory grow;
- a client that goes away detaches: the fill carries on at the upstream's speed and commits,
  so the next pull finds the blob stored;
- the digest is verified (here, or by a source that verifies itself: `verify=False`) before
  the store commits, and the client's last chunk is held back until then, so neither a
  client nor the store ever completes with bad bytes;
- a store that fails does not fail the client: the bytes are still good, they just are not
  kept (`wait()` reports the store error to the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from cargobay.oci.digest import parse_digest
from cargobay.upstream.errors import DigestMismatch


class BlobSink(Protocol):
    """Where the store side of a tee goes (an upload into the blob store)."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None:
        """Called once, after every chunk was written and the digest verified."""

    async def abort(self) -> None:
        """Called once instead of `commit` when the fill fails; must not raise."""


_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Tee:
    """`async for chunk in tee.stream()` serves the client; `await tee.wait()` waits for the
    store side and re-raises its failure. The fill starts with the first `stream()` step (or
    `start()`, for a fill nobody reads)."""

    def __init__(
        self,
        source: AsyncIterable[bytes],
        digest: str,
        sink: BlobSink,
        *,
        max_chunks: int = 8,
        verify: bool = True,
    ) -> None:
        """`verify=False` when the source verifies the digest itself (raising before its last
        chunk, as `UpstreamClient.get_blob` does): the bytes are then hashed once, not twice."""
        self._source = source
        self._verify = verify
        self._digest = parse_digest(digest)
        self._sink = sink
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max(1, max_chunks))
        self._detached = False
        self._task: asyncio.Task[None] | None = None
        self.store_error: BaseException | None = None
        self.bytes = 0

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fill())
            # Failures reach the client through the queue and the cache through wait(); this
            # only keeps asyncio from logging a failure nobody chose to wait for.
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self._task

    async def wait(self) -> None:
        """Until the fill is over: returns once committed, raises what failed it."""
        await asyncio.shield(self.start())

    def detach(self) -> None:
        """The client is gone: stop offering it chunks and unblock a waiting fill."""
        self._detached = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def stream(self) -> AsyncIterator[bytes]:
        """The client's side: the blob's chunks, or the error that ended the fill early."""
        self.start()
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.detach()

    async def _offer(self, item: object) -> None:
        if not self._detached:
            await self._queue.put(item)

    async def _store(self, chunk: bytes) -> None:
        if self.store_error is not None:
            return
        try:
            await self._sink.write(chunk)
        except Exception as exc:  # the client is still served; the blob just is not kept
            self.store_error = exc
            await self._sink.abort()

    async def _fill(self) -> None:
        hasher = self._digest.hasher()
        held: bytes | None = None
        try:
            async for chunk in self._source:
                if not chunk:
                    continue
                if self._verify:
                    hasher.update(chunk)
                self.bytes += len(chunk)
                await self._store(chunk)
                if held is not None:
                    await self._offer(held)
                held = chunk
                if self._detached and self.store_error is not None:
                    raise self.store_error  # nobody reads and nothing is kept: stop fetching
            if self._verify and f"{self._digest.algorithm}:{hasher.hexdigest()}" != str(
                self._digest
            ):
                raise DigestMismatch(f"blob bytes do not hash to {self._digest}")
        except BaseException as exc:
            if self.store_error is None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._sink.abort())
            await self._offer(_Failure(exc))
            raise
        if held is not None:
            await self._offer(held)  # verified: the client may complete now
        try:
            if self.store_error is None:
                await self._sink.commit()
        finally:
            await self._offer(_END)
        if self.store_error is not None:
            raise self.store_error
