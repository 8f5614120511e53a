"""LookupEvents reads an index for every attribute it can (issue 19's flat costs): on SQLite,
a regional lookup by event name, user or access key reads that attribute's index (migration
0032), not the region's index filtered record by record."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite

from cargobay.audit import query
from cargobay.metadata import migrations, schema


def _plan(path: Path, key: str, value: str) -> str:
    t = schema.audit_records
    statement = (
        query.select(t)
        .where(t.c.account_id == "111111111111", t.c.region == "us-east-1")
        .where(query._condition(key, value))
        .order_by(t.c.event_time.desc(), t.c.id.desc())
        .limit(51)
    )
    text = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(path) as conn:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + text))


@pytest.mark.parametrize(
    ("key", "index"),
    [
        ("EventName", "ix_audit_records_name"),
        ("Username", "ix_audit_records_user"),
        ("AccessKeyId", "ix_audit_records_key"),
        ("EventId", "sqlite_autoindex_audit_records_1"),
    ],
)
def test_a_regional_lookup_by_attribute_reads_its_index(
    tmp_path: Path, key: str, index: str
) -> None:
    asyncio.run(migrations.upgrade(f"sqlite:///{tmp_path / 'm.db'}"))
    plan = _plan(tmp_path / "m.db", key, "x")
    assert f"USING INDEX {index} " in plan, plan
    assert "SCAN audit_records" not in plan and "TEMP B-TREE" not in plan, plan
