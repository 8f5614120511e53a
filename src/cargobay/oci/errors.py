"""The domain errors the OCI-level code (digests, names, manifests) raises, re-exported from
`cargobay.errors` so parsers keep one short import. No status or OCI code lives here: the
`/v2/` door maps them in `distribution.errors`."""

from __future__ import annotations

from cargobay.errors import (
    BlobUnknown,
    DigestInvalid,
    DigestUnsupported,
    DomainError,
    ManifestInvalid,
    NameInvalid,
    PaginationInvalid,
    PayloadTooLarge,
    RangeInvalid,
    SizeInvalid,
    TagInvalid,
    TransferCodingUnsupported,
    Unsupported,
)

# The former base class's name, kept for code that catches "any registry error".
RegistryError = DomainError

__all__ = [
    "BlobUnknown",
    "DigestInvalid",
    "DigestUnsupported",
    "DomainError",
    "ManifestInvalid",
    "NameInvalid",
    "PaginationInvalid",
    "PayloadTooLarge",
    "RangeInvalid",
    "RegistryError",
    "SizeInvalid",
    "TagInvalid",
    "TransferCodingUnsupported",
    "Unsupported",
]
