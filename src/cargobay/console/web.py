"""What every console page shares: the signed-in visitor, templates, headers and errors."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from cargobay import regions
from cargobay.console import csrf
from cargobay.console.ecr import ConsoleError
from cargobay.console.routes import PREFIX, SESSIONS
from cargobay.console.sessions import SessionStore
from cargobay.distribution.call import SERVICES
from cargobay.iam.principal import Principal
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

SESSION_COOKIE = "cargobay_console"
SIGNIN_COOKIE = "cargobay_console_signin"
# The region the visitor's pages show, on a deployment serving several (`regions_served`).
REGION_COOKIE = "cargobay_console_region"
# No inline script or style anywhere: scripts, styles and the chart come from /console/static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def human_bytes(value: object) -> str:
    size = float(value or 0)  # type: ignore[arg-type]
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def when(value: object) -> str:
    if not value:
        return "never"
    moment = datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
    return moment.strftime("%Y-%m-%d %H:%M UTC")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["bytes"] = human_bytes
_env.filters["when"] = when
_env.filters["q"] = lambda value: quote(str(value), safe="")


@dataclass(frozen=True, slots=True)
class Visitor:
    """The signed-in principal of one request, with the CSRF token its forms carry."""

    principal: Principal
    session_id: str
    csrf_token: str


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


def sessions(request: web.Request) -> SessionStore:
    return request.app[SESSIONS]


def secure(request: web.Request) -> bool:
    return request_context(request, services_of(request).settings.trusted_proxies).secure_transport


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=f"{PREFIX}/",
        httponly=True,
        samesite="Strict",
        secure=secure(request),
    )


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={**HEADERS, "Location": location})


def local_target(value: object) -> str:
    """Where to go after a form (signing in, switching region): only a console path on this
    site, never another origin."""
    if (
        isinstance(value, str)
        and value.startswith(f"{PREFIX}/")
        and "//" not in value
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
    ):
        return value
    return f"{PREFIX}/repositories"


def chosen_region(request: web.Request) -> str:
    """The region the visitor chose (its cookie) when this deployment serves it, else the
    default one: a region dropped from `regions_served` falls back rather than failing."""
    settings = services_of(request).settings
    wanted = request.cookies.get(REGION_COOKIE, "")
    return wanted if wanted in settings.served_regions else settings.region


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    visitor = request.get("console_visitor")
    settings = services_of(request).settings
    page = _env.get_template(template).render(
        region=request.get("console_region", settings.region),
        regions=settings.served_regions,
        here=request.path_qs,
        visitor=visitor,
        principal=visitor.principal if visitor else None,
        csrf_field=csrf.FIELD,
        csrf_token=visitor.csrf_token if visitor else context.pop("signin_token", ""),
        root=PREFIX,
        now=time.time(),
        **context,
    )
    return web.Response(
        status=status, text=page, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def error_page(request: web.Request, exc: ConsoleError) -> web.Response:
    title = "Access denied" if exc.status == 403 else "Not found" if exc.status == 404 else "Error"
    return render(request, "error.html", status=exc.status, title=title, error=exc)


async def visitor_of(request: web.Request) -> Visitor | None:
    """The live session's principal, or None (no cookie, signed out, expired, key revoked)."""
    services = services_of(request)
    session = await sessions(request).find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    principal = await services.credentials.active_principal(session.access_key_id)
    if principal is None:
        return None
    return Visitor(principal, session.session_id, csrf.session_token(session.session_id))


Handler = Callable[[web.Request, Visitor], Awaitable[web.StreamResponse]]


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A signed-in page: sign-in first when there is no session; a POST needs the session's
    CSRF token (403 otherwise); a denied or failed ECR call shows its message."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        visitor = await visitor_of(request)
        if visitor is None:
            if request.method != "GET":
                return render(
                    request,
                    "error.html",
                    status=401,
                    title="Signed out",
                    error=ConsoleError(401, "Unauthenticated", "Sign in first."),
                )
            target = quote(request.path_qs, safe="")
            raise web.HTTPSeeOther(f"{PREFIX}/signin?next={target}")
        request["console_visitor"] = visitor
        # Every ECR call, query and audit record of this page is in the chosen region, as the
        # AWS console's region picker scopes a page (`regions.use` is this request's own).
        region = chosen_region(request)
        regions.use(region, services_of(request).settings.region)
        request["console_region"] = region
        if request.method == "POST":
            form = await request.post()
            if not csrf.matches(visitor.csrf_token, form.get(csrf.FIELD)):
                return render(
                    request,
                    "error.html",
                    status=403,
                    title="Forbidden",
                    error=ConsoleError(
                        403, "InvalidCsrfToken", "The form's CSRF token is missing or wrong."
                    ),
                )
        started = time.perf_counter()
        try:
            response = await handler(request, visitor)
        except ConsoleError as exc:
            response = error_page(request, exc)
        # The page's own server time (session, authorization, queries, rendering).
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
        return response

    return wrapped
