"""The IAM Query API endpoint: `POST /` with a form-encoded body, SigV4 for service `iam`.

`aws iam ... --endpoint-url` and boto3's `iam` client send `Action=CreateUser&Version=
2010-05-08&UserName=alice` as `application/x-www-form-urlencoded`, signed for service `iam`
and region `us-east-1` (the global endpoint's) or the deployment's own. Answers are XML in IAM's
namespace, errors `<ErrorResponse>` with the HTTP status IAM uses. app.py sends a `POST /`
here when it has no `X-Amz-Target` and a form Content-Type; everything else is the ECR API.

This module only speaks the protocol: it verifies the signature, finds the caller, decodes the
form, dispatches to the action (actions.py) and renders the result or the error (xml.py).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from cargobay.audit.hooks import audit_api_call
from cargobay.audit.record import Resource
from cargobay.aws import query, shapes
from cargobay.errors import DomainError
from cargobay.iam import sigv4
from cargobay.iam.awsrequest import BodyTooLarge, read_body, signed_principal
from cargobay.iam.permissions import IAM_OPERATIONS
from cargobay.iam.principal import Principal
from cargobay.iamapi import actions as _actions  # noqa: F401  (registers the actions)
from cargobay.iamapi import errors, xml
from cargobay.iamapi.context import ACTIONS, IamCall, Params
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.iamapi")

FORM = "application/x-www-form-urlencoded"
VERSION = "2010-05-08"
SERVICE = "iam"
# A policy document is at most 128 KiB, up to three times that once percent-encoded.
MAX_BODY = 1024 * 1024

# SigV4 failures, as AWS Query services name them.
_SIGV4_ERRORS = {
    sigv4.MISSING_TOKEN: ("MissingAuthenticationToken", 403),
    sigv4.INCOMPLETE_SIGNATURE: ("IncompleteSignature", 400),
    sigv4.UNRECOGNIZED_CLIENT: ("InvalidClientTokenId", 403),
    sigv4.INVALID_SIGNATURE: ("SignatureDoesNotMatch", 403),
}


_SIGNATURE_CODES = {code for code, _ in _SIGV4_ERRORS.values()}


def wants(request: web.Request) -> bool:
    """Whether a `POST /` is an IAM Query call rather than an ECR (AWS JSON 1.1) one."""
    return "X-Amz-Target" not in request.headers and request.content_type == FORM


async def handle(request: web.Request, services: Services) -> web.Response:
    """Serve one IAM API call, and audit it (also when it fails or is denied)."""
    request_id = str(uuid.uuid4())
    name = ""
    principal: Principal | None = None
    values: dict[str, str] = {}
    result: dict[str, Any] | None = None
    error: errors.IamError | None = None
    body = b""
    try:
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            raise errors.validation("request body is too large") from None
        principal = await _authenticate(request, services, body)
        values = _form(request.query_string, body)
        name = values.get("Action", "")
        if not name:
            raise errors.missing_action("The request must contain the parameter Action.")
        version = values.get("Version", VERSION)
        if name not in ACTIONS or name not in IAM_OPERATIONS or version != VERSION:
            message = f"Could not find operation {name} for version {version}"
            name = ""  # not an operation: nothing to audit
            raise errors.invalid_action(message)
        # -- input shape (botocore's model), before any action runs ------------------------
        try:
            model = shapes.load(SERVICE)
            model.validate(name, query.decode(model, name, values))
        except shapes.ShapeError as exc:
            raise errors.IamError(exc.code, exc.message, 400) from None
        # ----------------------------------------------------------------------------------
        call = IamCall(request, services, principal, name, Params(values))
        await call.authorize(IAM_OPERATIONS[name])
        result = await ACTIONS[name](call)
    except errors.IamError as exc:
        if exc.code == "AccessDenied":
            log.warning("access denied: %s", exc.message)
        error = exc
    except DomainError as exc:
        error = errors.from_domain(exc)
    except ConnectionResetError:  # the client went away: connections.py logs one line
        raise
    except Exception:
        log.exception("IAM %s failed", name or "call")
        error = errors.service_failure("internal error")
    if principal is None and error is not None and error.code in _SIGNATURE_CODES:
        # An unauthenticated call of a real operation is audited too (who tried what).
        with contextlib.suppress(errors.IamError):
            values = _form(request.query_string, body)
        name = values.get("Action", "") if values.get("Action") in IAM_OPERATIONS else ""
    if name:
        await _audit(request, services, name, principal, values, result, error, request_id)
    if error is not None:
        return _error(error, request_id)
    return xml.response(name, result, request_id)


async def _audit(
    request: web.Request,
    services: Services,
    operation: str,
    principal: Principal | None,
    values: dict[str, str],
    result: dict[str, Any] | None,
    error: errors.IamError | None,
    request_id: str,
) -> None:
    """One audit record per call, parameters named as CloudTrail names IAM's (`userName`)."""
    account = principal.account_id if principal else services.settings.account_id
    params = {k[:1].lower() + k[1:]: v for k, v in values.items() if k not in ("Action", "Version")}
    if principal is None:
        params = None  # an unauthenticated caller's parameters are not worth keeping
    resources = []
    user = values.get("UserName")
    if user:
        arn = f"arn:aws:iam::{account}:user/{user}"
        resources.append(Resource("AWS::IAM::User", user, arn))
    call = ("iam", operation, request_id)
    await audit_api_call(request, services, call, principal, params, result, error, resources)


def _error(exc: errors.IamError, request_id: str) -> web.Response:
    return xml.error_response(
        exc.code, exc.message, exc.status, request_id, sender=exc.sender_fault
    )


def _form(query_string: str, body: bytes) -> dict[str, str]:
    """Parameters from the query string and the form body (the body wins)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.IamError("MalformedQueryString", "the body is not UTF-8", 400) from None
    values: dict[str, str] = {}
    for source in (query_string, text):
        values.update(parse_qsl(source, keep_blank_values=True))
    return values


async def _authenticate(request: web.Request, services: Services, body: bytes) -> Principal:
    try:
        # IAM is global: AWS signs it for us-east-1, and botocore signs it for the client's own
        # region when given an endpoint URL, so both are accepted, and no other region.
        regions = tuple(dict.fromkeys((services.settings.region, "us-east-1")))
        return await signed_principal(request, services.credentials, body, SERVICE, regions)
    except sigv4.SigV4Error as exc:
        code, status = _SIGV4_ERRORS.get(exc.code, ("SignatureDoesNotMatch", 403))
        message = exc.message
        if code == "MissingAuthenticationToken":
            message = "Request is missing Authentication Token"
        raise errors.IamError(code, message, status) from None
