"""Secrets Manager operations by their AWS names, for the door: `dispatch` takes the decoded
JSON body of an AWS JSON 1.1 request (botocore's member names) and returns the JSON-ready
answer, so a door only authenticates, authorizes, and maps `SecretsError.code` to the
`__type` of an error answer.

Replication and rotation are not offered: requests asking for them are refused rather than
half-done. Members with no effect here (BlockPublicPolicy, PolicyName, Type) are accepted.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import re
from typing import Any

from cargobay.secrets.errors import InvalidParameterException, InvalidRequestException
from cargobay.secrets.service import SecretsService

OPERATIONS = {
    "CreateSecret": "create_secret",
    "GetSecretValue": "get_secret_value",
    "PutSecretValue": "put_secret_value",
    "UpdateSecret": "update_secret",
    "DescribeSecret": "describe_secret",
    "ListSecrets": "list_secrets",
    "DeleteSecret": "delete_secret",
    "RestoreSecret": "restore_secret",
    "TagResource": "tag_resource",
    "UntagResource": "untag_resource",
    "GetResourcePolicy": "get_resource_policy",
    "PutResourcePolicy": "put_resource_policy",
    "DeleteResourcePolicy": "delete_resource_policy",
}
IGNORED = frozenset({"BlockPublicPolicy", "PolicyName", "Type"})
UNSUPPORTED = frozenset(
    {"AddReplicaRegions", "ForceOverwriteReplicaSecret", "RotationToken", "CrossAccountPrimaryARN"}
)
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake(member: str) -> str:
    """`RecoveryWindowInDays` -> `recovery_window_in_days`."""
    return _SNAKE.sub("_", member).lower()


def _arguments(operation: str, method: Any, params: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(method).parameters
    arguments: dict[str, Any] = {}
    for member, value in params.items():
        if member in IGNORED:
            continue
        if member in UNSUPPORTED:
            raise InvalidRequestException(f"{member} is not supported by this registry.")
        name = snake(member)
        if name not in parameters or name == "account_id":
            raise InvalidParameterException(f"{operation} does not take {member}.")
        arguments[name] = value
    for name, parameter in parameters.items():
        required = parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty
        if required and arguments.get(name) is None:
            member = "".join(part.capitalize() for part in name.split("_"))
            raise InvalidParameterException(f"{operation} requires {member}.")
    if isinstance(arguments.get("secret_binary"), str):
        try:
            arguments["secret_binary"] = base64.b64decode(arguments["secret_binary"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterException("SecretBinary must be base64-encoded.") from None
    return arguments


async def dispatch(
    service: SecretsService, account_id: str, operation: str, params: Any
) -> dict[str, Any]:
    """Run `operation` with the request's JSON members; the answer is JSON-serialisable
    (SecretBinary as base64, timestamps as epoch seconds)."""
    method_name = OPERATIONS.get(operation)
    if method_name is None:
        raise InvalidRequestException(f"{operation} is not supported by this registry.")
    if not isinstance(params, dict):
        raise InvalidParameterException("The request body must be a JSON object.")
    method = getattr(service, method_name)
    result = await method(account_id, **_arguments(operation, method, params))
    if isinstance(result.get("SecretBinary"), bytes):
        result = {**result, "SecretBinary": base64.b64encode(result["SecretBinary"]).decode()}
    return result
