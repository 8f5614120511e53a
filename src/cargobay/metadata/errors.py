"""Errors the start-up path raises, importable without the database libraries."""

from __future__ import annotations


class SchemaOutOfDate(RuntimeError):
    """The database schema is not at the revision this code needs; the message says what to do."""
