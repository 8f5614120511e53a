"""`/v2/<name>/blobs/<digest>` (GET, HEAD, DELETE): a blob served from a local file
(sendfile), a presigned object-store URL, or streamed (decrypted, or a Range FileResponse must
not see), with RFC 9110 Range handling; a blob not stored yet is filled through the
pull-through cache."""

from __future__ import annotations

import functools
import re

from aiohttp import web

from cargobay.distribution.call import BLOCK_BYTES, Call
from cargobay.distribution.sendfile import BlobFileResponse
from cargobay.distribution.streams import stream_blob, stream_fill
from cargobay.errors import BlobUnknown, Unsupported
from cargobay.oci.digest import parse_digest

# Lifetime of the presigned object-store URL a blob GET redirects to.
REDIRECT_SECONDS = 20 * 60

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_MAX_RANGE_DIGITS = 19


async def blob(call: Call, digest: str) -> web.StreamResponse:
    method = call.request.method
    services = call.services
    parse_digest(digest)
    if method in ("GET", "HEAD"):
        repo = await call.repo()
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
        }
        try:
            info = await services.blobs.stat_for_pull(repo, digest)
        except BlobUnknown:
            # Not stored yet: the pull-through cache fetches it (BlobUnknown again when the
            # repository is no cache, or none of its images references the blob).
            if method == "HEAD":
                size = await services.pullthrough.blob_size(repo, digest)
                return web.Response(headers={**headers, "Content-Length": str(size)})
            fill = await services.pullthrough.open_blob(
                call.principal, repo, digest, call.context()
            )
            if fill is not None:
                try:
                    wanted = _byte_range(call.request, fill.size)
                except ValueError:
                    fill.tee.detach()  # the fill goes on without a reader and stores the blob
                    return web.Response(
                        status=416, headers={**headers, "Content-Range": f"bytes */{fill.size}"}
                    )
                call.count_transfer(repo.id, fill.size if wanted is None else wanted[1] - wanted[0])
                return await stream_fill(call, fill, headers, wanted)
            info = await services.blobs.stat(repo, digest)
        if info.archived:
            # Stored, but refused (404) while only archived images use it, until one is
            # restored (a blob the pull-through cache just filled is never archived).
            services.archive.refuse_blob(repo, digest)
        call.count_transfer(repo.id, info.size)
        if method == "HEAD":
            headers["Content-Length"] = str(info.size)
            return web.Response(headers=headers)
        try:
            wanted = _byte_range(call.request, info.size)
        except ValueError:
            return web.Response(
                status=416, headers={**headers, "Content-Range": f"bytes */{info.size}"}
            )
        if services.settings.redirect_blob_downloads and services.blobs.serves_plaintext(repo):
            url = await services.store.download_url(digest, REDIRECT_SECONDS)
            if url is not None:
                # The object store serves the bytes (and any Range) from a presigned URL. A
                # Range is checked here first, so a 416 is the same on every store, and the
                # meter counts what the store will send: the range, not the whole blob.
                if wanted is not None:
                    call.count_transfer(repo.id, wanted[1] - wanted[0])
                return web.Response(
                    status=307, headers={"Location": url, "Docker-Content-Digest": digest}
                )
        path = services.blobs.local_path(repo, digest)
        # FileResponse applies aiohttp's own Range rules (416 for other units, several ranges
        # or positions too long for int()); such a Range is streamed by us instead.
        raw_range = call.request.headers.get("Range")
        own_range = raw_range is not None and (wanted is None or len(raw_range) > 48)
        if path is not None and not own_range:
            if not path.exists():
                raise BlobUnknown("blob data is missing from storage", detail={"digest": digest})
            # sendfile(2) when the transport allows it; Range and 416 handled by aiohttp.
            start, end = wanted or (0, info.size)
            read_ahead = functools.partial(services.blobs.read_ahead, path, start, end)
            return BlobFileResponse(path, read_ahead, chunk_size=BLOCK_BYTES, headers=headers)
        return await stream_blob(call, repo, digest, info.size, headers, wanted)
    if method == "DELETE":
        await services.blobs.unlink(await call.repo(), digest)
        return web.Response(status=202, headers={"Docker-Content-Digest": digest})
    raise Unsupported(f"{method} is not supported on blobs")


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The [start, end) a `Range` header asks for, or None for the whole blob; ValueError
    when it cannot be satisfied (416).

    RFC 9110 section 14: a range unit other than `bytes`, several ranges, or a malformed or
    inverted range-spec may be ignored, and are (a full 200); `bytes=-0` and a first byte past
    the end cannot be satisfied.
    """
    raw = request.headers.get("Range")
    match = _RANGE.fullmatch(raw.strip()) if raw is not None else None
    if match is None:
        return None
    first, last = match.groups()
    end = _position(last) if last else None
    if not first:
        if end is None:
            return None
        if end == 0 or size == 0:
            raise ValueError("an empty suffix range cannot be satisfied")
        return max(size - end, 0), size
    start = _position(first)
    if end is not None and end < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    return start, size if end is None else min(end + 1, size)


def _position(digits: str) -> int:
    """A byte position; past int64 it is only "beyond any blob", so no unbounded int()."""
    return int(digits) if len(digits) <= _MAX_RANGE_DIGITS else 2**63
