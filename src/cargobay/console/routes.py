"""The console's URL map, mounted by the application under `/console/`.

Views load on their first request: they bring Jinja2 and the ECR actions (botocore), which a
worker serving only `/v2/` never needs in memory."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from cargobay.console.sessions import SessionStore
from cargobay.distribution.call import SERVICES

PREFIX = "/console"
SESSIONS = web.AppKey("console_sessions", SessionStore)
STATIC = Path(__file__).parent / "static"
View = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path under the prefix, "module:function" in cargobay.console.views)
ROUTES = (
    ("GET", "", "signin:home"),
    ("GET", "/", "signin:home"),
    ("GET", "/signin", "signin:signin_form"),
    ("POST", "/signin", "signin:signin"),
    ("POST", "/signout", "signin:signout"),
    ("GET", "/repositories", "repositories:repositories"),
    ("GET", "/repository", "repository:repository"),
    ("GET", "/image", "image:image"),
    ("GET", "/settings", "settings:settings"),
    ("POST", "/settings", "settings:change"),
    ("GET", "/usage", "usage:usage_page"),
    ("GET", "/usage.json", "usage:usage_data"),
    ("GET", "/registry", "registry:registry"),
    ("POST", "/region", "region:choose"),
)


def _lazy(target: str) -> View:
    module_name, _, name = target.partition(":")
    loaded: list[View] = []

    async def view(request: web.Request) -> web.StreamResponse:
        if not loaded:
            module = importlib.import_module(f"cargobay.console.views.{module_name}")
            loaded.append(getattr(module, name))
        return await loaded[0](request)

    return view


def add_console(app: web.Application) -> None:
    """Register the console on an application that has its services."""
    app[SESSIONS] = SessionStore(app[SERVICES].db)
    for method, path, target in ROUTES:
        app.router.add_route(method, f"{PREFIX}{path}", _lazy(target))
    app.router.add_static(f"{PREFIX}/static/", STATIC, append_version=False)
