"""The signer API's errors: each carries the exception name and HTTP status botocore's
`signer` model gives it, so the REST door renders every one mechanically."""

from __future__ import annotations


class SignerError(Exception):
    aws_name = "InternalServiceErrorException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(SignerError):
    aws_name, status = "ValidationException", 400


class ResourceNotFoundException(SignerError):
    aws_name, status = "ResourceNotFoundException", 404


class AccessDeniedException(SignerError):
    aws_name, status = "AccessDeniedException", 403


class BadRequestException(SignerError):
    aws_name, status = "BadRequestException", 400
