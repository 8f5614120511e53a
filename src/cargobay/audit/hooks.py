"""The call each door's dispatcher makes to audit a request: after the operation, whether it
succeeded, failed or was denied (denials happen in the dispatcher, before any handler):

    await audit.hooks.audit_call(
        request, services, event_source="ecr.amazonaws.com", event_name=operation,
        principal=principal, account_id=principal.account_id if principal else registry_id,
        request_parameters=body, response_elements=result, error_code=code,
        error_message=message, request_id=request_id,
        resources=[Resource("AWS::ECR::Repository", name, repository_arn)])

The ECR door (`ecr.amazonaws.com`), the IAM door (`iam.amazonaws.com`) and the generic AWS JSON
door (`<signing name>.amazonaws.com`: KMS, Secrets Manager, CloudTrail, ...) audit every call.
`/v2/` audits its writes with `event_source="registry.cargobay"` (`v2_event` names them:
`PutManifest`, `DeleteManifest`, `CompleteBlobUpload`, `MountBlob`, `DeleteBlob`) and pulls
(`GetManifest`, `GetBlob`) only when `settings.audit_pulls` is on. Read-only is derived from the
name. The cost on the request path is building one small object: the recorder buffers it, and
redaction and JSON encoding happen when the buffer is written.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from cargobay import regions
from cargobay.audit.record import AuditEvent, Resource, recorder_for
from cargobay.iam.principal import Principal
from cargobay.requestinfo import request_context

if TYPE_CHECKING:
    from cargobay.iam.authz import RequestContext

log = logging.getLogger("cargobay.audit")

READ_PREFIXES = ("Get", "List", "Describe", "BatchGet", "BatchCheck", "Lookup", "Validate")
V2_SOURCE = "registry.cargobay"
# Error names as CloudTrail records them where a door's protocol spells them otherwise.
_ERROR_CODES = {"AccessDeniedException": "AccessDenied"}


def v2_event(kind: str, method: str, query: Any) -> tuple[str, bool] | None:
    """The audit event name of a `/v2/` request and whether it is a pull; None when `/v2/`
    does not audit it (upload chunks, tag listings, HEAD checks, ...)."""
    if kind == "manifest":
        return {"PUT": ("PutManifest", False), "DELETE": ("DeleteManifest", False)}.get(
            method, ("GetManifest", True) if method == "GET" else None
        )
    if kind == "blob":
        return {"DELETE": ("DeleteBlob", False), "GET": ("GetBlob", True)}.get(method)
    if kind == "upload" and method == "PUT":
        return "CompleteBlobUpload", False
    if kind == "uploads" and method == "POST":
        if "mount" in query:
            return "MountBlob", False
        if "digest" in query:
            return "CompleteBlobUpload", False  # a monolithic upload
    return None


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
    owner_account_id: str | None = None,
    context: RequestContext | None = None,
) -> None:
    """Record one call; the client's address is taken through trusted proxies only (or from
    `context`, the request's facts the call's authorization already gathered). A call
    on another account's registry (`owner_account_id`) is recorded in both accounts, as
    CloudTrail delivers it to the caller's and to the resource owner's."""
    settings = services.settings
    if not wants(settings, event_name, pull=pull):
        return
    read_only = is_read_only(event_name)
    if context is None:
        context = request_context(request, settings.trusted_proxies)
    event = AuditEvent(
        account_id=account_id,
        event_source=event_source,
        event_name=event_name,
        read_only=read_only,
        region=regions.current(settings.region),  # the request's (`regions_served`)
        principal=principal,
        source_ip=context.source_ip,
        user_agent=request.headers.get("User-Agent"),
        request_parameters=request_parameters,
        # Reads return what the caller asked to see (manifests, records): not kept, as
        # CloudTrail keeps no responseElements for them either.
        response_elements=None if read_only or error_code else response_elements,
        error_code=_ERROR_CODES.get(error_code, error_code) if error_code else None,
        error_message=error_message,
        request_id=request_id,
        resources=list(resources or []),
    )
    events = [event]
    if owner_account_id and owner_account_id != account_id and principal is not None:
        # A copy made now, before recording gives the first its id and time.
        events.append(dataclasses.replace(event, account_id=owner_account_id))
    try:
        recorder = recorder_for(services.db, settings.audit_flush_ms)
        for each in events:
            if recorder.flush_ms > 0:
                recorder.buffer(each)  # the usual case: an append
            else:
                await recorder.record(each)
    except Exception:  # only with audit_flush_ms = 0: the call itself has happened
        log.exception("could not write the audit record of %s", event_name)


class Failure(Protocol):
    """What a door's error says to the audit trail (`EcrError`, `IamError`, `AwsError`)."""

    code: str
    message: str


async def audit_api_call(
    request: web.Request,
    services: Any,
    call: tuple[str, str, str],
    principal: Principal | None,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    error: Failure | None,
    resources: list[Resource] | None = None,
    owner_account_id: str | None = None,
    context: RequestContext | None = None,
) -> None:
    """The record of one call through an AWS API door, `call` being (service, operation,
    request id): `<service>.amazonaws.com`, in the caller's account (the deployment's when
    the caller is unknown: a bad signature)."""
    service, operation, request_id = call
    await audit_call(
        request,
        services,
        event_source=f"{service}.amazonaws.com",
        event_name=operation,
        account_id=principal.account_id if principal else services.settings.account_id,
        principal=principal,
        request_parameters=request_parameters,
        response_elements=response_elements,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        request_id=request_id,
        resources=resources,
        owner_account_id=owner_account_id,
        context=context,
    )
