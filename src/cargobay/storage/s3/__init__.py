"""The S3 backend: `config` (the `s3://` URL), `objects` (bucket calls), `uploads` (the
upload-piece state machine and multipart assembly) and `store` (the BlobStore).

`S3Store` (with `client`, the S3 calls over http.client, and `transport`, their signing and
retries) is imported on first use: checking a storage URL (which the `serve` supervisor does)
loads no client at all, and a serving worker loads no AWS library (see credentials.py for
the one exception)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cargobay.storage.s3.config import S3Config, parse_url

if TYPE_CHECKING:
    from cargobay.storage.s3.store import S3Store

__all__ = ["S3Config", "S3Store", "open_s3", "parse_url"]


def open_s3(url: str) -> S3Store:
    """The store an `s3://` URL names (the factory registered for the `s3` scheme)."""
    from cargobay.storage.s3.store import S3Store

    return S3Store(parse_url(url))


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        from cargobay.storage.s3.store import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
