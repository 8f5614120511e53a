"""The registry's error values.

Services raise these; each front door maps them to its own protocol in one place
(`distribution.errors` for OCI error JSON, the ECR adapter for AWS error shapes).
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """A failure with an OCI distribution-spec error code and HTTP status."""

    code = "UNKNOWN"
    status = 500
    default_message = "unknown error"

    def __init__(
        self, message: str | None = None, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class RangeInvalid(RegistryError):
    """An out-of-order chunk: 416 with the upload's current Range header."""

    code, status, default_message = "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"


class DigestInvalid(RegistryError):
    code, status, default_message = "DIGEST_INVALID", 400, "provided digest did not match content"


class ManifestBlobUnknown(RegistryError):
    code, status, default_message = "MANIFEST_BLOB_UNKNOWN", 400, "manifest references unknown blob"


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status = "SIZE_INVALID", 400
    default_message = "provided length did not match content length"


class PayloadTooLarge(RegistryError):
    code, status, default_message = "SIZE_INVALID", 413, "payload too large"


class TagInvalid(RegistryError):
    code, status, default_message = "TAG_INVALID", 400, "manifest tag did not match URI"


class TagImmutable(TagInvalid):
    """A push that would move a tag in a repository whose tags are immutable."""

    default_message = "tag is immutable and already points to another manifest"


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class DigestUnsupported(Unsupported):
    """A digest whose algorithm the registry does not implement: the distribution-spec asks for
    400 Bad Request here (405 would tell the client the method itself is not allowed)."""

    status = 400


class PaginationInvalid(RegistryError):
    code, status, default_message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results"


class TooManyRequests(RegistryError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class TransferCodingUnsupported(Unsupported):
    """A request body in a transfer coding other than chunked (`gzip, chunked`): RFC 9112
    asks for 501, and storing the still-encoded bytes would corrupt the blob."""

    status, default_message = 501, "transfer coding not implemented"
