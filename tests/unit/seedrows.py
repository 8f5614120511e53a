"""Rows the unit tests seed a bare schema with, the table's required columns filled in."""

from __future__ import annotations

from typing import Any

from cargobay.metadata import schema


def repository(repository_id: int, registry_id: str, name: str, **columns: Any) -> Any:
    """The INSERT of a repository row as `CreateRepository` would leave it by default
    (mutable tags, no scan on push, AES256), `columns` changed; for a sync or async conn."""
    values = {
        "created_at": 0,
        "tag_mutability": "MUTABLE",
        "scan_on_push": False,
        "encryption_type": "AES256",
        **columns,
    }
    return schema.repositories.insert().values(
        id=repository_id, registry_id=registry_id, name=name, **values
    )
