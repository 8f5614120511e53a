"""`/v2/` request handlers: parse the request, authorize it, call one registry service, and
shape the response as the distribution-spec says. No business rules live here."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from cargobay.distribution.auth import authenticate, registry_for
from cargobay.distribution.errors import API_VERSION_HEADER, error_response
from cargobay.iam import authz
from cargobay.iam.principal import Principal
from cargobay.oci.digest import parse_digest
from cargobay.oci.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    PaginationInvalid,
    PayloadTooLarge,
    RangeInvalid,
    RegistryError,
    TransferCodingUnsupported,
    Unsupported,
)
from cargobay.oci.manifest import MAX_MANIFEST_BYTES, OCI_INDEX, accepts
from cargobay.oci.names import validate_name
from cargobay.registry.repositories import Repository
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

log = logging.getLogger("cargobay.distribution")
SERVICES = web.AppKey("services", Services)
# Request key: (repository id, principal ARN, full size) of a metered GET.
USAGE = "cargobay.usage"
BLOCK_BYTES = 1024 * 1024
# Lifetime of the presigned object-store URL a blob GET redirects to.
REDIRECT_SECONDS = 20 * 60
MAX_PAGE = 10_000
MAX_PAGE_DIGITS = 18  # `n` longer than an int64 is refused as invalid

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_MAX_RANGE_DIGITS = 19
# At most 19 digits (int64), so int() never meets Python's 4,300-digit limit.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]+|\*))?")
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


class Call:
    """One authenticated `/v2/` request and the repository it names."""

    def __init__(
        self, request: web.Request, services: Services, principal: Principal, name: str
    ) -> None:
        self.request = request
        self.services = services
        self.principal = principal
        self.name = name
        settings = services.settings
        self.registry_id = registry_for(request, principal.account_id)
        self.resource = authz.Resource(self.registry_id, settings.region, name or None)

    async def require(self, action: str, name: str | None = None) -> None:
        resource = (
            self.resource
            if name is None
            else authz.Resource(self.registry_id, self.resource.region, name)
        )
        await self.services.authorizer.require(
            self.principal, action, resource, _context(self.request)
        )

    def count_transfer(self, repository_id: int, size: int) -> None:
        """Meter a GET's bytes out; the app counts what was actually sent (ranges, 307s)."""
        if self.request.method == "GET":
            self.request[USAGE] = (repository_id, self.principal.arn, size)

    async def repo(self) -> Repository:
        return await self.services.repositories.get(self.registry_id, self.name)

    async def repo_for_push(self) -> Repository:
        repos = self.services.repositories
        repo = await repos.find(self.registry_id, validate_name(self.name))
        if repo is not None:
            return repo
        if not await repos.create_on_push(self.registry_id, self.services.settings.create_on_push):
            raise NameUnknown(
                f"The repository with name '{self.name}' does not exist in the registry with "
                f"id '{self.registry_id}'",
                detail={"name": self.name},
            )
        await self.require(authz.CREATE_REPOSITORY)
        return (await repos.create(self.registry_id, self.name))[0]


def _context(request: web.Request) -> authz.RequestContext:
    return request_context(request, request.app[SERVICES].settings.trusted_proxies)


async def request_blocks(request: web.Request) -> AsyncIterator[list[bytes]]:
    """The request body in blocks of about 1 MiB, never the whole body at once."""
    block: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        block.append(chunk)
        size += len(chunk)
        if size >= BLOCK_BYTES:
            yield block
            block, size = [], 0
    if block:
        yield block


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
    await call.require(authz.DESCRIBE_REPOSITORIES)
    limit, last = _page_args(call.request)
    names = await call.services.repositories.list_names(
        call.registry_id, last, None if limit is None else limit + 1
    )
    names, headers = _page(names, limit, "/v2/_catalog")
    return _json({"repositories": names}, headers=headers)


