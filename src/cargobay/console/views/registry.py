"""The registry page: users and access keys (for principals allowed iam:ListUsers), replication
and pull-through cache rules (DescribeRegistry, DescribePullThroughCacheRules), webhooks (for
administrators, as the admin CLI), KMS keys (kms:ListKeys) and the latest audit records
(cloudtrail:LookupEvents). Read-only lists; each section shows its own denial."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cargobay import regions
from cargobay.audit.door import LOOKUP_EVENTS, TrailResource
from cargobay.audit.query import lookup_events
from cargobay.console import ecr, queries
from cargobay.console.web import Visitor, page, render, services_of
from cargobay.events.webhooks import list_webhooks
from cargobay.iam.authz import UserResource
from cargobay.kms.errors import KmsError
from cargobay.requestinfo import request_context

AUDIT_RECORDS = 25


def _denied(action: str) -> ecr.ConsoleError:
    return ecr.ConsoleError(403, "AccessDeniedException", f"Not authorized to perform {action}")


async def _section(read: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        return {"items": await read()}
    except ecr.ConsoleError as exc:
        return {"error": exc}


async def _users(request: web.Request, visitor: Visitor) -> list[dict[str, Any]]:
    services, principal = services_of(request), visitor.principal
    context = request_context(request, services.settings.trusted_proxies)
    resource = UserResource(principal.account_id)
    if not await services.authorizer.allowed(principal, "iam:ListUsers", resource, context):
        raise _denied("iam:ListUsers")
    return await queries.users_and_keys(services.db, principal.account_id)


async def _audit(request: web.Request, visitor: Visitor) -> list[dict[str, Any]]:
    services, principal = services_of(request), visitor.principal
    context = request_context(request, services.settings.trusted_proxies)
    resource = TrailResource(principal.account_id)
    if not await services.authorizer.allowed(principal, LOOKUP_EVENTS, resource, context):
        raise _denied(LOOKUP_EVENTS)
    found = await lookup_events(
        services.db,
        principal.account_id,
        {"MaxResults": AUDIT_RECORDS},
        region=regions.current(services.settings.region),  # the page's (`web.chosen_region`)
    )
    return found.get("Events", [])


async def _kms_keys(request: web.Request, visitor: Visitor) -> list[dict[str, Any]]:
    """The account's KMS keys, authorized as kms:ListKeys is (identity policies alone)."""
    services, principal = services_of(request), visitor.principal
    context = request_context(request, services.settings.trusted_proxies)
    region = regions.current(services.settings.region)  # the page's (`web.chosen_region`)
    try:
        await services.kms_authorizer.require_identity(
            principal, "kms:ListKeys", region, context=context
        )
    except KmsError as exc:
        raise ecr.ConsoleError(403, type(exc).__name__, str(exc)) from None
    found = await services.kms.list_keys(principal.account_id, limit=100)
    return found["Keys"]


@page
async def registry(request: web.Request, visitor: Visitor) -> web.Response:
    services, principal = services_of(request), visitor.principal

    async def replication() -> list[dict[str, Any]]:
        found = await ecr.call(request, services, principal, "DescribeRegistry", {})
        return found.get("replicationConfiguration", {}).get("rules", [])

    async def pull_through() -> list[dict[str, Any]]:
        found = await ecr.call(request, services, principal, "DescribePullThroughCacheRules", {})
        return found.get("pullThroughCacheRules", [])

    async def webhooks() -> list[dict[str, Any]]:
        if not principal.is_admin:
            raise ecr.ConsoleError(403, "AccessDenied", "Webhooks are for administrators")
        return await list_webhooks(services.db, principal.account_id)

    return render(
        request,
        "registry.html",
        title="Registry",
        users=await _section(lambda: _users(request, visitor)),
        replication=await _section(replication),
        pull_through=await _section(pull_through),
        webhooks=await _section(webhooks),
        kms_keys=await _section(lambda: _kms_keys(request, visitor)),
        audit=await _section(lambda: _audit(request, visitor)),
    )
