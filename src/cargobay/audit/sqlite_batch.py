"""A batch of audit records inserted into a SQLite file: each table's rows in one multi-row
statement, run in a thread of its own.

sqlite3 lets go of the GIL while SQLite steps a statement and takes it back to bind the next
row: an executemany of 200 rows in a thread takes the GIL back from the busy event loop 400
times, each a wait of up to the interpreter's switch interval (5 ms) while the loop runs Python,
and the writer lock is held all that time. A statement for all of a table's rows binds them in
one go, then steps once without the GIL: the loop goes on meanwhile at full speed, and the
thread is back for the GIL twice. The SQL is the same as `record`'s SQLAlchemy statements
(those run on PostgreSQL and in-memory SQLite): the records, then their resources found by
event id (`tests/unit/test_audit_write.py` compares the rows both write).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

Row = tuple[Any, ...]
Statement = tuple[str, list[Any]]

# The records' columns and the resources' values, in the order of `record._rows`' tuples.
RECORD_COLUMNS = (
    "event_id",
    "account_id",
    "event_time",
    "event_source",
    "event_name",
    "read_only",
    "user_name",
    "access_key_id",
    "record",
    "region",
)
RESOURCE_VALUES = ("resource_type", "resource_name", "event_id")

_RECORDS = f"INSERT INTO audit_records ({', '.join(RECORD_COLUMNS)}) VALUES {{}}"
# CROSS JOIN keeps the values outermost: each is looked up by the unique event id index.
_RESOURCES = (
    "INSERT INTO audit_resources (record_id, resource_type, resource_name) "
    "SELECT audit_records.id, v.column1, v.column2 FROM (VALUES {}) AS v "
    "CROSS JOIN audit_records ON audit_records.event_id = v.column3"
)


@lru_cache(maxsize=64)
def _text(template: str, width: int, rows: int) -> str:
    group = "(" + ", ".join("?" * width) + ")"
    return template.format(", ".join([group] * rows))


def statements(
    driver: sqlite3.Connection, records: Sequence[Row], resources: Sequence[Row]
) -> list[Statement]:
    """The statements inserting `records` (in `RECORD_COLUMNS` order) and `resources`
    (`RESOURCE_VALUES`): one a table, more where a table's values exceed what SQLite binds
    in one statement."""
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    out: list[Statement] = []
    for template, width, rows in (
        (_RECORDS, len(RECORD_COLUMNS), records),
        (_RESOURCES, len(RESOURCE_VALUES), resources),
    ):
        step = max(1, limit // width)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            out.append((_text(template, width, len(chunk)), [v for row in chunk for v in row]))
    return out


def run(driver: sqlite3.Connection, batch: list[Statement], *, commit: bool = False) -> None:
    """Run the statements in the caller's transaction, and COMMIT it if asked (the insert
    thread does: writing a batch's pages to the WAL was ~1.3 ms of a loop turn; the writer's
    own commit then finds no transaction open, and sqlite3 makes it a no-op)."""
    for sql, values in batch:
        driver.execute(sql, values)
    if commit:
        driver.commit()
