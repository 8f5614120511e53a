"""The signer API's door: AWS Signer's REST JSON protocol (botocore's `signer` model) for the
signing-profile operations, on the registry's own port.

    PUT    /signing-profiles/{profileName}   PutSigningProfile   (JSON body)
    GET    /signing-profiles/{profileName}   GetSigningProfile   (?profileOwner=)
    DELETE /signing-profiles/{profileName}   CancelSigningProfile
    GET    /signing-profiles                 ListSigningProfiles (query members)

Like every AWS door: SigV4 (service `signer`), the input shape checked against the model, the
operation's entry in `iam.permissions.SIGNER_OPERATIONS` authorized before the handler, errors
as `{"__type", "message"}` with the model's HTTP status, every call audited
(`signer.amazonaws.com`). Business rules are `profiles.SigningProfiles`'.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cargobay import regions
from cargobay.audit.hooks import audit_call
from cargobay.aws import shapes
from cargobay.errors import AccessDenied
from cargobay.iam import permissions
from cargobay.iam.authz import RequestContext
from cargobay.iam.awsrequest import BodyTooLarge, read_body, signed_principal
from cargobay.iam.sigv4 import SigV4Error
from cargobay.requestinfo import request_context
from cargobay.signing.errors import SignerError, ValidationException
from cargobay.signing.profiles import SigningProfiles, profile_arn

if TYPE_CHECKING:
    from cargobay.iam.principal import Principal
    from cargobay.registry.services import Services

log = logging.getLogger("cargobay.signer")

MAX_BODY = 64 * 1024
FAULTS = shapes.Faults("ValidationException", "ValidationException")
_OPERATIONS = {
    ("PUT", True): "PutSigningProfile",
    ("GET", True): "GetSigningProfile",
    ("DELETE", True): "CancelSigningProfile",
    ("GET", False): "ListSigningProfiles",
}


class _Refused(Exception):
    """What the door itself refuses (no such route, a bad signature), by AWS name."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True, slots=True)
class ProfileResource:
    """A signing profile (or `*`) as the authorizer decides on it."""

    account_id: str
    arn: str = "*"


def _query(request: web.Request) -> dict[str, Any]:
    """ListSigningProfiles' and GetSigningProfile's query members, typed as the model says."""
    query = request.query
    out: dict[str, Any] = {}
    for name in ("nextToken", "platformId", "profileOwner"):
        if name in query:
            out[name] = query[name]
    if "includeCanceled" in query:
        text = query["includeCanceled"].lower()
        if text not in ("true", "false"):
            raise ValidationException("includeCanceled must be true or false")
        out["includeCanceled"] = text == "true"
    if "maxResults" in query:
        try:
            out["maxResults"] = int(query["maxResults"])
        except ValueError:
            raise ValidationException("maxResults must be an integer") from None
    if "statuses" in query:
        out["statuses"] = query.getall("statuses")
    return out


async def _payload(request: web.Request, operation: str, body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if operation == "PutSigningProfile":
        try:
            decoded = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            raise ValidationException("the request body is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise ValidationException("the request body must be a JSON object")
        payload.update(decoded)
    else:
        payload.update(_query(request))
    if "profileName" in request.match_info:
        payload["profileName"] = request.match_info["profileName"]
    try:
        shapes.load("signer").validate(operation, payload, FAULTS)
    except shapes.ShapeError as exc:
        raise ValidationException(exc.message) from None
    return payload


async def _authorize(
    services: Services, principal: Principal, operation: str, payload: dict[str, Any], ctx: Any
) -> None:
    permission = permissions.SIGNER_OPERATIONS[operation]
    resource = ProfileResource(principal.account_id)
    if permission.resource == permissions.SIGNING_PROFILE:
        region = regions.current(services.settings.region)
        arn = profile_arn(region, principal.account_id, payload["profileName"])
        resource = ProfileResource(principal.account_id, arn)
    tags = payload.get("tags") if permission.tags else None
    if isinstance(tags, dict) and tags:
        extra: dict[str, object] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        extra["aws:TagKeys"] = list(tags)
        ctx = RequestContext(ctx.source_ip, ctx.secure_transport, {**ctx.extra, **extra})
    for action in permission.actions:
        await services.authorizer.require(principal, action, resource, ctx)  # type: ignore[arg-type]


async def _call(
    profiles: SigningProfiles, account: str, operation: str, p: dict[str, Any]
) -> dict[str, Any]:
    name = p.get("profileName", "")
    if operation == "PutSigningProfile":
        return await profiles.put(
            account,
            name,
            platform_id=p["platformId"],
            validity=p.get("signatureValidityPeriod"),
            signing_parameters=p.get("signingParameters"),
            tags=p.get("tags"),
            signing_material=p.get("signingMaterial"),
            overrides=p.get("overrides"),
        )
    if operation == "GetSigningProfile":
        return await profiles.get(account, name, p.get("profileOwner"))
    if operation == "CancelSigningProfile":
        await profiles.cancel(account, name)
        return {}
    return await profiles.list(
        account,
        include_canceled=p.get("includeCanceled", False),
        max_results=p.get("maxResults"),
        next_token=p.get("nextToken"),
        platform_id=p.get("platformId"),
        statuses=p.get("statuses"),
    )


def _render(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/json"}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


async def handle(request: web.Request) -> web.Response:
    from cargobay.distribution.routes import SERVICES

    services: Services = request.app[SERVICES]
    request_id = str(uuid.uuid4())
    operation = _OPERATIONS.get((request.method, "profileName" in request.match_info))
    principal: Principal | None = None
    payload: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: tuple[str, str, int] | None = None
    try:
        if operation is None:
            raise _Refused("UnknownOperationException", f"{request.method} {request.path}", 404)
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            raise ValidationException("the request body is too large") from None
        try:
            principal = await signed_principal(
                request,
                services.credentials,
                body,
                "signer",
                services.settings.served_regions,
                default_region=services.settings.region,
            )
        except SigV4Error as exc:
            raise _Refused(exc.code, exc.message, exc.status) from None
        payload = await _payload(request, operation, body)
        ctx = request_context(request, services.settings.trusted_proxies)
        await _authorize(services, principal, operation, payload, ctx)
        region = regions.current(services.settings.region)
        profiles = SigningProfiles(services.db, region, services.kms)
        result = await _call(profiles, principal.account_id, operation, payload)
    except _Refused as exc:
        error = (exc.code, exc.message, exc.status)
    except SignerError as exc:
        error = (exc.code, exc.message, exc.status)
    except AccessDenied as exc:
        error = ("AccessDeniedException", exc.message, 403)
    except Exception:
        log.exception("signer %s failed", operation)
        error = ("InternalServiceErrorException", "internal error", 500)
    if operation is not None:
        await audit_call(
            request,
            services,
            event_source="signer.amazonaws.com",
            event_name=operation,
            account_id=principal.account_id if principal else services.settings.account_id,
            principal=principal,
            request_parameters=payload,
            response_elements=result,
            error_code=error[0] if error else None,
            error_message=error[1] if error else None,
            request_id=request_id,
        )
    if error is not None:
        return _render(error[2], {"__type": error[0], "message": error[1]}, request_id)
    return _render(200, result or {}, request_id)
