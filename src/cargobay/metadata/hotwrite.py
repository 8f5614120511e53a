"""The statements of a write transaction, at the driver level where that is cheaper.

The upload path's transactions are a few single-row statements each (claim a lease, move an
upload's size, register a blob). On a SQLite file they run on the event loop under the writer
lock (`Database.write`), and SQLAlchemy's execution machinery (statement keying, execution
context, result set-up) costs several times what SQLite takes to run them: a `HotWrite`
compiles its statement once per dialect and, in such a transaction, runs it on the driver
(sqlite3) connection. Elsewhere (PostgreSQL, an in-memory SQLite of tests) it is SQLAlchemy's
execution of the same statement. Either way it counts as one statement (`roundtrips`), and
`run` returns the rows it changed. `run_many` is one executemany of many rows, given as dicts
(the push's references) or as tuples in `names` order (the audit flush, which builds tuples: a
dict a row would cost more than SQLite's insert of it). A `HotSelect` is the same for a SELECT
read inside such a transaction (the push's check of its blobs).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import sqlite

from cargobay.metadata import roundtrips
from cargobay.metadata.conn import Conn


def _driver(conn: Conn) -> Any | None:
    """The sqlite3 connection of a SQLite file's write transaction, with the statement about
    to run on it counted (`roundtrips`); None where SQLAlchemy runs it."""
    return sqlite_driver(conn, 1)


def sqlite_driver(conn: Conn, statements: int) -> Any | None:
    """`_driver` for a caller that runs SQLite text of its own (the audit flush's multi-row
    inserts, run in a thread): its `statements` counted here, on the loop, in the request's
    context; None where SQLAlchemy runs statements."""
    driver = getattr(conn, "driver", None)
    if driver is None or conn.dialect.name != "sqlite":
        return None
    roundtrips.add(statements)
    return driver()


class HotWrite:
    """An INSERT, UPDATE or DELETE whose values are bound at execution, by name. `build` makes
    it for a dialect's name (an ON CONFLICT clause differs by dialect); `names` are the
    columns of an INSERT whose values are all bound, or an INSERT ... SELECT's parameters (the
    order of a tuple row of `run_many`)."""

    __slots__ = ("_build", "_built", "_names", "_order", "_sqlite")

    def __init__(self, build: Callable[[str], Any], names: tuple[str, ...] = ()) -> None:
        self._build = build
        self._names = names
        self._built: dict[str, Any] = {}
        # (SQLite text, bind names in order, literal binds' values), compiled on first use
        self._sqlite: tuple[str, tuple[str, ...], dict[str, Any]] | None = None
        # the position in a tuple row of each `?` (`()`: in order), on first use
        self._order: tuple[int, ...] | None = None

    @classmethod
    def of(cls, statement: Any, names: tuple[str, ...] = ()) -> HotWrite:
        """A statement that is the same on every dialect."""
        return cls(lambda _dialect: statement, names)

    def statement(self, dialect: str) -> Any:
        built = self._built.get(dialect)
        if built is None:
            built = self._built[dialect] = self._build(dialect)
        return built

    def _compiled(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        if self._sqlite is None:
            compiled = self.statement("sqlite").compile(
                dialect=sqlite.dialect(), column_keys=list(self._names) or None
            )
            constants = {
                k: v for k, v in compiled.construct_params(_check=False).items() if v is not None
            }
            self._sqlite = (str(compiled), tuple(compiled.positiontup or ()), constants)
        return self._sqlite

    async def run(self, conn: Conn, params: dict[str, Any]) -> int:
        """Run the statement in `conn`'s transaction; the number of rows it changed."""
        driver = _driver(conn)
        if driver is not None:
            sql, names, constants = self._compiled()
            values = [params[n] if n in params else constants[n] for n in names]
            return int(driver.execute(sql, values).rowcount)
        result = await conn.execute(self.statement(conn.dialect.name), params)
        return int(result.rowcount or 0)

    def _tuple_order(self) -> tuple[int, ...] | None:
        """Where in a tuple row each `?` of the SQLite text takes its value; None when the
        rows are already in that order (they go to the driver as they are)."""
        if self._order is None:
            positions = tuple(self._names.index(n) for n in self._compiled()[1])
            self._order = () if positions == tuple(range(len(positions))) else positions
        return self._order or None

    async def run_many(
        self, conn: Conn, rows: Sequence[Mapping[str, Any]] | Sequence[tuple[Any, ...]]
    ) -> None:
        """Run the statement once per row of `rows`, as one executemany (one statement);
        nothing when there are none. Rows are dicts by parameter name, or tuples in `names`
        order (every parameter among them)."""
        if not rows:
            return
        tuples = isinstance(rows[0], tuple)
        driver = _driver(conn)
        if driver is not None:
            sql, names, constants = self._compiled()
            values: Sequence[Any]
            if not tuples:
                values = [[row[n] if n in row else constants[n] for n in names] for row in rows]
            elif (order := self._tuple_order()) is not None:
                values = [tuple(row[i] for i in order) for row in rows]
            else:
                values = rows
            driver.executemany(sql, values)
            return
        if tuples:
            keys = self._names
            rows = [dict(zip(keys, row, strict=True)) for row in rows]
        await conn.execute(self.statement(conn.dialect.name), rows)


class HotSelect:
    """A SELECT run in a write transaction, its rows with named columns (attributes, like a
    Row's). At most one bound parameter may be an expanding one (`IN`), named `expanding`:
    its list is spread into as many placeholders as it has items."""

    __slots__ = ("_expanding", "_spread", "_sqlite", "row_type", "statement")

    def __init__(self, statement: Any, expanding: str | None = None) -> None:
        self.statement = statement
        self._expanding = expanding
        self.row_type = namedtuple("HotRow", [c.key for c in statement.selected_columns])  # type: ignore[misc]
        self._sqlite: tuple[str, tuple[str, ...], dict[str, Any]] | None = None
        # The SQLite text with its `IN` list spread into n placeholders, by n (a push has
        # one or two blobs mostly); bounded.
        self._spread: dict[int, str] = {}

    def _compiled(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=sqlite.dialect())
            constants = {
                k: v for k, v in compiled.construct_params(_check=False).items() if v is not None
            }
            self._sqlite = (str(compiled), tuple(compiled.positiontup or ()), constants)
        return self._sqlite

    async def all(self, conn: Conn, params: dict[str, Any]) -> list[Any]:
        """Every row of the statement in `conn`'s transaction."""
        spread = params[self._expanding] if self._expanding else None
        driver = None if spread == [] else _driver(conn)
        if driver is None:
            return list((await conn.execute(self.statement, params)).all())
        sql, names, constants = self._compiled()
        values: list[Any] = []
        for name in names:
            if name == self._expanding:
                values.extend(spread)  # type: ignore[arg-type]
            else:
                values.append(params[name] if name in params else constants[name])
        if spread is not None:
            sql = self._spread_text(sql, len(spread))
        return [self.row_type(*row) for row in driver.execute(sql, values).fetchall()]

    def _spread_text(self, sql: str, count: int) -> str:
        found = self._spread.get(count)
        if found is None:
            token = f"__[POSTCOMPILE_{self._expanding}]"
            found = sql.replace(token, ", ".join("?" * count))
            if len(self._spread) < 64:
                self._spread[count] = found
        return found
