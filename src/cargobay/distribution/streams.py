"""Streaming blob bodies on `/v2/`: from a store without local files (honouring a Range), and
from the pull-through cache while the blob arrives from its upstream; both send the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from cargobay.distribution.call import Call
from cargobay.errors import BlobUnknown, DomainError, UpstreamFailed
from cargobay.pullthrough.cache import BlobFill
from cargobay.registry.repositories import Repository

log = logging.getLogger("cargobay.distribution")


async def stream_fill(call: Call, fill: BlobFill, headers: dict[str, str]) -> web.StreamResponse:
    """Stream a blob as it arrives from the upstream (and is stored, by the fill). A Range is
    not honoured on this first pull: the whole blob is sent, as a 200."""
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
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = fill.size

    def failed(exc: Exception) -> None:
        log.warning("upstream fetch failed mid-stream: %r", exc)

    # Closing the stream detaches the client; the fill goes on and stores the blob.
    return await _send(call.request, response, first, chunks, failed)


async def stream_blob(
    call: Call,
    repo: Repository,
    digest: str,
    size: int,
    headers: dict[str, str],
    wanted: tuple[int, int] | None,
) -> web.StreamResponse:
    """Stream a blob from the store: no local file, decrypted (a repository under a KMS key),
    or a Range that FileResponse must not see."""
    start, end = wanted or (0, size)
    chunks = call.services.blobs.read(repo, digest, start, end, size)
    try:
        # Fetch the first block before answering, so missing bytes are still an OCI error.
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise BlobUnknown("blob data is missing from storage", detail={"digest": digest}) from None
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start

    def failed(exc: Exception) -> None:
        log.error("storage failed while streaming %s", digest, exc_info=exc)

    return await _send(call.request, response, first, chunks, failed)


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
