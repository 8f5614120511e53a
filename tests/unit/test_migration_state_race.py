"""Reading a database's schema state while another node builds it: the revision is read, then
the tables; a node whose schema (tables and revision, one transaction) committed between the
two reads must not look like a database that lost its revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext

from cargobay.metadata import migrations


def test_schema_built_between_the_two_reads_counts_as_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    asyncio.run(migrations.upgrade(url))
    real = MigrationContext.get_current_revision
    calls = []

    def first_read_before_the_commit(self: MigrationContext) -> str | None:
        calls.append(1)
        return None if len(calls) == 1 else real(self)

    monkeypatch.setattr(MigrationContext, "get_current_revision", first_read_before_the_commit)
    state = asyncio.run(migrations.state(url))
    assert len(calls) == 2
    assert state.current == migrations.head() and state.up_to_date


def test_tables_without_any_revision_are_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    asyncio.run(migrations.upgrade(url))
    monkeypatch.setattr(MigrationContext, "get_current_revision", lambda self: None)
    with pytest.raises(migrations.MigrationError, match="no schema revision"):
        asyncio.run(migrations.state(url))
