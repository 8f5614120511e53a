"""Group commit of one process's pushes on a SQLite file.

A SQLite file has one writer at a time, and each push's write transaction paid, besides its
own statements, for the writer lock (with another worker holding it: a thread that waits for
its `flock`), BEGIN IMMEDIATE and the COMMIT's WAL write, about half the push's CPU under
load. Pushes of a worker that queue while it waits for the writer lock (or while its previous
batch runs) now share one transaction: each runs its own statements between `SAVEPOINT` and
`RELEASE`, in its own request's context (statement counts, region), and an error rolls back
to its savepoint, undoing that push only. Nothing is answered before the COMMIT: each push
returns (or raises the COMMIT's error) only once the transaction holding it has committed, so
a committed push is durable exactly as before. A lone push is a batch of one.

The pushes' statements run back to back, without the event loop's other work between them
(they only wait for SQLite, on the loop): the writer lock, which the other workers wait for,
is held no longer than their statements take. Elsewhere (PostgreSQL, where pushes run in
parallel on connections of their own) each push keeps its own `Database.write`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from sqlalchemy import text

from cargobay.metadata import roundtrips
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database

T = TypeVar("T")

# At most this many pushes share a transaction: the other workers' writers wait for it.
MAX_BATCH = 16


class _Member(Generic[T]):
    """One push: its statements, its request's context, and its answer once committed."""

    __slots__ = ("answer", "body", "context", "result")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, body: Callable[[Conn], Awaitable[T]]
    ) -> None:
        self.body = body
        self.context = contextvars.copy_context()
        self.answer: asyncio.Future[T] = loop.create_future()
        self.result: Any = None


class PushGroup:
    """The pushes of one process that share write transactions (`run`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Member[Any]] = deque()
        self._batch: asyncio.Task[None] | None = None

    async def run(self, body: Callable[[Conn], Awaitable[T]]) -> T:
        """`body(conn)` in a write transaction, maybe shared with other pushes: its result
        once that transaction has committed; its own error (its statements undone) as soon
        as it fails."""
        if not self.db.writes_in_turn:
            async with self.db.write() as conn:
                return await body(conn)
        if self.db.writing_here():
            # Queued behind its own transaction (a push from inside a write, or from a batch's
            # push), it would wait for itself: refused as `Database.write` refuses it.
            raise RuntimeError("nested write transaction")
        loop = asyncio.get_running_loop()
        member = _Member(loop, body)
        batch = self._batch
        if batch is not None and batch.get_loop() is not loop:  # a new event loop (tests)
            self._queue, batch = deque(), None
        self._queue.append(member)
        if batch is None or batch.done():
            self._start(loop)
        # Cancelled while queued: the batch skips it. Once its statements ran, it commits
        # with the others (as a push whose client went away after its COMMIT).
        return await member.answer

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        # In a context of its own: the batch's BEGIN is no request's statement.
        self._batch = loop.create_task(self._lead(), context=contextvars.Context())

    async def _lead(self) -> None:
        """One transaction: the queued pushes' statements, one push after the other, then the
        COMMIT; then the next batch if pushes queued meanwhile."""
        done: list[_Member[Any]] = []
        begun = False
        try:
            async with self.db.write(savepoints=True) as conn:
                begun = True
                while self._queue and len(done) < MAX_BATCH:
                    member = self._queue.popleft()
                    if member.answer.done():  # cancelled while queued
                        continue
                    try:
                        member.result = await _in_savepoint(conn, member)
                    except _Broken as broken:  # its rollback failed: the transaction is lost
                        _fail(member.answer, broken.error)
                        raise broken.error from None
                    except BaseException as exc:  # its own error, its statements undone
                        _fail(member.answer, exc)
                        if not isinstance(exc, Exception):
                            raise
                        continue
                    done.append(member)
        except BaseException as exc:
            for member in done:
                _fail(member.answer, exc)
            if not begun:  # no transaction (the writer lock, BEGIN): the waiting pushes fail
                while self._queue:
                    _fail(self._queue.popleft().answer, exc)
            elif self._queue:
                self._start(asyncio.get_running_loop())
            if not isinstance(exc, Exception):
                raise
            return
        for member in done:
            if not member.answer.done():
                member.answer.set_result(member.result)
            member.result = None
        if self._queue:
            self._start(asyncio.get_running_loop())


class _Broken(Exception):
    """A push's rollback to its savepoint failed (`error`): the whole transaction fails."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


async def _in_savepoint(conn: Conn, member: _Member[T]) -> T:
    """`member`'s statements between SAVEPOINT and RELEASE (or ROLLBACK TO), run in its
    request's context."""
    ctx = member.context
    driver = getattr(conn, "driver", None)
    sqlite = driver() if driver is not None else None
    await _mark(ctx, conn, sqlite, "SAVEPOINT push")
    try:
        result = await _drive(ctx, member.body(conn))
    except BaseException:
        try:
            await _mark(ctx, conn, sqlite, "ROLLBACK TO push", "RELEASE push")
        except BaseException as broken:
            raise _Broken(broken) from None
        raise
    try:
        await _mark(ctx, conn, sqlite, "RELEASE push")
    except BaseException as broken:
        raise _Broken(broken) from None
    return result


async def _mark(ctx: contextvars.Context, conn: Conn, sqlite: Any, *statements: str) -> None:
    """The savepoint `statements` in `ctx`: on the transaction's sqlite3 connection `sqlite`
    straight away (no coroutine to drive), else through SQLAlchemy. A push's SAVEPOINT counts
    as its statement where its BEGIN did, RELEASE as little as COMMIT did (`roundtrips`)."""
    if sqlite is None:
        await _drive(ctx, _through_sqlalchemy(conn, statements))
    else:
        ctx.run(_on_driver, sqlite, statements)


async def _drive(ctx: contextvars.Context, awaitable: Awaitable[T]) -> T:
    """Run `awaitable` in `ctx` (a request's context) within this task, as a task of its own
    would run it: statements on the loop finish without a trip through the event loop; when it
    waits for a future, this waits for it too."""
    coro: Coroutine[Any, Any, T] = awaitable  # type: ignore[assignment]
    error: BaseException | None = None
    while True:
        try:
            if error is None:
                yielded = ctx.run(coro.send, None)
            else:
                yielded, error = ctx.run(coro.throw, error), None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if yielded is None:  # a bare yield (`asyncio.sleep(0)`)
            await asyncio.sleep(0)
            continue
        # A future the coroutine awaits: wait for it, then let the coroutine take its result
        # (or be cancelled with this task).
        yielded._asyncio_future_blocking = False
        try:
            await asyncio.wait([yielded])
        except BaseException as exc:
            error = exc


def _fail(answer: asyncio.Future[Any], exc: BaseException) -> None:
    """A push's answer: the error of its statements, or of the transaction holding them."""
    if answer.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        answer.cancel()
    else:
        answer.set_exception(exc)


async def _through_sqlalchemy(conn: Conn, statements: tuple[str, ...]) -> None:
    for sql in statements:
        await conn.execute(text(sql))


def _on_driver(sqlite: Any, statements: tuple[str, ...]) -> None:
    for sql in statements:
        if sql.startswith("SAVEPOINT"):
            roundtrips.add()
        sqlite.execute(sql)
