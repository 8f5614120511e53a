"""The signer API's errors: each carries the exception name (`code`, the class name) and the
HTTP status botocore's `signer` model gives it, so the REST door renders every one mechanically."""

from __future__ import annotations

from cargobay.aws.errors import AwsServiceError


class SignerError(AwsServiceError):
    code = "InternalServiceErrorException"
    client_fault = False
    status = 500


class ValidationException(SignerError):
    status = 400


class ResourceNotFoundException(SignerError):
    status = 404


class AccessDeniedException(SignerError):
    status = 403


class BadRequestException(SignerError):
    status = 400
