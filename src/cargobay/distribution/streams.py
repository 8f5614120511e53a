"""Streaming blob bodies on `/v2/`: from a store without local files (honouring a Range), and
from the pull-through cache while the blob arrives from its upstream (a Range too); both send
the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from cargobay.distribution import sendthread
from cargobay.distribution.call import Call
from cargobay.errors import BlobUnknown, DomainError, UpstreamFailed
from cargobay.registry.repositories import Repository

if TYPE_CHECKING:
    from cargobay.pullthrough.blobs import BlobFill

log = logging.getLogger("cargobay.distribution")


async def stream_fill(
    call: Call,
    fill: BlobFill,
    headers: dict[str, str],
    wanted: tuple[int, int] | None = None,
) -> web.StreamResponse:
    """Stream a blob as it arrives from the upstream (and is stored, by the fill), or the
    [start, end) range `wanted` of it as a 206. The fill always fetches the whole blob; the
    bytes outside the range are read past, never kept."""
    chunks = fill.tee.stream()
    try:
        # The first chunk before answering, so an upstream that fails at once is an OCI error.
        first = await anext(chunks, b"")
    except DomainError:
        await chunks.aclose()
        raise
    except Exception as exc:
        await chunks.aclose()
        raise UpstreamFailed(
            f"fetching {headers['Docker-Content-Digest']} from the upstream failed: {exc}",
            detail={"digest": headers["Docker-Content-Digest"]},
        ) from None
    body: AsyncGenerator[bytes, None] = chunks
    if wanted is None:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = fill.size
    else:
        start, end = wanted
        response = web.StreamResponse(
            status=206, headers={**headers, "Content-Range": f"bytes {start}-{end - 1}/{fill.size}"}
        )
        response.content_length = end - start
        first, body = b"", _clip(first, chunks, start, end)

    def failed(exc: Exception) -> None:
        log.warning("upstream fetch failed mid-stream: %r", exc)

    # Closing the stream detaches the client; the fill goes on and stores the blob.
    return await _send(call.request, response, first, body, failed)


async def stream_blob(
    call: Call,
    repo: Repository,
    digest: str,
    size: int,
    headers: dict[str, str],
    wanted: tuple[int, int] | None,
) -> web.StreamResponse:
    """Stream a blob from the store: no local file, or decrypted (a repository under a KMS
    key)."""
    start, end = wanted or (0, size)
    if sendthread.usable(call.request):  # decrypted by a thread, sent to the socket from it
        batches = await _local_plaintext(call, repo, digest, start, end, size)
        if batches is not None:
            response = _blob_response(headers, wanted, start, end, size)
            return await sendthread.send(call.request, response, batches)
    chunks = call.services.blobs.read(repo, digest, start, end, size)
    try:
        # Fetch the first block before answering, so missing bytes are still an OCI error.
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise BlobUnknown("blob data is missing from storage", detail={"digest": digest}) from None
    response = _blob_response(headers, wanted, start, end, size)

    def failed(exc: Exception) -> None:
        log.error("storage failed while streaming %s", digest, exc_info=exc)

    return await _send(call.request, response, first, chunks, failed)


async def _local_plaintext(
    call: Call, repo: Repository, digest: str, start: int, end: int, size: int
) -> Iterator[memoryview] | None:
    try:
        return await call.services.blobs.local_plaintext(repo, digest, start, end, size)
    except FileNotFoundError:
        raise BlobUnknown("blob data is missing from storage", detail={"digest": digest}) from None


def _blob_response(
    headers: dict[str, str], wanted: tuple[int, int] | None, start: int, end: int, size: int
) -> web.StreamResponse:
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    first: bytes,
    chunks: AsyncGenerator[bytes, None],
    failed: Callable[[Exception], None],
) -> web.StreamResponse:
    """Send the headers, `first` and the rest of `chunks`. Past the headers it is too late
    for an error body: a failure (`failed` logs it) cuts the connection, so the client sees
    a short read. The stream is closed however it ends."""
    try:
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        failed(exc)
        raise ConnectionResetError("the blob's source failed mid-stream") from None
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


async def _clip(
    first: bytes, chunks: AsyncGenerator[bytes, None], start: int, end: int
) -> AsyncGenerator[bytes, None]:
    """The bytes [start, end) of `first` and `chunks`. The range's last piece is held back
    until the whole blob has arrived and its digest was verified (the stream ends cleanly
    only then), so a client never completes a range of bad bytes; one chunk is held at most."""
    offset = 0
    held = b""

    async def pieces() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    try:
        async for chunk in pieces():
            lo, hi = max(start - offset, 0), min(end - offset, len(chunk))
            offset += len(chunk)
            if lo >= hi:
                continue
            if held:
                yield held
            held = chunk[lo:hi]
        if held:
            yield held
    finally:
        await chunks.aclose()
