"""Upstream credentials for pull-through cache rules, kept as Secrets Manager secrets the way
ECR requires: the secret's name starts with `ecr-pullthroughcache/` and its value is JSON
`{"username": ..., "accessToken": ...}`."""

from __future__ import annotations

import json

from cargobay.secrets import rules
from cargobay.secrets.errors import InvalidParameterException, InvalidRequestException
from cargobay.secrets.service import SecretsService
from cargobay.upstream.auth import Credentials

PREFIX = "ecr-pullthroughcache/"


class CredentialSecretInvalid(InvalidRequestException):
    """The secret exists but is not a usable pull-through cache credential."""


def check_credential_name(name: str) -> None:
    if not name.startswith(PREFIX) or len(name) == len(PREFIX):
        raise InvalidParameterException(
            f"The secret name of a pull through cache credential must start with {PREFIX}"
        )


def credentials_from_value(value: str) -> Credentials:
    """Client credentials from a credential secret's SecretString (never echoed in errors)."""
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    username = document.get("username") if isinstance(document, dict) else None
    token = document.get("accessToken") if isinstance(document, dict) else None
    if not isinstance(username, str) or not username or not isinstance(token, str) or not token:
        raise CredentialSecretInvalid(
            'The secret value must be JSON with non-empty "username" and "accessToken" strings.'
        )
    return Credentials(username, token)


async def pull_through_credentials(
    service: SecretsService, account_id: str, credential_arn: str
) -> Credentials:
    """The upstream credentials a rule's `credentialArn` names (a secret ARN in this account
    and region), read as ECR's pull-through role. Raises the service's
    ResourceNotFoundException / InvalidRequestException (deleted), InvalidParameterException
    (not an ARN, wrong prefix), CredentialSecretInvalid, or AccessDenied (the secret's
    resource policy denies the role)."""
    ref = rules.parse_secret_id(credential_arn)
    if ref.arn is None:
        raise InvalidParameterException("credentialArn must be a Secrets Manager secret ARN.")
    check_credential_name(ref.name or "")
    answer = await service.pull_through_secret_value(account_id, credential_arn)
    check_credential_name(answer["Name"])
    if "SecretString" not in answer:
        raise CredentialSecretInvalid("A pull through cache credential must be a SecretString.")
    return credentials_from_value(answer["SecretString"])
