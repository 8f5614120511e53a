"""`/v2/<name>/blobs/<digest>` (GET, HEAD, DELETE): a blob served from a local file
(sendfile), a presigned object-store URL, or streamed (no local file, or decrypted), with RFC
9110 Range handling and conditional requests on the digest as ETag; a blob not stored yet is
filled through the pull-through cache."""

from __future__ import annotations

import functools
import os
import re

from aiohttp import web

from cargobay.distribution.call import Call
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
                    wanted = _byte_range(call.request, fill.size, headers["ETag"])
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
        answered = _preconditions(call.request, headers)
        if answered is not None:
            return answered
        call.count_transfer(repo.id, info.size)
        if method == "HEAD":
            headers["Content-Length"] = str(info.size)
            return web.Response(headers=headers)
        try:
            wanted = _byte_range(call.request, info.size, headers["ETag"])
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
        if path is not None:
            # sendfile(2) of the range; the file opened here, so a blob gone from storage
            # is an OCI error, and checked to hold the bytes the range names.
            start, end = wanted or (0, info.size)
            try:
                file = open(path, "rb", buffering=0)  # noqa: SIM115 (the response closes it)
            except FileNotFoundError:
                raise BlobUnknown(
                    "blob data is missing from storage", detail={"digest": digest}
                ) from None
            if os.fstat(file.fileno()).st_size < end:
                file.close()
                raise BlobUnknown("blob data is missing from storage", detail={"digest": digest})
            if wanted is not None:
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
            read_ahead = functools.partial(services.blobs.read_ahead, path, start, end)
            return BlobFileResponse(
                file,
                start,
                end - start,
                read_ahead,
                status=200 if wanted is None else 206,
                headers=headers,
            )
        return await stream_blob(call, repo, digest, info.size, headers, wanted)
    if method == "DELETE":
        await services.blobs.unlink(await call.repo(), digest)
        return web.Response(status=202, headers={"Docker-Content-Digest": digest})
    raise Unsupported(f"{method} is not supported on blobs")


def _preconditions(request: web.Request, headers: dict[str, str]) -> web.Response | None:
    """RFC 9110 section 13 with the blob's one strong validator, its digest (the ETag): 412
    for an If-Match it fails, 304 for an If-None-Match it matches; None to answer normally.
    (No Last-Modified is sent, so the date conditions do not apply; an If-Range that is not
    the ETag voids the Range, in `_byte_range`.)"""
    etag = headers["ETag"]
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _lists(if_match, etag, weak=False):
        return web.Response(status=412, headers={"ETag": etag})
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _lists(if_none_match, etag, weak=True):
        return web.Response(
            status=304,
            headers={"ETag": etag, "Docker-Content-Digest": headers["Docker-Content-Digest"]},
        )
    return None


def _lists(field: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match / If-None-Match field value names `etag` (or is `*`)."""
    for tag in field.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _byte_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """The [start, end) a `Range` header asks for, or None for the whole blob; ValueError
    when it cannot be satisfied (416).

    RFC 9110 section 14: a range unit other than `bytes`, several ranges, or a malformed or
    inverted range-spec may be ignored, and are (a full 200); `bytes=-0` and a first byte past
    the end cannot be satisfied. An If-Range other than the blob's ETag (a date, since no
    Last-Modified is sent, or another tag) voids the Range (13.1.5).
    """
    raw = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if raw is not None and if_range is not None and if_range.strip() != etag:
        return None  # the representation the client holds may have changed: send it all
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
