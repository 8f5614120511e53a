"""`POST /` with `X-Amz-Target: secretsmanager.<Op>`: verify SigV4 (service
`secretsmanager`), check the operation's entry in the authorization table on the secret's ARN,
run `secrets.operations.dispatch` and render the result or the error in AWS JSON 1.1."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from aiohttp import web

from cargobay.aws import shapes
from cargobay.errors import DomainError
from cargobay.iam import permissions
from cargobay.iam.authz import SecretResource
from cargobay.iam.awsrequest import BodyTooLarge, read_body, signed_principal
from cargobay.iam.principal import Principal
from cargobay.iam.sigv4 import SigV4Error
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context
from cargobay.secrets import operations, rules
from cargobay.secrets.errors import InvalidParameterException, SecretsError
from cargobay.secretsapi.errors import render

log = logging.getLogger("cargobay.secretsmanager")

TARGET_PREFIX = "secretsmanager."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY = 1024 * 1024  # a secret value is at most 64 KiB


def wants(request: web.Request) -> bool:
    return request.headers.get("X-Amz-Target", "").startswith(TARGET_PREFIX)


def _answer(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "Content-Type": CONTENT_TYPE}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = body["__type"]
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def _error(code: str, message: str, status: int, request_id: str) -> web.Response:
    return _answer(status, {"__type": code, "message": message, "Message": message}, request_id)


def secret_resource(
    principal: Principal, region: str, kind: str, payload: dict[str, Any]
) -> SecretResource:
    """The secret an operation acts on: `SecretId` as given when it is an ARN, else
    `arn:aws:secretsmanager:<region>:<account>:secret:<name>` (policies name secrets with a
    trailing `*`, as AWS's random suffix asks anyway)."""
    account = principal.account_id
    if kind == permissions.SECRETS:
        return SecretResource(account)
    secret_id = payload.get("SecretId", payload.get("Name"))
    if not isinstance(secret_id, str) or not secret_id:
        raise InvalidParameterException("SecretId (or Name) is required.")
    ref = rules.parse_secret_id(secret_id)
    if ref.arn is not None:
        return SecretResource(ref.account_id or account, ref.arn)
    return SecretResource(account, f"arn:aws:secretsmanager:{region}:{account}:secret:{ref.name}")


async def handle(request: web.Request, services: Services) -> web.Response:
    request_id = str(uuid.uuid4())
    target = request.headers.get("X-Amz-Target", "")
    operation = target[len(TARGET_PREFIX) :]
    permission = permissions.SECRETS_OPERATIONS.get(operation)
    if permission is None or operation not in operations.OPERATIONS:
        return _error("UnknownOperationException", f"Unknown operation {target!r}", 400, request_id)
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        return _error("ValidationException", "request body is too large", 400, request_id)
    try:
        principal = await signed_principal(request, services.credentials, body, "secretsmanager")
    except SigV4Error as exc:
        return _error(exc.code, exc.message, exc.status, request_id)
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return _error("SerializationException", "the body is not valid JSON", 400, request_id)
    if not isinstance(payload, dict):
        return _error("SerializationException", "the body must be a JSON object", 400, request_id)
    # -- input shape (botocore's model), before authorization and the operation -------------
    try:
        shapes.validate("secretsmanager", operation, payload)
    except shapes.ShapeError as exc:
        return _error(exc.code, exc.message, 400, request_id)
    try:
        region = services.settings.region
        resource = secret_resource(principal, region, permission.resource, payload)
        context = request_context(request, services.settings.trusted_proxies)
        for action in permission.actions:
            await services.authorizer.require(principal, action, resource, context)
        account = principal.account_id
        result = await operations.dispatch(services.secrets, account, operation, payload)
        return _answer(200, result, request_id)
    except (SecretsError, DomainError) as exc:
        rendered = render(exc)
        if rendered is None:
            log.error("no Secrets Manager mapping for %s: answering 500", type(exc).__name__)
            return _error("InternalServiceError", "internal error", 500, request_id)
        return _error(rendered[0], getattr(exc, "message", str(exc)), rendered[1], request_id)
    except Exception:
        log.exception("Secrets Manager %s failed", operation)
        return _error("InternalServiceError", "internal error", 500, request_id)
