"""The AWS JSON 1.1 endpoint: `POST /` with `X-Amz-Target`, SigV4 on every call.

This module only speaks the protocol: it verifies the signature, finds the caller, decodes the
JSON body, checks the operation's entry in the authorization table (`iam.permissions`),
dispatches to the action and renders the result or the AWS error shape.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cargobay.aws import shapes
from cargobay.ecr import errors
from cargobay.ecr.context import EcrCall
from cargobay.errors import DomainError
from cargobay.iam.awsrequest import BodyTooLarge, read_body, signed_principal
from cargobay.iam.permissions import ECR_OPERATIONS
from cargobay.iam.sigv4 import SigV4Error
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.ecr")

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
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


def _render(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "Content-Type": CONTENT_TYPE}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


async def handle(request: web.Request, services: Services) -> web.Response:
    """Serve one ECR API call."""
    request_id = str(uuid.uuid4())
    target = request.headers.get("X-Amz-Target", "")
    try:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in ACTIONS or operation not in ECR_OPERATIONS:
            raise errors.UnknownOperation(f"Unknown operation {target!r}")
        name = operation
        try:
            body_bytes = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            raise errors.Validation("request body is too large") from None
        try:
            principal = await signed_principal(
                request, services.credentials, body_bytes, "ecr", (services.settings.region,)
            )
        except SigV4Error as exc:
            raise errors.EcrError(exc.code, exc.message, exc.status) from None
        try:
            payload = json.loads(body_bytes or b"{}")
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
        call = EcrCall(request, services, principal, name)
        await call.authorize(ECR_OPERATIONS[name], payload)
        result = await ACTIONS[name](call, payload)
        return _render(200, result, request_id)
    except errors.EcrError as exc:
        return _render(exc.status, exc.body(), request_id)
    except DomainError as exc:
        mapped = errors.from_domain(exc)
        return _render(mapped.status, mapped.body(), request_id)
    except ConnectionResetError:  # the client went away: connections.py logs one line
        raise
    except Exception:
        log.exception("ECR %s failed", target)
        return _render(500, errors.Server("internal error").body(), request_id)