async def tags(call: Call) -> web.StreamResponse:
    await call.require(authz.LIST_IMAGES)
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
        await call.require(authz.PULL_MANIFEST)
        validate_name(call.name)
        try:
            found = await services.manifests.get(call.registry_id, call.name, reference)
        except RegistryError:
            await call.repo()  # NAME_UNKNOWN when the repository itself is missing
            raise
        # Clients such as skopeo send one Accept header line per media type: read them all.
        accept = ", ".join(call.request.headers.getall("Accept", [])) or None
        if not accepts(accept, found.media_type):
            raise ManifestUnknown(
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
        await call.require(authz.PUT_IMAGE)
        declared = call.request.content_length
        if declared is not None and declared > MAX_MANIFEST_BYTES:
            raise PayloadTooLarge(
                f"manifest is {declared} bytes; the limit is {MAX_MANIFEST_BYTES}"
            )
        payload = await _read_limited(call.request, MAX_MANIFEST_BYTES)
        repo = await call.repo_for_push()
        result = await services.manifests.put(
            repo,
            reference,
            call.request.content_type if "Content-Type" in call.request.headers else None,
            payload,
        )
        headers = {
            "Location": f"/v2/{call.name}/manifests/{result.digest}",
            "Docker-Content-Digest": result.digest,
        }
        if result.subject:
            headers["OCI-Subject"] = result.subject
        return web.Response(status=201, headers=headers)
    if method == "DELETE":
        await call.require(authz.DELETE_IMAGE)
        await services.manifests.delete(await call.repo(), reference)
        return web.Response(status=202)
    raise Unsupported(f"{method} is not supported on manifests")


async def _read_limited(request: web.Request, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"manifest exceeds the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


async def blob(call: Call, digest: str) -> web.StreamResponse:
    method = call.request.method
    services = call.services
    parse_digest(digest)
    if method in ("GET", "HEAD"):
        await call.require(authz.PULL_BLOB if method == "GET" else authz.CHECK_BLOB)
        repo = await call.repo()
        info = await services.blobs.stat(repo, digest)
        call.count_transfer(repo.id, info.size)
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
        }
        if method == "HEAD":
            headers["Content-Length"] = str(info.size)
            return web.Response(headers=headers)
        try:
            wanted = _byte_range(call.request, info.size)
        except ValueError:
            return web.Response(
                status=416, headers={**headers, "Content-Range": f"bytes */{info.size}"}
            )
        if services.settings.redirect_blob_downloads:
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
        path = services.blobs.local_path(digest)
        # FileResponse applies aiohttp's own Range rules (416 for other units, several ranges
        # or positions too long for int()); such a Range is streamed by us instead.
        raw_range = call.request.headers.get("Range")
        own_range = raw_range is not None and (wanted is None or len(raw_range) > 48)
        if path is not None and not own_range:
            if not path.exists():
                raise BlobUnknown("blob data is missing from storage", detail={"digest": digest})
            # sendfile(2) when the transport allows it; Range and 416 handled by aiohttp.
            return web.FileResponse(path, chunk_size=BLOCK_BYTES, headers=headers)
        return await _stream_blob(call, digest, info.size, headers, wanted)
    if method == "DELETE":
        await call.require(authz.DELETE_IMAGE)
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
    call: Call, digest: str, size: int, headers: dict[str, str], wanted: tuple[int, int] | None
) -> web.StreamResponse:
    """Stream a blob from the store (no local file, or a Range FileResponse must not see)."""
    request = call.request
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


def _upload_headers(name: str, upload_id: str, range_header: str) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": range_header,
        "Docker-Upload-UUID": upload_id,
    }


def _created(name: str, digest: str) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
    )


