"""The call each door makes to audit a request (issue 10's rewrite wires them in).

After the operation (success, domain error or denial), in the door's dispatcher:

    await audit.hooks.audit_call(
        request, services, event_source="ecr.amazonaws.com", event_name=operation,
        principal=principal, account_id=principal.account_id if principal else registry_id,
        request_parameters=body, response_elements=result, error_code=code,
        error_message=message, request_id=request_id,
        resources=[Resource("AWS::ECR::Repository", name, repository_arn)])

`/v2/` writes use `event_source="registry.cargobay"` with event names `PutManifest`,
`DeleteManifest`, `CompleteBlobUpload`, and pulls (`GetManifest`, `GetBlob`) only when
`settings.audit_pulls` is on. Read-only is derived from the name (Get/List/Describe/Batch*Get...).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargobay.audit.record import AuditEvent, Resource, record
from cargobay.iam.principal import Principal
from cargobay.requestinfo import request_context

READ_PREFIXES = ("Get", "List", "Describe", "BatchGet", "BatchCheck", "Lookup", "Validate")


def is_read_only(event_name: str) -> bool:
    return event_name.startswith(READ_PREFIXES)


def wants(settings: Any, event_name: str, *, pull: bool = False) -> bool:
    """Whether this call is audited at all under the settings."""
    return bool(settings.audit_enabled) and (not pull or bool(settings.audit_pulls))


async def audit_call(
    request: web.Request,
    services: Any,
    *,
    event_source: str,
    event_name: str,
    account_id: str,
    principal: Principal | None,
    request_parameters: dict[str, Any] | None = None,
    response_elements: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    request_id: str | None = None,
    resources: list[Resource] | None = None,
    pull: bool = False,
) -> None:
    """Record one call; the client's address is taken through trusted proxies only."""
    settings = services.settings
    if not wants(settings, event_name, pull=pull):
        return
    context = request_context(request, settings.trusted_proxies)
    await record(
        services.db,
        AuditEvent(
            account_id=account_id,
            event_source=event_source,
            event_name=event_name,
            read_only=is_read_only(event_name),
            region=settings.region,
            principal=principal,
            source_ip=context.source_ip,
            user_agent=request.headers.get("User-Agent"),
            request_parameters=request_parameters,
            response_elements=response_elements,
            error_code=error_code,
            error_message=error_message,
            request_id=request_id,
            resources=list(resources or []),
        ),
        flush_ms=settings.audit_flush_ms,
    )
