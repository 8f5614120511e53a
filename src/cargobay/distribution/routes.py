"""`/v2/` dispatch: resolve the route, authenticate, check the route's entry in
`iam.permissions.V2_ROUTES` before any handler runs, call the handler, render a domain error
as OCI's, and audit the writes. The handlers parse the request, call one registry service and
shape the response as the distribution-spec says; no business rules live in them, and no
authorization either: blobs in `distribution.blobs`, manifests and referrers in
`distribution.manifests`, uploads in `distribution.uploads`, listings in
`distribution.listing`."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from cargobay.audit.hooks import v2_event
from cargobay.distribution.audit import audit_v2
from cargobay.distribution.auth import authenticate
from cargobay.distribution.blobs import blob
from cargobay.distribution.call import SERVICES, USAGE, Call
from cargobay.distribution.errors import API_VERSION_HEADER, error_response, internal_error
from cargobay.distribution.listing import base, catalog, tags
from cargobay.distribution.manifests import look_up, manifest, referrers
from cargobay.distribution.uploads import start_upload, upload, upload_headers
from cargobay.errors import (
    DomainError,
    RangeInvalid,
    RepositoryNotFound,
    SizeInvalid,
    TransferCodingUnsupported,
    Unsupported,
)
from cargobay.iam import permissions
from cargobay.iam.authz import Resource
from cargobay.oci.names import validate_name

__all__ = ["SERVICES", "USAGE", "add_routes", "dispatch"]

log = logging.getLogger("cargobay.distribution")
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
    loaded = call.policies
    for action in permission.actions:
        await call.services.authorizer.require(
            call.principal, action, resource, call.context(), loaded
        )


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
        if kind == "manifest":
            await look_up(call, params["reference"])
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
