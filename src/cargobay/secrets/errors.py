"""Secrets Manager's errors as domain exceptions; `code` is the AWS error name a door sends."""

from __future__ import annotations


class SecretsError(Exception):
    code = "InternalServiceError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResourceNotFoundException(SecretsError):
    code = "ResourceNotFoundException"


class ResourceExistsException(SecretsError):
    code = "ResourceExistsException"


class InvalidRequestException(SecretsError):
    """The request is valid, but not for the secret's current state (e.g. marked deleted)."""

    code = "InvalidRequestException"


class InvalidParameterException(SecretsError):
    code = "InvalidParameterException"


class InvalidNextTokenException(SecretsError):
    code = "InvalidNextTokenException"


class LimitExceededException(SecretsError):
    code = "LimitExceededException"


class MalformedPolicyDocumentException(SecretsError):
    code = "MalformedPolicyDocumentException"


class DecryptionFailure(SecretsError):
    code = "DecryptionFailure"


class InternalServiceError(SecretsError):
    code = "InternalServiceError"
