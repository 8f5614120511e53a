"""`POST /` with `X-Amz-Target: <prefix><Operation>`: one dispatcher for every AWS JSON 1.1
service but ECR's (which predates it and keeps its own module).

A service is a `JsonService`: its target prefix, the SigV4 service name its clients sign for,
an operation table, one `authorize` function the dispatcher calls before any handler runs (so
a handler cannot forget the check: KMS reads the key policy there, Secrets Manager the secret's
ARN), and one error table. The dispatcher reads the body within a limit, verifies the
signature, decodes the JSON, checks the operation exists, authorizes, calls the handler and
renders its result or the error as AWS does (`{"__type": ..., "message": ...}`). Every body is
checked against the operation's input shape in botocore's model first (`cargobay.aws.shapes`:
a wrong JSON type is `SerializationException`, a broken constraint `ValidationException`, as
AWS JSON services answer them). Every call of
a known operation is audited (`<signing name>.amazonaws.com`), denied and failed ones too, so a
service added here is in the audit trail without a line of its own.

Services are loaded on their first call (`SERVICES` names the module of each), so a worker
that never serves KMS never imports it.
"""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cargobay import regions
from cargobay.audit.hooks import audit_api_call
from cargobay.aws import shapes
from cargobay.errors import DomainError
from cargobay.iam.awsrequest import BodyTooLarge, read_body, signed_principal
from cargobay.iam.sigv4 import SigV4Error
from cargobay.requestinfo import request_context

if TYPE_CHECKING:
    from cargobay.iam.authz import RequestContext
    from cargobay.iam.principal import Principal
    from cargobay.registry.services import Services

log = logging.getLogger("cargobay.awsjson")

CONTENT_TYPE = "application/x-amz-json-1.1"

# Target prefix -> the module whose `SERVICE` attribute is that service's JsonService.
SERVICES: dict[str, str] = {
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.": "cargobay.audit.door",
    "TrentService.": "cargobay.kms.door",
    "secretsmanager.": "cargobay.secretsapi.door",
}


class AwsError(Exception):
    """An error a door reports by AWS name (what the door itself finds wrong)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class JsonCall:
    """One call: who is asking, through which request, for which operation."""

    request: web.Request
    services: Services
    principal: Principal
    operation: str
    request_id: str
    # Filled by `authorize` for the handler (a loaded key, a secret, ...).
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    @property
    def region(self) -> str:
        """The region the request is signed for (one the deployment serves)."""
        return regions.current(self.services.settings.region)

    def context(self) -> RequestContext:
        return request_context(self.request, self.services.settings.trusted_proxies)


Handler = Callable[[JsonCall, dict[str, Any]], Awaitable[dict[str, Any]]]
Authorize = Callable[[JsonCall, dict[str, Any]], Awaitable[None]]
# An exception the services raise -> (AWS error name, HTTP status), or None if not ours.
ErrorMap = Callable[[Exception], "tuple[str, int] | None"]


@dataclass(frozen=True)
class Operation:
    handler: Handler
    # The IAM action the call needs (`kms:Encrypt`); `authorize` decides on which resource.
    action: str
    # What `authorize` checks it on, as docs/architecture.md's operation table says it.
    resource: str = "*"


@dataclass(frozen=True)
class JsonService:
    target_prefix: str
    signing_name: str
    operations: dict[str, Operation]
    authorize: Authorize
    map_error: ErrorMap
    max_body: int = 1024 * 1024
    # The botocore model (`cargobay.aws.shapes`) every body is checked against before
    # authorization; None only for a service with no model (the tests' demo service).
    shapes: str | None = None
    # A service's own input rule beyond the model's (KMS: grant tokens it issued), run after it.
    check: Callable[[str, dict[str, Any]], None] | None = None


def find(target: str) -> JsonService | None:
    """The service a target belongs to, loading its module on first use."""
    for prefix, module in SERVICES.items():
        if target.startswith(prefix):
            return importlib.import_module(module).SERVICE
    return None


def _render(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "Content-Type": CONTENT_TYPE}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def _error(code: str, message: str, status: int, request_id: str) -> web.Response:
    return _render(status, {"__type": code, "message": message}, request_id)


async def serve(service: JsonService, request: web.Request, services: Services) -> web.Response:
    """Serve one call of `service`, and audit it (also when it fails or is denied)."""
    request_id = str(uuid.uuid4())
    target = request.headers.get("X-Amz-Target", "")
    name = target[len(service.target_prefix) :]
    principal: Principal | None = None
    payload: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: tuple[str, str, int] | None = None
    try:
        operation = service.operations.get(name)
        if operation is None:
            raise AwsError("UnknownOperationException", f"Unknown operation {target!r}")
        try:
            body = await read_body(request, service.max_body)
        except BodyTooLarge:
            raise AwsError("ValidationException", "the request body is too large") from None
        try:
            principal = await signed_principal(
                request,
                services.credentials,
                body,
                service.signing_name,
                services.settings.served_regions,
                default_region=services.settings.region,
            )
        except SigV4Error as exc:
            raise AwsError(exc.code, exc.message, exc.status) from None
        try:
            decoded = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            raise AwsError("SerializationException", "the body is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise AwsError("SerializationException", "the body must be a JSON object")
        payload = decoded
        if service.shapes is not None:
            try:
                shapes.validate(service.shapes, name, payload)
            except shapes.ShapeError as exc:
                raise AwsError(exc.code, exc.message) from None
        if service.check is not None:
            service.check(name, payload)
        call = JsonCall(request, services, principal, name, request_id)
        await service.authorize(call, payload)
        result = await operation.handler(call, payload)
    except AwsError as exc:
        error = (exc.code, exc.message, exc.status)
    except DomainError as exc:
        mapped = service.map_error(exc) or _domain_default(exc)
        error = (mapped[0], exc.message, mapped[1])
    except Exception as exc:
        mapped = service.map_error(exc)
        if mapped is not None:
            error = (mapped[0], str(exc), mapped[1])
        else:
            log.exception("%s failed", target)
            error = ("InternalFailure", "internal error", 500)
    if name in service.operations:
        failure = AwsError(*error) if error else None
        call = (service.signing_name, name, request_id)
        await audit_api_call(request, services, call, principal, payload, result, failure)
    if error is not None:
        return _error(error[0], error[1], error[2], request_id)
    return _render(200, result or {}, request_id)


def _domain_default(exc: DomainError) -> tuple[str, int]:
    """Domain errors every AWS JSON service names the same way."""
    from cargobay import errors as e

    if isinstance(exc, e.AccessDenied):
        return "AccessDeniedException", 400
    if isinstance(exc, e.LimitExceeded):
        return "LimitExceededException", 400
    if isinstance(exc, e.NotFound):
        return "NotFoundException", 400
    return "ValidationException", 400
