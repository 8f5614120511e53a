"""Storage backends by URL scheme: `open_store(url)` looks the scheme up in one table.

A backend registers a factory (URL -> BlobStore) and, optionally, a checker that validates the
URL without opening anything (configuration is checked by the `serve` supervisor, which never
opens a store and should not load a backend's libraries). A wrapper backend (one that encrypts,
say) registers its own scheme the same way. The built-in factories import their modules only
when called, so naming a backend costs nothing until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cargobay.storage.base import BlobStore

StoreFactory = Callable[[str], BlobStore]
UrlCheck = Callable[[str], None]


@dataclass(frozen=True)
class Backend:
    factory: StoreFactory
    check: UrlCheck | None = None


_BACKENDS: dict[str, Backend] = {}


def register_backend(scheme: str, factory: StoreFactory, check: UrlCheck | None = None) -> None:
    """Make `scheme://...` storage URLs open with `factory` (replacing any earlier entry)."""
    _BACKENDS[scheme.lower()] = Backend(factory, check)


def schemes() -> list[str]:
    return sorted(_BACKENDS)


def _backend(url: str) -> Backend:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    backend = _BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in schemes())
        # Only the scheme is shown: the rest of a URL may hold credentials.
        shown = f"scheme {scheme}://" if scheme else "without a scheme"
        raise ValueError(f"unsupported storage URL {shown}: use one of {known}")
    return backend


def check_url(url: str) -> None:
    """Raise ValueError (one line, never echoing secrets) when `url` names no usable store."""
    backend = _backend(url)
    if backend.check is not None:
        backend.check(url)


def open_store(url: str) -> BlobStore:
    """Create the store a storage URL names."""
    return _backend(url).factory(url)


# -- the built-in backends ---------------------------------------------------------------------


def _file_path(url: str) -> Path:
    path = url.split("://", 1)[1]
    if not path:
        raise ValueError("a file storage URL looks like file:///var/lib/cargobay/storage")
    return Path(path)


def _check_file(url: str) -> None:
    _file_path(url)


def _open_file(url: str) -> BlobStore:
    from cargobay.storage.filesystem import FilesystemStore

    return FilesystemStore(_file_path(url))


def _check_s3(url: str) -> None:
    from cargobay.storage.s3.config import parse_url

    parse_url(url)


def _open_s3(url: str) -> BlobStore:
    from cargobay.storage.s3 import open_s3

    return open_s3(url)


register_backend("file", _open_file, _check_file)
register_backend("s3", _open_s3, _check_s3)
