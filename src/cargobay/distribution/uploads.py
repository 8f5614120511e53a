"""`/v2/` blob uploads: start (or mount, or upload whole), append chunks, complete, cancel."""

from __future__ import annotations

import re

from aiohttp import web

from cargobay.distribution.call import Call, request_blocks
from cargobay.errors import RangeInvalid, Unsupported
from cargobay.iam import permissions
from cargobay.iam.authz import Resource
from cargobay.oci.digest import parse_digest
from cargobay.oci.names import validate_name

# At most 19 digits (int64), so int() never meets Python's 4,300-digit limit.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]+|\*))?")


def upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    """Where the upload lives and how much it holds (`Range` as Distribution reports it:
    inclusive end, `0-0` when empty)."""
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _created(name: str, digest: str) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
    )


async def start_upload(call: Call) -> web.StreamResponse:
    services = call.services
    query = call.request.query
    repo = await call.push_target()
    mount, source = query.get("mount"), query.get("from")
    if mount:
        parse_digest(mount)
        if source and source != call.name:
            validate_name(source)
            source_repo = await services.repositories.find(call.registry_id, source)
            # A second check the table cannot make: pulling from the source repository.
            allowed = source_repo is not None and await services.authorizer.allowed(
                call.principal,
                permissions.PULL_BLOB,
                Resource(call.registry_id, call.resource.region, source),
                call.context(),
            )
            if (
                allowed
                and source_repo is not None
                and await services.blobs.mount(source_repo, repo, mount)
            ):
                return _created(call.name, mount)
        # Not mountable: fall back to a regular upload session, as the spec allows.
    elif digest := query.get("digest"):
        # A monolithic upload is also the part and the completion.
        await call.require(permissions.UPLOAD_PART)
        await call.require(permissions.COMPLETE_UPLOAD)
        info = await services.uploads.upload_whole(repo, digest, request_blocks(call.request))
        return _created(call.name, info.digest)
    upload = await services.uploads.start(repo)
    return web.Response(status=202, headers=upload_headers(call.name, upload.id, upload.size))


async def upload(call: Call, upload_id: str) -> web.StreamResponse:
    method = call.request.method
    uploads = call.services.uploads
    repo = await call.repo()
    if method == "GET":
        state = await uploads.get(repo, upload_id)
        return web.Response(status=204, headers=upload_headers(call.name, state.id, state.size))
    if method == "PATCH":
        start = end = None
        if content_range := call.request.headers.get("Content-Range"):
            match = _CONTENT_RANGE.fullmatch(content_range.strip())
            if not match or int(match.group(2)) < int(match.group(1)):
                state = await uploads.get(repo, upload_id)
                raise RangeInvalid(f"invalid Content-Range {content_range!r}", size=state.size)
            start, end = int(match.group(1)), int(match.group(2))
        state = await uploads.append(
            repo, upload_id, request_blocks(call.request), start=start, end=end
        )
        return web.Response(status=202, headers=upload_headers(call.name, state.id, state.size))
    if method == "PUT":
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
        await uploads.cancel(repo, upload_id)
        return web.Response(status=204)
    raise Unsupported(f"{method} is not supported on uploads")
