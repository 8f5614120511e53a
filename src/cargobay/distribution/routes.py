"""`/v2/` dispatch and handlers: parse the request, call one registry service, and shape the
response as the distribution-spec says. No business rules live here, and no authorization
either: the dispatcher checks the route's entry in `iam.permissions.V2_ROUTES` before any
handler runs (uploads live in `distribution.uploads`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from cargobay.audit.hooks import v2_event
from cargobay.distribution.audit import audit_v2
from cargobay.distribution.auth import authenticate
from cargobay.distribution.call import BLOCK_BYTES, SERVICES, USAGE, Call, read_at_most
from cargobay.distribution.errors import API_VERSION_HEADER, error_response, internal_error
from cargobay.distribution.streams import stream_fill
from cargobay.distribution.uploads import start_upload, upload, upload_headers
from cargobay.errors import (
    BlobUnknown,
    DomainError,
    ImageNotFound,
    PaginationInvalid,
    RangeInvalid,
    RepositoryNotFound,
    SizeInvalid,
    TransferCodingUnsupported,
    Unsupported,
)
from cargobay.iam import permissions
from cargobay.iam.authz import Resource
from cargobay.oci.digest import is_digest, parse_digest
from cargobay.oci.manifest import OCI_INDEX, accepts
from cargobay.oci.names import validate_name, validate_tag
from cargobay.registry.deletes import ImageRef
from cargobay.registry.repositories import Repository

__all__ = ["SERVICES", "USAGE", "add_routes", "dispatch"]

log = logging.getLogger("cargobay.distribution")
# Lifetime of the presigned object-store URL a blob GET redirects to.
REDIRECT_SECONDS = 20 * 60
MAX_PAGE = 10_000
MAX_PAGE_DIGITS = 18  # `n` longer than an int64 is refused as invalid

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_MAX_RANGE_DIGITS = 19
# Matched whole and with DOTALL, so a decoded control character (`%0A`) in a name, tag or digest
# reaches the validators and comes back as NAME_INVALID / TAG_INVALID / DIGEST_INVALID.
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?P<name>.+)/blobs/uploads/?", re.S), "uploads"),
    (re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)", re.S), "upload"),
    (re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)", re.S), "blob"),
    (re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)", re.S), "manifest"),
    (re.compile(r"(?P<name>.+)/tags/list", re.S), "tags"),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)", re.S), "referrers"),
]


def _page_args(request: web.Request) -> tuple[int | None, str | None]:
    raw = request.query.get("n")
    limit = None
    if raw is not None and raw != "":
        # ASCII digits only (`"²".isdigit()` is true) and short enough for int() (Python
        # refuses more than 4300 digits); larger values mean "as many as allowed" anyway.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_PAGE_DIGITS):
            raise PaginationInvalid(detail={"n": raw})
        limit = min(int(raw), MAX_PAGE)
    return limit, request.query.get("last") or None


def _page(items: list[str], limit: int | None, path: str) -> tuple[list[str], dict[str, str]]:
    """Trim a query fetched with limit+1 rows and add the `Link` to the next page."""
    headers: dict[str, str] = {}
    if limit is not None and len(items) > limit:
        items = items[:limit]
        if items:
            headers["Link"] = f'<{path}?n={limit}&last={quote(items[-1], safe="")}>; rel="next"'
    return items, headers


def _json(
    data: object,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    body = json.dumps(data).encode()
    return web.Response(
        status=status, body=body, headers={**(headers or {}), "Content-Type": content_type}
    )


# -- handlers ------------------------------------------------------------------------------


async def base(call: Call) -> web.StreamResponse:
    return _json({})


async def catalog(call: Call) -> web.StreamResponse:
    limit, last = _page_args(call.request)
    names = await call.services.repositories.list_names(
        call.registry_id, last, None if limit is None else limit + 1
    )
    names, headers = _page(names, limit, "/v2/_catalog")
    return _json({"repositories": names}, headers=headers)


async def tags(call: Call) -> web.StreamResponse:
    repo = await call.repo()
    limit, last = _page_args(call.request)
    names = await call.services.manifests.list_tags(
        repo, last, None if limit is None else limit + 1
    )
    names, headers = _page(names, limit, f"/v2/{call.name}/tags/list")
    return _json({"name": call.name, "tags": names}, headers=headers)


async def manifest(call: Call, reference: str) -> web.StreamResponse:
    method = call.request.method
    services = call.services
    if method in ("GET", "HEAD"):
        try:
            # Through the pull-through cache: a repository under a rule is filled from its
            # upstream; any other is read from the store.
            found = await services.pullthrough.get_manifest(
                call.principal, call.registry_id, call.name, reference, call.context()
            )
        except ImageNotFound:
            await call.repo()  # NAME_UNKNOWN when the repository itself is missing
            raise
        # Clients such as skopeo send one Accept header line per media type: read them all.
        accept = ", ".join(call.request.headers.getall("Accept", [])) or None
        if not accepts(accept, found.media_type):
            raise ImageNotFound(
                f"manifest is {found.media_type}, which the Accept header does not admit",
                detail={"mediaType": found.media_type},
            )
        headers = {
            "Docker-Content-Digest": found.digest,
            "Content-Type": found.media_type,
            "ETag": f'"{found.digest}"',
        }
        call.count_transfer(found.repository_id, len(found.content))
        return web.Response(body=found.content, headers=headers)
    if method == "PUT":
        digest, tag = _split_reference(reference)
        # Read one byte past the limit, so the service (which owns the limit) sees the excess.
        payload = await read_at_most(call.request, services.manifests.max_manifest_bytes + 1)
        repo = await call.push_target()
        content_type = call.request.content_type if "Content-Type" in call.request.headers else None
        result = await services.manifests.put_image(
            repo, payload, content_type, digest, tag, origin=call.origin
        )
        headers = {
            "Location": f"/v2/{call.name}/manifests/{result.digest}",
            "Docker-Content-Digest": result.digest,
        }
        if result.subject:
            headers["OCI-Subject"] = result.subject
        return web.Response(status=201, headers=headers)
    if method == "DELETE":
        repo = await call.repo()
        if is_digest(reference):
            await services.deletes.delete_image(repo, ImageRef(digest=reference))
        else:
            await services.deletes.untag(repo, reference)
        return web.Response(status=202)
    raise Unsupported(f"{method} is not supported on manifests")


def _split_reference(reference: str) -> tuple[str | None, str | None]:
    """(digest, tag) of a manifest PUT's reference, checked before anything is created."""
    if is_digest(reference):
        parse_digest(reference)
        return reference, None
    return None, validate_tag(reference)


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
            info = await services.blobs.stat(repo, digest)
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
            return web.FileResponse(path, chunk_size=BLOCK_BYTES, headers=headers)
        return await _stream_blob(call, repo, digest, info.size, headers, wanted)
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


