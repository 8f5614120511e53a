"""Many rows of one INSERT in a write transaction, at the driver level where that is cheaper.

On a SQLite file the write transaction runs on the event loop under the writer lock
(`Database.write`), and SQLAlchemy's execution machinery (parameter processing, execution
context) costs more than SQLite's own inserts: a `BatchInsert` compiles its statement once and
runs it with the driver's (sqlite3) `executemany`, rows as tuples. Elsewhere (PostgreSQL, an
in-memory SQLite of tests) it is SQLAlchemy's executemany of the same statement. Either way
each statement counts as one (`roundtrips`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import sqlite

from cargobay.metadata import roundtrips
from cargobay.metadata.conn import Conn


class BatchInsert:
    """An INSERT (or INSERT ... SELECT) whose bound parameters are `names`, run for many rows
    (tuples in `names` order)."""

    __slots__ = ("_sqlite", "names", "statement")

    def __init__(self, statement: Any, names: Sequence[str], *, column_keys: bool = False) -> None:
        self.statement = statement
        self.names = tuple(names)
        compiled = statement.compile(
            dialect=sqlite.dialect(), column_keys=list(names) if column_keys else None
        )
        order = tuple(self.names.index(n) for n in compiled.positiontup or ())
        # (SQLite text, the position in a row of each `?`, None when they are in order)
        self._sqlite = (str(compiled), None if order == tuple(range(len(names))) else order)

    async def run(self, conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        driver = getattr(conn, "driver", None)
        if driver is not None and conn.dialect.name == "sqlite":
            sql, order = self._sqlite
            count = roundtrips.current()
            if count is not None:
                count.value += 1
            params = rows if order is None else [tuple(row[i] for i in order) for row in rows]
            driver().executemany(sql, params)
            return
        names = self.names
        await conn.execute(self.statement, [dict(zip(names, row, strict=True)) for row in rows])
