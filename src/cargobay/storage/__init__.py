"""Blob storage backends behind one interface (`BlobStore`), opened by URL scheme."""

from __future__ import annotations

from cargobay.storage.backends import check_url, open_store, register_backend
from cargobay.storage.base import BlobStore

__all__ = ["BlobStore", "check_url", "open_store", "register_backend"]
