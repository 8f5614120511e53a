"""The Secrets Manager API (`X-Amz-Target: secretsmanager.<Operation>`, SigV4 service
`secretsmanager`) as one `JsonService` of the AWS JSON 1.1 dispatcher, which reads, signs,
validates the input shape (botocore's model), authorizes and audits every call as it does for
KMS and CloudTrail (SecretString and SecretBinary are redacted from the audit record by
`audit.redact`).

This module only translates: `authorize` checks the operation's entry in
`iam.permissions.SECRETS_OPERATIONS` on the secret's ARN, and every handler is
`secrets.operations.dispatch` with the decoded body."""

from __future__ import annotations

from typing import Any

from cargobay.awsjson.door import JsonCall, JsonService, Operation
from cargobay.iam import permissions
from cargobay.iam.authz import SecretResource
from cargobay.secrets import operations, rules
from cargobay.secrets.errors import InvalidParameterException
from cargobay.secretsapi.errors import render

TARGET_PREFIX = "secretsmanager."


def secret_resource(
    account: str, region: str, kind: str, payload: dict[str, Any]
) -> SecretResource:
    """The secret an operation acts on: `SecretId` as given when it is an ARN, else
    `arn:aws:secretsmanager:<region>:<account>:secret:<name>` (policies name secrets with a
    trailing `*`, as AWS's random suffix asks anyway)."""
    if kind == permissions.SECRETS:
        return SecretResource(account)
    secret_id = payload.get("SecretId", payload.get("Name"))
    if not isinstance(secret_id, str) or not secret_id:
        raise InvalidParameterException("SecretId (or Name) is required.")
    ref = rules.parse_secret_id(secret_id)
    if ref.arn is not None:
        return SecretResource(ref.account_id or account, ref.arn)
    return SecretResource(account, f"arn:aws:secretsmanager:{region}:{account}:secret:{ref.name}")


async def authorize(call: JsonCall, payload: dict[str, Any]) -> None:
    permission = permissions.SECRETS_OPERATIONS[call.operation]
    resource = secret_resource(call.account_id, call.region, permission.resource, payload)
    context = call.context()
    for action in permission.actions:
        await call.services.authorizer.require(call.principal, action, resource, context)


async def dispatch(call: JsonCall, payload: dict[str, Any]) -> dict[str, Any]:
    secrets = call.services.secrets
    return await operations.dispatch(secrets, call.account_id, call.operation, payload)


SERVICE = JsonService(
    target_prefix=TARGET_PREFIX,
    signing_name="secretsmanager",
    operations={
        name: Operation(dispatch, permission.actions[0], permission.resource)
        for name, permission in permissions.SECRETS_OPERATIONS.items()
    },
    authorize=authorize,
    map_error=render,
    max_body=1024 * 1024,  # a secret value is at most 64 KiB
    shapes="secretsmanager",
)
