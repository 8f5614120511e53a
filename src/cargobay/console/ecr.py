"""Console actions run as ECR API calls: the same authorization table entry, the same action
code over the same services, and the same audit record, with the signed-in principal. A
console page can therefore show or do nothing the ECR API would refuse that principal."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cargobay import regions
from cargobay.ecr import actions as _actions  # noqa: F401  (registers the actions)
from cargobay.ecr import errors
from cargobay.ecr.api import ACTIONS, record_call
from cargobay.ecr.context import EcrCall
from cargobay.errors import DomainError
from cargobay.iam import authz
from cargobay.iam.permissions import ECR_OPERATIONS
from cargobay.iam.principal import Principal
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

log = logging.getLogger("cargobay.console")
Body = Callable[[EcrCall, dict[str, Any]], Awaitable[dict[str, Any]]]


class ConsoleError(Exception):
    """An ECR call the console made failed: the page shows `message` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _status(error: errors.EcrError) -> int:
    """The page's HTTP status (the ECR API answers most errors 400 with a named type)."""
    if error.code == "AccessDeniedException":
        return 403
    if error.code.endswith("NotFoundException"):
        return 404
    return error.status


async def call(
    request: web.Request,
    services: Services,
    principal: Principal,
    operation: str,
    payload: dict[str, Any],
    body: Body | None = None,
) -> dict[str, Any]:
    """Run one ECR operation as `principal`; ConsoleError when it is denied or fails.

    `body` replaces the action's own code for pages that need a view the ECR shape lacks
    (sorted, counted listings): it runs after the same authorization, under the same name."""
    result: dict[str, Any] | None = None
    error: errors.EcrError | None = None
    try:
        ecr_call = EcrCall(request, services, principal, operation)
        await ecr_call.authorize(ECR_OPERATIONS[operation], payload)
        result = await (body or ACTIONS[operation])(ecr_call, payload)
    except errors.EcrError as exc:
        error = exc
    except DomainError as exc:
        error = errors.from_domain(exc)
    request_id = str(uuid.uuid4())
    # A console view's result is not the ECR response shape: the record keeps the call only.
    recorded = result if body is None else None
    await record_call(request, services, operation, principal, payload, recorded, error, request_id)
    if error is not None:
        raise ConsoleError(_status(error), error.code, error.message)
    assert result is not None
    return result


async def allowed(
    request: web.Request,
    services: Services,
    principal: Principal,
    action: str,
    repository: str | None,
) -> bool:
    """Whether the authorizer would allow `action` on a repository of the principal's own
    registry (to decide which controls a page shows; the action itself checks again)."""
    context = request_context(request, services.settings.trusted_proxies)
    region = regions.current(services.settings.region)  # the page's (`web.chosen_region`)
    resource = authz.Resource(principal.account_id, region, repository)
    return await services.authorizer.allowed(principal, action, resource, context)
