"""Streaming blob bodies on `/v2/`: from a store without local files (honouring a Range), and
from the pull-through cache while the blob arrives from its upstream."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from cargobay.distribution.call import Call
from cargobay.errors import BlobUnknown, DomainError, UpstreamFailed
from cargobay.pullthrough.cache import BlobFill

log = logging.getLogger("cargobay.distribution")


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The [start, end) a single-range `Range` header asks for, None for the whole blob;
    ValueError when it cannot be satisfied (the same rules as aiohttp's FileResponse)."""
    if "Range" not in request.headers:
        return None
    wanted = request.http_range
    start, end = wanted.start, wanted.stop
    if start is None:
        return None
    if start < 0 and end is None:
        start, end = max(size + start, 0), size
    else:
        end = size if end is None else min(end, size)
    if start >= size:
        raise ValueError("range starts past the end")
    return start, end


async def stream_blob(
    call: Call, digest: str, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """Stream a blob from a store without local files, honouring a Range as FileResponse does."""
    request = call.request
    try:
        wanted = byte_range(request, size)
    except ValueError:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = wanted or (0, size)
    chunks = call.services.store.read(digest, start, end)
    try:
        # Fetch the first block before answering, so missing bytes are still an OCI error.
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise BlobUnknown("blob data is missing from storage", detail={"digest": digest}) from None
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    await response.prepare(request)
    try:
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        # Too late for an error body: cut the connection so the client sees a short read.
        log.exception("storage failed while streaming %s", digest)
        raise ConnectionResetError("storage failed mid-stream") from None
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


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
    try:
        await response.prepare(call.request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
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
