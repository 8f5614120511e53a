"""Secrets Manager's errors as domain exceptions, each named as its error shape in botocore's
`secretsmanager` model, which is its `code` (the AWS error name a door sends)."""

from __future__ import annotations

from cargobay.aws.errors import AwsServiceError


class SecretsError(AwsServiceError):
    code = "InternalServiceError"


class ResourceNotFoundException(SecretsError):
    pass


class ResourceExistsException(SecretsError):
    pass


class InvalidRequestException(SecretsError):
    """The request is valid, but not for the secret's current state (e.g. marked deleted)."""


class InvalidParameterException(SecretsError):
    pass


class InvalidNextTokenException(SecretsError):
    pass


class LimitExceededException(SecretsError):
    pass


class MalformedPolicyDocumentException(SecretsError):
    pass


class DecryptionFailure(SecretsError):
    pass


class InternalServiceError(SecretsError):
    pass
