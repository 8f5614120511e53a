"""The one connection type services and records are written against.

`Database` hands out three kinds of connection, each chosen for speed on its backend: an
asyncio `AsyncConnection` (PostgreSQL, in-memory SQLite), a synchronous SQLite connection run
on the event loop (`read_now`, `write` on a SQLite file) and one whose statements run in a
thread (`read` on a SQLite file). All three have the same small surface, this protocol, so no
caller ever needs to know which one it got.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Conn"]


@runtime_checkable
class Conn(Protocol):
    """An open transaction: run a statement, or one for a single value; `dialect` is for
    `metadata/` alone (the SQL helpers that differ by backend), never for services."""

    @property
    def dialect(self) -> Any: ...

    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...
