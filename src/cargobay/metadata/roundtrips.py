"""Counting the statements a request sends to the database.

Round trips per request are what a shared PostgreSQL primary pays for, so the benchmark and
the N+1 regression tests read them here: every engine counts each statement it executes into
the counter of the request (a context variable) that caused it. Off the request path (no
counter set) counting costs one context-variable read per statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

HEADER = "X-Cargobay-Db-Statements"


class StatementCount:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_current: ContextVar[StatementCount | None] = ContextVar("cargobay_db_statements", default=None)


@contextmanager
def counting() -> Iterator[StatementCount]:
    """Count the statements run by this task (and threads it hands a copy of its context)."""
    count = StatementCount()
    token = _current.set(count)
    try:
        yield count
    finally:
        _current.reset(token)


def current() -> StatementCount | None:
    return _current.get()


def add(statements: int = 1) -> None:
    """Count statements run outside SQLAlchemy (on the driver) for the request being counted."""
    count = _current.get()
    if count is not None:
        count.value += statements


def _on_execute(*_args: Any) -> None:
    count = _current.get()
    if count is not None:
        count.value += 1


def install(engine: Engine) -> None:
    """Count every statement `engine` executes (for an asyncio engine: its `sync_engine`)."""
    if not event.contains(engine, "before_cursor_execute", _on_execute):
        event.listen(engine, "before_cursor_execute", _on_execute)
