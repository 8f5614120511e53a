"""The one table that renders errors at the Secrets Manager door as AWS `__type` names
(botocore's `secretsmanager` model): the secrets service's own errors carry their code; the
domain errors this door meets (authorization) are mapped here."""

from __future__ import annotations

from cargobay import errors as e
from cargobay.secrets import errors as s
from cargobay.secrets.pullthrough import CredentialSecretInvalid

# Secrets service error -> (__type, HTTP status).
SECRETS_ERRORS: dict[type[Exception], tuple[str, int]] = {
    s.ResourceNotFoundException: ("ResourceNotFoundException", 400),
    s.ResourceExistsException: ("ResourceExistsException", 400),
    s.InvalidRequestException: ("InvalidRequestException", 400),
    CredentialSecretInvalid: ("InvalidRequestException", 400),
    s.InvalidParameterException: ("InvalidParameterException", 400),
    s.InvalidNextTokenException: ("InvalidNextTokenException", 400),
    s.LimitExceededException: ("LimitExceededException", 400),
    s.MalformedPolicyDocumentException: ("MalformedPolicyDocumentException", 400),
    s.DecryptionFailure: ("DecryptionFailure", 400),
    s.InternalServiceError: ("InternalServiceError", 500),
    e.AccessDenied: ("AccessDeniedException", 400),
    e.Unauthenticated: ("UnrecognizedClientException", 400),
}


def render(error: Exception) -> tuple[str, int] | None:
    """(`__type`, status) for an error this door knows; None for anything else (a bug)."""
    return SECRETS_ERRORS.get(type(error))
