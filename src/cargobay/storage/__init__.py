"""Blob storage backends behind one interface (`BlobStore`)."""

from __future__ import annotations

from cargobay.storage.base import BlobStore, open_store

__all__ = ["BlobStore", "open_store"]
