"""The AWS JSON 1.1 endpoint: `POST /` with `X-Amz-Target`, SigV4 on every call.

This module only speaks the protocol: it verifies the signature, finds the caller, decodes the
JSON body, checks the operation's entry in the authorization table (`iam.permissions`),
dispatches to the action and renders the result or the AWS error shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cargobay import jsontext, regions
from cargobay.audit.hooks import audit_api_call
from cargobay.audit.record import Resource
from cargobay.aws import shapes
from cargobay.ecr import caller, errors
from cargobay.ecr.context import EcrCall
from cargobay.errors import DomainError
from cargobay.iam.authz import RequestContext
from cargobay.iam.awsrequest import BodyTooLarge, read_body
from cargobay.iam.permissions import ECR_OPERATIONS
from cargobay.iam.principal import Principal
from cargobay.registry.ecrreads import CallerUnconfirmed
from cargobay.registry.services import Services
from cargobay.requestids import new_id

log = logging.getLogger("cargobay.ecr")

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
_ACCOUNT = re.compile(r"[0-9]{12}")
CONTENT_TYPE = "application/x-amz-json-1.1"
# UploadLayerPart carries up to 20 MiB as base64 inside JSON.
MAX_BODY = 32 * 1024 * 1024

Action = Callable[[EcrCall, dict[str, Any]], Awaitable[dict[str, Any]]]
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def _decode(body: bytes) -> Any:
    """`json.loads(body or b"{}")`. A body that opens with `{` and a non-NUL byte is UTF-8 to
    `json.detect_encoding`: decoded here as `json.loads` would (surrogatepass), the
    detection skipped."""
    if body[:1] == b"{" and body[1:2] != b"\0":
        return json.loads(body.decode("utf-8", "surrogatepass"))
    return json.loads(body or b"{}")


def _render(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "Content-Type": CONTENT_TYPE}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return web.Response(status=status, body=jsontext.answer(body), headers=headers)


async def handle(request: web.Request, services: Services) -> web.Response:
    """Serve one ECR API call, and audit it (also when it fails or is denied)."""
    request_id = new_id()
    target = request.headers.get("X-Amz-Target", "")
    name = ""
    principal: Principal | None = None
    payload: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: errors.EcrError | None = None
    unconfirmed: str | None = None  # the caller's key row awaits its statement (ecr.caller)
    call: EcrCall | None = None
    body_bytes = b""
    try:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in ACTIONS or operation not in ECR_OPERATIONS:
            raise errors.UnknownOperation(f"Unknown operation {target!r}")
        name = operation
        try:
            body_bytes = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            raise errors.Validation("request body is too large") from None
        principal, unconfirmed = await caller.signed(request, services, body_bytes, name)
        try:
            payload = _decode(body_bytes)
        except (ValueError, RecursionError):
            raise errors.Serialization("the request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise errors.Serialization("the request body must be a JSON object")
        # -- input shape (botocore's model), before any action runs ------------------------
        try:
            shapes.validate("ecr", name, payload)
        except shapes.ShapeError as exc:
            raise errors.EcrError(exc.code, exc.message, 400) from None
        # ----------------------------------------------------------------------------------
        call = EcrCall(request, services, principal, name, unconfirmed)
        try:
            await call.authorize(ECR_OPERATIONS[name], payload)
        except CallerUnconfirmed:  # the key changed since remembered: the long way
            principal, unconfirmed, call = None, None, None
            principal = await caller.confirmed(request, services, body_bytes)
            call = EcrCall(request, services, principal, name)
            await call.authorize(ECR_OPERATIONS[name], payload)
        result = await ACTIONS[name](call, payload)
    except errors.EcrError as exc:
        error = exc
    except DomainError as exc:
        error = errors.from_domain(exc)
    except ConnectionResetError:  # the client went away: connections.py logs one line
        raise
    except Exception:
        log.exception("ECR %s failed", target)
        error = errors.Server("internal error")
    if call is not None:
        unconfirmed = call.confirm
    if unconfirmed is not None:  # answered before its statement confirmed the caller's key
        try:
            principal = await caller.confirmed(request, services, body_bytes)
        except errors.EcrError as exc:
            principal, result, error = None, None, exc
    if name:
        context = call.gathered_context if call is not None else None
        await record_call(
            request, services, name, principal, payload, result, error, request_id, context
        )
    if error is not None:
        return _render(error.status, error.body(), request_id)
    return _render(200, result or {}, request_id)


async def record_call(
    request: web.Request,
    services: Services,
    operation: str,
    principal: Principal | None,
    payload: dict[str, Any] | None,
    result: dict[str, Any] | None,
    error: errors.EcrError | None,
    request_id: str,
    context: RequestContext | None = None,
) -> None:
    """One audit record per call of a known operation, with the repository it names
    (`context`: the request's facts, if the call's authorization gathered them)."""
    account = principal.account_id if principal else services.settings.account_id
    params = payload if isinstance(payload, dict) else None
    resources = []
    owner = None
    if params is not None:
        registry_id = params.get("registryId")
        if isinstance(registry_id, str) and _ACCOUNT.fullmatch(registry_id):
            owner = registry_id  # another account's registry: its owner sees the call too
        if "layerPartBlob" in params:  # up to 20 MiB of layer bytes: not a parameter to keep
            params = {k: v for k, v in params.items() if k != "layerPartBlob"}
        repository = params.get("repositoryName")
        if isinstance(repository, str):
            region = regions.current(services.settings.region)
            arn = f"arn:aws:ecr:{region}:{owner or account}:repository/{repository}"
            resources.append(Resource("AWS::ECR::Repository", repository, arn))
    call = ("ecr", operation, request_id)
    await audit_api_call(
        request, services, call, principal, params, result, error, resources, owner, context
    )
