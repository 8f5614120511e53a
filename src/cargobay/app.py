"""Builds the web application: both front doors, health endpoints, and the services they use."""

from __future__ import annotations

from aiohttp import web

from cargobay.distribution.routes import SERVICES, add_routes
from cargobay.ecr import actions as _ecr_actions  # noqa: F401  (registers the actions)
from cargobay.ecr.api import handle as ecr_handle
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


async def ecr_api(request: web.Request) -> web.Response:
    return await ecr_handle(request, request.app[SERVICES])


def build_app(services: Services) -> web.Application:
    # Blob bodies are streamed by the handlers; this limit only guards buffered reads.
    app = web.Application(client_max_size=services.settings.max_manifest_bytes + 1)
    app[SERVICES] = services
    add_routes(app)
    app.router.add_post("/", ecr_api)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def close(_: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app
