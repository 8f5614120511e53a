"""Sign-in and sign-out: an access key id and secret, checked as `/v2/`'s Basic auth checks
them (the credential store, constant time), exchanged for a server-side session."""

from __future__ import annotations

import uuid

from aiohttp import web

from cargobay.audit.hooks import audit_call
from cargobay.console import csrf
from cargobay.console.sessions import SESSION_LIFETIME
from cargobay.console.throttle import SignInThrottle
from cargobay.console.web import (
    PREFIX,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Visitor,
    local_target,
    page,
    redirect,
    render,
    services_of,
    sessions,
    set_cookie,
    visitor_of,
)
from cargobay.iam.principal import Principal
from cargobay.requestinfo import request_context

MAX_FIELD = 1024
# One per worker process (see console/throttle.py for why that is enough).
THROTTLE = SignInThrottle()


def _form(request: web.Request, status: int = 200, **context: object) -> web.Response:
    token = csrf.new_signin_token()
    response = render(
        request,
        "signin.html",
        status=status,
        title="Sign in",
        signin_token=token,
        next=local_target(request.query.get("next") or context.pop("next", None)),
        **context,
    )
    set_cookie(request, response, SIGNIN_COOKIE, token, max_age=3600)
    return response


async def _audit(request: web.Request, principal: Principal | None, key_id: str) -> None:
    """A ConsoleLogin record, as CloudTrail keeps one per console sign-in (the key id only)."""
    services = services_of(request)
    await audit_call(
        request,
        services,
        event_source="signin.amazonaws.com",
        event_name="ConsoleLogin",
        account_id=principal.account_id if principal else services.settings.account_id,
        principal=principal,
        request_parameters={"accessKeyId": key_id},
        response_elements={"ConsoleLogin": "Success" if principal else "Failure"},
        error_code=None if principal else "Failed authentication",
        error_message=None if principal else "The access key id or secret is wrong.",
        request_id=str(uuid.uuid4()),
    )


async def home(request: web.Request) -> web.Response:
    return redirect(f"{PREFIX}/repositories")


async def signin_form(request: web.Request) -> web.Response:
    if await visitor_of(request) is not None:  # signed in already: straight on
        return redirect(local_target(request.query.get("next")))
    return _form(request)


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not csrf.matches(request.cookies.get(SIGNIN_COOKIE), form.get(csrf.FIELD)):
        return _form(request, status=403, error="The sign-in form expired; try again.")
    key_id, secret = form.get("access_key_id"), form.get("secret_access_key")
    target = local_target(form.get("next"))
    if (
        not isinstance(key_id, str)
        or not isinstance(secret, str)
        or not key_id
        or not secret
        or len(key_id) > MAX_FIELD
        or len(secret) > MAX_FIELD
    ):
        return _form(request, status=400, error="Enter an access key id and a secret.", next=target)
    services = services_of(request)
    address = request_context(request, services.settings.trusted_proxies).source_ip
    wait = THROTTLE.retry_after(key_id.strip(), address)
    if wait:
        response = _form(
            request,
            status=429,
            error=f"Too many failed sign-ins; try again in {wait} seconds.",
            key_id=key_id.strip(),
            next=target,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    principal = await services.credentials.verify(key_id.strip(), secret)
    await _audit(request, principal, key_id.strip())
    if principal is None:
        THROTTLE.failed(key_id.strip(), address)
        return _form(
            request,
            status=401,
            error="The access key id or secret is wrong.",
            key_id=key_id.strip(),
            next=target,
        )
    THROTTLE.succeeded(key_id.strip(), address)
    session = await sessions(request).create(principal.access_key_id)
    response = redirect(target)
    set_cookie(request, response, SESSION_COOKIE, session.session_id, int(SESSION_LIFETIME))
    response.del_cookie(SIGNIN_COOKIE, path=f"{PREFIX}/")
    return response


@page
async def signout(request: web.Request, visitor: Visitor) -> web.StreamResponse:
    await sessions(request).end(visitor.session_id)
    response = redirect(f"{PREFIX}/signin")
    response.del_cookie(SESSION_COOKIE, path=f"{PREFIX}/")
    return response
