"""Builds the web application: both front doors, health endpoints, and the services they use."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargobay import gctune, metrics
from cargobay.console.routes import add_console
from cargobay.distribution.auth import authenticate
from cargobay.distribution.errors import error_response
from cargobay.distribution.routes import SERVICES, USAGE, add_routes
from cargobay.errors import AccessDenied, Unauthenticated
from cargobay.metadata import roundtrips
from cargobay.registry.services import Services


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.db.check_schema()
        await services.store.ready()
    except Exception as exc:  # report, never raise: this is what load balancers poll
        return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
    return web.json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Usage metrics for an administrator (Basic auth, like /v2/)."""
    services = request.app[SERVICES]
    try:
        principal = await authenticate(request, services)
    except Unauthenticated as exc:
        return error_response(request, exc, services.settings.realm)
    if not principal.is_admin:
        return error_response(
            request, AccessDenied("metrics are for administrators"), services.settings.realm
        )
    # An account's administrator sees its own account; the deployment's sees every account.
    own = None if principal.account_id == services.settings.account_id else principal.account_id
    return await metrics.handler(request, services, own)


ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
# The ECR door's handler and the IAM door's module, once the first call loaded them (an import
# statement per call cost about 7,000 instructions each, even of a module already loaded).
_AWS_DOORS: tuple[Any, Any] | None = None


def _load_aws_doors() -> tuple[Any, Any]:
    global _AWS_DOORS
    from cargobay.ecr import actions as _ecr_actions  # noqa: F401  (registers the actions)
    from cargobay.ecr.api import handle as ecr_handle
    from cargobay.iamapi import api as iam_api

    gctune.settle("ecr")  # the modules just loaded live as long as the worker
    _AWS_DOORS = (ecr_handle, iam_api)
    return _AWS_DOORS


async def ecr_api(request: web.Request) -> web.Response:
    """`POST /`: the ECR API (AWS JSON 1.1, `X-Amz-Target`), or the IAM Query API when the
    request has no `X-Amz-Target` and a form-encoded body (`aws iam --endpoint-url`).

    Both doors load on their first call: they bring botocore (SigV4), which a worker serving
    only `/v2/` never needs in memory."""
    ecr_handle, iam_api = _AWS_DOORS or _load_aws_doors()
    target = request.headers.get("X-Amz-Target", "")
    if target.startswith(ECR_TARGET_PREFIX):  # the hot path first: an ECR call is no IAM one
        return await ecr_handle(request, request.app[SERVICES])
    if iam_api.wants(request):
        return await iam_api.handle(request, request.app[SERVICES])
    from cargobay import awsjson

    service = awsjson.find(target)
    gctune.settle("awsjson")
    if service is not None:
        return await awsjson.serve(service, request, request.app[SERVICES])
    return await ecr_handle(request, request.app[SERVICES])


async def signer_api(request: web.Request) -> web.Response:
    """`/signing-profiles[/{profileName}]`: the signer API (REST JSON, SigV4 for `signer`),
    loaded on its first call like the other AWS doors."""
    from cargobay.signing.door import handle

    gctune.settle("signer")
    return await handle(request)


async def _meter(request: web.Request, response: web.StreamResponse) -> None:
    """Count bytes out per repository and principal: the body length for 200/206; for a
    redirect to the object store, what the store will send (the requested range, or the blob)."""
    if request.method != "GET":  # only GETs are metered (`DistributionCall.count_transfer`),
        return  # and `request.get` of a key it lacks raises and catches a KeyError
    usage = request.get(USAGE)
    if usage is None or response.status not in (200, 206, 307):
        return
    repository_id, principal, size = usage
    sent = size if response.status == 307 else response.content_length
    if sent:
        request.app[SERVICES].usage.record(repository_id, principal, sent)


def build_app(services: Services) -> web.Application:
    # Bodies are streamed by the handlers (a manifest's size is the manifest service's rule);
    # this limit only guards aiohttp's own buffered reads.
    app = web.Application(client_max_size=services.settings.max_manifest_bytes + 1)
    app[SERVICES] = services
    add_routes(app)
    app.router.add_post("/", ecr_api)
    app.router.add_route("*", "/signing-profiles", signer_api)
    app.router.add_route("*", "/signing-profiles/{profileName}", signer_api)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_console(app)

    async def close(_: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    app.on_response_prepare.append(_meter)
    if services.settings.count_db_statements:
        app.middlewares.append(_count_statements)
        app.on_response_prepare.append(_statements_header)
    return app


@web.middleware
async def _count_statements(request: web.Request, handler: Any) -> web.StreamResponse:
    with roundtrips.counting() as count:
        response = await handler(request)
    if not response.prepared:  # a streamed response got the header as it was prepared
        response.headers[roundtrips.HEADER] = str(count.value)
    return response


async def _statements_header(_request: web.Request, response: web.StreamResponse) -> None:
    """For a response prepared inside its handler (a streamed body): the statements run
    before its headers left."""
    count = roundtrips.current()
    if count is not None:
        response.headers[roundtrips.HEADER] = str(count.value)
