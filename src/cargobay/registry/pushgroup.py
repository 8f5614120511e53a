"""Group commit of one process's pushes on a SQLite file.

A SQLite file has one writer at a time, and each push's write transaction paid, besides its
own statements, for the writer lock (with another worker holding it: a thread that waits for
its `flock`), BEGIN IMMEDIATE and the COMMIT's WAL write, about half the push's CPU under
load. Pushes of a worker that arrive while it waits for the writer lock, or while a batch
runs, now share one transaction: each runs its own statements in its own task (its request's
context: statement counts, region) between `SAVEPOINT` and `RELEASE`, and an error rolls back
to its savepoint, undoing that push only. Nothing is answered before the COMMIT: each push
returns (or raises the COMMIT's error) only once the transaction holding it has committed,
so a committed push is durable exactly as before. A lone push is a batch of one. Elsewhere
(PostgreSQL, where pushes run in parallel on their own connections) `Database.write` is used
as it is.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import text

from cargobay.metadata import roundtrips
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database

T = TypeVar("T")

# At most this many pushes share a transaction: the writer lock is held while they run, and
# the other workers' writers wait for it.
MAX_BATCH = 16


class _Member:
    """One push waiting for, running in, or waiting for the COMMIT of a batch."""

    __slots__ = ("committed", "ran", "turn")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.turn: asyncio.Future[Conn] = loop.create_future()  # the batch's connection
        self.ran: asyncio.Future[None] = loop.create_future()  # its statements are done
        self.committed: asyncio.Future[None] = loop.create_future()


class PushGroup:
    """The pushes of one process that share write transactions (`run`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Member] = deque()
        self._batch: asyncio.Task[None] | None = None

    async def run(self, body: Callable[[Conn], Awaitable[T]]) -> T:
        """`body(conn)` in a write transaction, maybe shared with other pushes: its result
        once that transaction has committed; its own error (its statements undone) as soon
        as it fails."""
        if not self.db.writes_in_turn:
            async with self.db.write() as conn:
                return await body(conn)
        loop = asyncio.get_running_loop()
        member = _Member(loop)
        batch = self._batch
        if batch is not None and batch.get_loop() is not loop:  # a new event loop (tests)
            self._queue, batch = deque(), None
        self._queue.append(member)
        if batch is None or batch.done():
            # The batch task runs in a context of its own: its BEGIN is no request's.
            self._batch = loop.create_task(self._lead(), context=contextvars.Context())
        try:
            conn = await member.turn
        except asyncio.CancelledError:
            if member.turn.done() and not member.turn.cancelled():
                member.ran.set_result(None)  # given the turn as it was cancelled: nothing ran
            raise
        broken: BaseException | None = None  # the transaction's own failure, if any
        try:
            await _savepoint(conn, "SAVEPOINT push")
            try:
                result = await body(conn)
            except BaseException:
                try:
                    await _savepoint(conn, "ROLLBACK TO push", "RELEASE push")
                except BaseException as exc:  # the transaction is gone: the batch fails
                    broken = exc
                raise
            try:
                await _savepoint(conn, "RELEASE push")
            except BaseException as exc:
                broken = exc
                raise
        finally:
            if broken is None:
                member.ran.set_result(None)
            else:
                member.ran.set_exception(broken)
        await member.committed
        return result

    async def _lead(self) -> None:
        """One transaction: the queued pushes' turns, one after the other (those queued
        meanwhile too, up to MAX_BATCH), then the COMMIT; then the next batch if any waits."""
        members: list[_Member] = []
        begun = False
        try:
            async with self.db.write() as conn:
                begun = True
                while self._queue and len(members) < MAX_BATCH:
                    member = self._queue.popleft()
                    if member.turn.done():  # cancelled while queued
                        continue
                    members.append(member)
                    member.turn.set_result(conn)
                    await member.ran  # a failed push has rolled back to its savepoint
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            for member in members:
                _fail(member.committed, exc, cancelled)
            if not begun:  # no transaction (the writer lock, BEGIN): the waiting pushes fail
                while self._queue:
                    _fail(self._queue.popleft().turn, exc, cancelled)
            elif self._queue:
                self._next()
            if not isinstance(exc, Exception):
                raise
            return
        for member in members:
            if not member.committed.done():
                member.committed.set_result(None)
        if self._queue:
            self._next()

    def _next(self) -> None:
        loop = asyncio.get_running_loop()
        self._batch = loop.create_task(self._lead(), context=contextvars.Context())


def _fail(future: asyncio.Future[Any], exc: BaseException, cancelled: bool) -> None:
    """A push's turn or COMMIT failed with the transaction's error (the same one each)."""
    if future.done():
        return
    if cancelled:
        future.cancel()
    else:
        future.set_exception(exc)


async def _savepoint(conn: Conn, *statements: str) -> None:
    """Run these on the transaction's driver (sqlite3) connection, or through SQLAlchemy when
    it offers none. A push's SAVEPOINT counts as its statement where its BEGIN did, RELEASE
    as little as COMMIT did (`roundtrips`)."""
    driver = getattr(conn, "driver", None)
    if driver is None:
        for sql in statements:
            await conn.execute(text(sql))
        return
    sqlite = driver()
    for sql in statements:
        if sql.startswith("SAVEPOINT"):
            count = roundtrips.current()
            if count is not None:
                count.value += 1
        sqlite.execute(sql)
