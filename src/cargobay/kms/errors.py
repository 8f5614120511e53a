"""KMS's errors as domain exceptions. Each class is named as its error shape in botocore's
`kms` model, which is its `code` (the `__type` a JSON 1.1 door returns), so the door maps
every one of them mechanically; `client_fault` tells it 4xx from 5xx."""

from __future__ import annotations

from cargobay.aws.errors import AwsServiceError


class KmsError(AwsServiceError):
    code = "KMSInternalException"


class NotFoundException(KmsError):
    """No such key or alias (or the key was deleted)."""


class DisabledException(KmsError):
    """The key is disabled."""


class KMSInvalidStateException(KmsError):
    """The key's state (PendingDeletion, ...) does not allow the operation."""


class AlreadyExistsException(KmsError):
    pass


class InvalidAliasNameException(KmsError):
    pass


class InvalidArnException(KmsError):
    pass


class InvalidCiphertextException(KmsError):
    """The ciphertext is malformed, tampered, or bound to another context."""


class IncorrectKeyException(KmsError):
    """The ciphertext was not encrypted under the KeyId the caller named."""


class InvalidKeyUsageException(KmsError):
    """The key's usage or spec does not allow the operation or algorithm."""


class KMSInvalidSignatureException(KmsError):
    """Verify: the signature does not match."""


class ValidationException(KmsError):
    pass


class MalformedPolicyDocumentException(KmsError):
    pass


class UnsupportedOperationException(KmsError):
    pass


class LimitExceededException(KmsError):
    pass


class TagException(KmsError):
    pass


class InvalidMarkerException(KmsError):
    pass


class AccessDeniedException(KmsError):
    pass


class KMSInternalException(KmsError):
    client_fault = False


class InvalidGrantIdException(KmsError):
    pass


class InvalidGrantTokenException(KmsError):
    pass
