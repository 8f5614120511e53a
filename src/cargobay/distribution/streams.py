"""Streaming blob bodies on `/v2/`: from a store without local files (honouring a Range), and
from the pull-through cache while the blob arrives from its upstream (a Range too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from cargobay.distribution.call import Call
from cargobay.errors import DomainError, UpstreamFailed
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
    if wanted is None:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = fill.size
    else:
        response = web.StreamResponse(
            status=206,
            headers={**headers, "Content-Range": f"bytes {wanted[0]}-{wanted[1] - 1}/{fill.size}"},
        )
        response.content_length = wanted[1] - wanted[0]
    try:
        await response.prepare(call.request)
        if wanted is None:
            await _write_all(response, first, chunks)
        else:
            await _write_range(response, first, chunks, *wanted)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        # Too late for an error body: cut the connection so the client sees a short read.
        log.warning("upstream fetch failed mid-stream: %r", exc)
        raise ConnectionResetError("upstream fetch failed mid-stream") from None
    finally:
        await chunks.aclose()  # detaches the client; the fill goes on and stores the blob
    await response.write_eof()
    return response


async def _write_all(
    response: web.StreamResponse, first: bytes, chunks: AsyncIterator[bytes]
) -> None:
    if first:
        await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)


async def _write_range(
    response: web.StreamResponse,
    first: bytes,
    chunks: AsyncIterator[bytes],
    start: int,
    end: int,
) -> None:
    """Write the bytes [start, end) of the stream. The range's last piece is held back until
    the whole blob has arrived and its digest was verified (the stream ends cleanly only
    then), so a client never completes a range of bad bytes; one chunk is held at most."""
    offset = 0
    held = b""

    async def pieces() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    async for chunk in pieces():
        lo, hi = max(start - offset, 0), min(end - offset, len(chunk))
        offset += len(chunk)
        if lo >= hi:
            continue
        if held:
            await response.write(held)
        held = chunk[lo:hi]
    if held:
        await response.write(held)
