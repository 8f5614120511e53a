"""Streaming blob bodies on `/v2/`: from a store without local files (honouring a Range), and
from the pull-through cache while the blob arrives from its upstream."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from cargobay.distribution.call import Call
from cargobay.errors import DomainError, UpstreamFailed
from cargobay.pullthrough.cache import BlobFill

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
