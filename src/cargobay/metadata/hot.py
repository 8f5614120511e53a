"""The hottest lookups of the request path, run on the driver directly on a SQLite file.

SQLAlchemy's execution machinery (connection checkout, execution context, result metadata)
costs about 90 us per statement, nine times what SQLite takes to answer an indexed lookup:
for the one statement of a manifest GET that is most of the request. A `HotRead` compiles its
statement once per dialect and, on a SQLite file, runs it on the process's own driver
connection (`Database.loop_driver`); on PostgreSQL it runs outside a transaction on an engine
that does not ping (`Database.autocommit_reader`), so the statement is the one round trip.
Either way it is counted as one statement (`roundtrips`).

On SQLite the statement is compiled with named parameters (each name bound once however often
the statement uses it) and its constants written into the text: SQLite binds a handful of
values instead of every occurrence, the caller's dict is passed as it is, and the planner sees
the constants.
"""

from __future__ import annotations

import re
from collections import namedtuple
from typing import Any

from sqlalchemy import CompoundSelect, Select, literal
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

from cargobay.metadata import roundtrips
from cargobay.metadata.db import Database

_NAMED = sqlite.dialect(paramstyle="named")
_PARAMETER = re.compile(r":(\w+)")


def _literal(value: Any) -> str:
    """A constant as SQL text (SQLAlchemy's own literal rendering for SQLite)."""
    return str(literal(value).compile(dialect=_NAMED, compile_kwargs={"literal_binds": True}))


class HotRead:
    """One SELECT whose first row is read by `first` (or every row, by `all`), with named
    columns like a Row's."""

    __slots__ = ("_sqlite", "row_type", "statement")

    def __init__(self, statement: Select | CompoundSelect) -> None:
        self.statement = statement
        self.row_type = namedtuple("HotRow", [c.key for c in statement.selected_columns])  # type: ignore[misc]
        self._sqlite: str | None = None  # the SQL text for SQLite's driver, once compiled

    def _compile(self) -> str:
        """The statement for SQLite's driver: named parameters, constants as literals (a
        parameter that has a value when the statement is built is a constant: no caller
        passes it)."""
        compiled = self.statement.compile(dialect=_NAMED)
        constants = {
            k: _literal(v)
            for k, v in compiled.construct_params(_check=False).items()
            if v is not None
        }

        def substitute(match: re.Match[str]) -> str:
            return constants.get(match.group(1), match.group(0))

        self._sqlite = sql = _PARAMETER.sub(substitute, str(compiled))
        return sql

    async def first(self, db: Database, params: dict[str, Any]) -> Any | None:
        driver = db.loop_driver()
        if driver is None:
            return await self._first_elsewhere(db, params)
        roundtrips.add()
        found = driver.execute(self._sqlite or self._compile(), params).fetchone()
        return None if found is None else self.row_type(*found)

    async def all(self, db: Database, params: dict[str, Any]) -> list[Any]:
        """Every row of the statement (for a statement whose rows are bounded by its
        parameters: a batch's <= 100 names)."""
        driver = db.loop_driver()
        if driver is None:
            return await self._all_elsewhere(db, params)
        roundtrips.add()
        rows = driver.execute(self._sqlite or self._compile(), params).fetchall()
        return [self.row_type(*found) for found in rows]

    async def _all_elsewhere(self, db: Database, params: dict[str, Any]) -> list[Any]:
        engine = db.autocommit_reader()
        if engine is None:  # in-memory SQLite (tests)
            async with db.read_now() as conn:
                return list((await conn.execute(self.statement, params)).all())
        for attempt in (1, 2):
            try:
                async with engine.connect() as conn:
                    return list((await conn.execute(self.statement, params)).all())
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def _first_elsewhere(self, db: Database, params: dict[str, Any]) -> Any | None:
        """On PostgreSQL: one round trip on the autocommit engine, retried once on a
        connection the server dropped (that engine does not ping first)."""
        engine = db.autocommit_reader()
        if engine is None:  # in-memory SQLite (tests)
            async with db.read_now() as conn:
                return (await conn.execute(self.statement, params)).first()
        for attempt in (1, 2):
            try:
                async with engine.connect() as conn:
                    return (await conn.execute(self.statement, params)).first()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")