async def _stream_blob(
    call: Call,
    repo: Repository,
    digest: str,
    size: int,
    headers: dict[str, str],
    wanted: tuple[int, int] | None,
) -> web.StreamResponse:
    """Stream a blob from the store: no local file, decrypted (a repository under a KMS key),
    or a Range that FileResponse must not see."""
    request = call.request
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


async def referrers(call: Call, digest: str) -> web.StreamResponse:
    parse_digest(digest)
    repo = await call.services.repositories.find(call.registry_id, call.name)
    artifact_type = call.request.query.get("artifactType") or None
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    if repo is None:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        return web.Response(body=body.encode(), headers={**headers, "Content-Type": OCI_INDEX})
    body_bytes = await call.services.manifests.referrers(repo, digest, artifact_type)
    return web.Response(body=body_bytes, headers={**headers, "Content-Type": OCI_INDEX})


# -- dispatch ------------------------------------------------------------------------------

Handler = Callable[..., Awaitable[web.StreamResponse]]
_HANDLERS: dict[str, Handler] = {
    "base": base,
    "catalog": catalog,
    "uploads": start_upload,
    "upload": upload,
    "blob": blob,
    "manifest": manifest,
    "tags": tags,
    "referrers": referrers,
}


def _resolve(path: str) -> tuple[str, dict[str, str]]:
    if path in ("", "/"):
        return "base", {}
    if path.rstrip("/") == "_catalog":
        return "catalog", {}
    for pattern, kind in _ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return kind, match.groupdict()
    raise RepositoryNotFound("no such endpoint", detail={"path": path})


async def _authorize(call: Call, kind: str) -> None:
    """The route's entry in the authorization table, checked before its handler runs; a
    route or method without one is not dispatched."""
    permission = permissions.V2_ROUTES.get((kind, call.request.method))
    if permission is None:
        raise Unsupported(f"{call.request.method} is not supported on this endpoint")
    if call.replication:
        permission = permissions.V2_REPLICATION_ROUTES.get((kind, call.request.method), permission)
    if permission.resource == permissions.NONE:
        return
    name = call.name if permission.resource == permissions.REPOSITORY else None
    resource = Resource(call.registry_id, call.resource.region, name)
    for action in permission.actions:
        await call.services.authorizer.require(call.principal, action, resource, call.context())


def _error_headers(call: Call | None, params: dict[str, str], exc: DomainError) -> dict[str, str]:
    """Where a refused chunk leaves the upload, so the client can resume from there."""
    if isinstance(exc, RangeInvalid | SizeInvalid) and exc.size is not None and call:
        if "upload_id" in params:
            return upload_headers(call.name, params["upload_id"], exc.size)
        return {"Range": f"0-{max(exc.size - 1, 0)}"}
    return {}


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    call: Call | None = None
    params: dict[str, str] = {}
    kind = ""
    error: str | None = None
    message: str | None = None
    try:
        _check_transfer_coding(request)
        principal = await authenticate(request, services)
        kind, params = _resolve(request.match_info.get("tail", ""))
        name = params.pop("name", "")
        call = Call(request, services, principal, name)
        if kind not in ("base", "catalog"):
            validate_name(name)
        await _authorize(call, kind)
        response = await _HANDLERS[kind](call, **params)
    except DomainError as exc:
        headers = _error_headers(call, params, exc)
        response = error_response(request, exc, services.settings.realm, headers)
        error, message = type(exc).__name__, exc.message
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = internal_error(request)
        error, message = "InternalError", "internal error"
    if call is not None:
        audited = v2_event(kind, request.method, request.query)
        if audited is not None:
            await audit_v2(call, audited, params, response, error, message)
    if error is None:
        response.headers.update(API_VERSION_HEADER)
    return response


def _check_transfer_coding(request: web.Request) -> None:
    """Only `chunked` is decoded (by aiohttp); any other coding would be stored encoded."""
    codings = request.headers.get("Transfer-Encoding")
    if codings and any(c.strip().lower() != "chunked" for c in codings.split(",")):
        raise TransferCodingUnsupported(
            f"Transfer-Encoding {codings!r} is not implemented; send the body chunked or whole"
        )


def add_routes(app: web.Application) -> None:
    # `[\s\S]`, not `.`: a path holding a newline still gets an OCI error, not a bare 404.
    app.router.add_route("*", r"/v2/{tail:[\s\S]*}", dispatch)
    app.router.add_route("*", "/v2", dispatch)