async def start_upload(call: Call) -> web.StreamResponse:
    if call.request.method != "POST":
        raise Unsupported(f"{call.request.method} is not supported here")
    services = call.services
    query = call.request.query
    await call.require(authz.INITIATE_UPLOAD)
    repo = await call.repo_for_push()
    mount, source = query.get("mount"), query.get("from")
    if mount:
        parse_digest(mount)
        if source and source != call.name:
            validate_name(source)
            source_repo = await services.repositories.find(call.registry_id, source)
            allowed = source_repo is not None and await services.authorizer.allowed(
                call.principal,
                authz.PULL_BLOB,
                authz.Resource(call.registry_id, call.resource.region, source),
                _context(call.request),
            )
            if (
                allowed
                and source_repo is not None
                and await services.blobs.mount(source_repo, repo, mount)
            ):
                return _created(call.name, mount)
        # Not mountable: fall back to a regular upload session, as the spec allows.
    elif digest := query.get("digest"):
        await call.require(authz.UPLOAD_PART)
        await call.require(authz.COMPLETE_UPLOAD)
        info = await services.uploads.upload_whole(repo, digest, request_blocks(call.request))
        return _created(call.name, info.digest)
    upload = await services.uploads.start(repo)
    return web.Response(
        status=202, headers=_upload_headers(call.name, upload.id, upload.range_header)
    )


async def upload(call: Call, upload_id: str) -> web.StreamResponse:
    method = call.request.method
    uploads = call.services.uploads
    if method == "GET":
        await call.require(authz.UPLOAD_PART)
        state = await uploads.get(await call.repo(), upload_id)
        return web.Response(
            status=204, headers=_upload_headers(call.name, state.id, state.range_header)
        )
    if method == "PATCH":
        await call.require(authz.UPLOAD_PART)
        repo = await call.repo()
        start = end = None
        if content_range := call.request.headers.get("Content-Range"):
            match = _CONTENT_RANGE.fullmatch(content_range.strip())
            if not match or int(match.group(2)) < int(match.group(1)):
                state = await uploads.get(repo, upload_id)
                raise RangeInvalid(
                    f"invalid Content-Range {content_range!r}",
                    headers=_upload_headers(call.name, state.id, state.range_header),
                )
            start, end = int(match.group(1)), int(match.group(2))
        try:
            state = await uploads.append(
                repo, upload_id, request_blocks(call.request), start=start, end=end
            )
        except RangeInvalid as exc:
            exc.headers.update(_upload_headers(call.name, upload_id, exc.headers["Range"]))
            raise
        return web.Response(
            status=202, headers=_upload_headers(call.name, state.id, state.range_header)
        )
    if method == "PUT":
        await call.require(authz.COMPLETE_UPLOAD)
        repo = await call.repo()
        has_body = (
            bool(call.request.content_length)
            or call.request.headers.get("Transfer-Encoding", "").lower() == "chunked"
        )
        info = await uploads.complete(
            repo,
            upload_id,
            call.request.query.get("digest"),
            request_blocks(call.request) if has_body else None,
        )
        return _created(call.name, info.digest)
    if method == "DELETE":
        await call.require(authz.INITIATE_UPLOAD)
        await uploads.cancel(await call.repo(), upload_id)
        return web.Response(status=204)
    raise Unsupported(f"{method} is not supported on uploads")


async def referrers(call: Call, digest: str) -> web.StreamResponse:
    await call.require(authz.PULL_MANIFEST)
    parse_digest(digest)
    validate_name(call.name)
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
    "uploads": start_upload,
    "upload": upload,
    "blob": blob,
    "manifest": manifest,
    "tags": tags,
    "referrers": referrers,
}
_METHODS = {
    "uploads": {"POST"},
    "upload": {"GET", "PATCH", "PUT", "DELETE"},
    "blob": {"GET", "HEAD", "DELETE"},
    "manifest": {"GET", "HEAD", "PUT", "DELETE"},
    "tags": {"GET"},
    "referrers": {"GET"},
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
    raise NameUnknown("no such endpoint", detail={"path": path})


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        _check_transfer_coding(request)
        principal = await authenticate(request, services)
        kind, params = _resolve(request.match_info.get("tail", ""))
        name = params.pop("name", "")
        call = Call(request, services, principal, name)
        if kind == "base":
            response = await base(call)
        elif kind == "catalog":
            response = await catalog(call)
        else:
            if request.method not in _METHODS[kind]:
                raise Unsupported(f"{request.method} is not supported on this endpoint")
            validate_name(name)
            response = await _HANDLERS[kind](call, **params)
    except RegistryError as exc:
        return error_response(request, exc, services.settings.realm)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(
            request, RegistryError("internal server error"), services.settings.realm
        )
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
