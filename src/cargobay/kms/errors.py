"""KMS's errors as domain exceptions. `aws_name` is the `__type` a JSON 1.1 door returns, so
the door maps every one of them mechanically; `client_fault` tells it 4xx from 5xx."""

from __future__ import annotations


class KmsError(Exception):
    aws_name = "KMSInternalException"
    client_fault = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundException(KmsError):
    """No such key or alias (or the key was deleted)."""

    aws_name = "NotFoundException"


class DisabledException(KmsError):
    """The key is disabled."""

    aws_name = "DisabledException"


class KMSInvalidStateException(KmsError):
    """The key's state (PendingDeletion, ...) does not allow the operation."""

    aws_name = "KMSInvalidStateException"


class AlreadyExistsException(KmsError):
    aws_name = "AlreadyExistsException"


class InvalidAliasNameException(KmsError):
    aws_name = "InvalidAliasNameException"


class InvalidArnException(KmsError):
    aws_name = "InvalidArnException"


class InvalidCiphertextException(KmsError):
    """The ciphertext is malformed, tampered, or bound to another context."""

    aws_name = "InvalidCiphertextException"


class IncorrectKeyException(KmsError):
    """The ciphertext was not encrypted under the KeyId the caller named."""

    aws_name = "IncorrectKeyException"


class InvalidKeyUsageException(KmsError):
    """The key's usage or spec does not allow the operation or algorithm."""

    aws_name = "InvalidKeyUsageException"


class KMSInvalidSignatureException(KmsError):
    """Verify: the signature does not match."""

    aws_name = "KMSInvalidSignatureException"


class ValidationException(KmsError):
    aws_name = "ValidationException"


class MalformedPolicyDocumentException(KmsError):
    aws_name = "MalformedPolicyDocumentException"


class UnsupportedOperationException(KmsError):
    aws_name = "UnsupportedOperationException"


class LimitExceededException(KmsError):
    aws_name = "LimitExceededException"


class TagException(KmsError):
    aws_name = "TagException"


class InvalidMarkerException(KmsError):
    aws_name = "InvalidMarkerException"


class AccessDeniedException(KmsError):
    aws_name = "AccessDeniedException"


class KMSInternalException(KmsError):
    aws_name = "KMSInternalException"
    client_fault = False


class InvalidGrantIdException(KmsError):
    aws_name = "InvalidGrantIdException"


class InvalidGrantTokenException(KmsError):
    aws_name = "InvalidGrantTokenException"
