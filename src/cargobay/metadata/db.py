"""Database engines and transactions.

Reads and writes go through separate helpers so that, on SQLite, a write transaction takes the
write lock up front (`BEGIN IMMEDIATE`) and waits on the busy timeout instead of failing with
"database is locked" when two worker processes write at once. On PostgreSQL both are ordinary
transactions; races are settled by unique keys and conditional updates in the queries.

On a SQLite file (the embedded default) everything runs on SQLAlchemy's synchronous engine:
short lookups and write transactions on the event loop, longer reads in a thread. SQLAlchemy's
asyncio layer (which brings its ORM) and aiosqlite are loaded only for PostgreSQL and
in-memory SQLite, which keeps about 8 MiB out of every embedded worker process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url

from cargobay.metadata import roundtrips, schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.errors import SchemaOutOfDate
from cargobay.metadata.sqlite_writes import Checkpointer, WriterLock, begin_immediate
from cargobay.threads import ProcessPool, settle

# This process's id, kept current across forks: `loop_driver` runs for every hot lookup, and
# os.getpid() is a system call.
_PID = os.getpid()


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Conn", "Database", "SchemaOutOfDate", "async_url"]

# Open `read` transactions per process on a SQLite file (each holds one connection).
THREAD_READS = 8
# On PostgreSQL, per process: connections of `metadata.hot` lookups (no overflow), and the
# pool (plus as many overflow) of `read_now` blocks; `read` and `write` have their own.
HOT_CONNECTIONS = 4
# WAL pages at which a SQLite writer checkpoints in its own commit (`Checkpointer` normally
# copies the WAL long before).
WAL_BACKSTOP_PAGES = 10_000
# A write transaction's temporary files (its sub-journal) in memory, and back to the default
# (`Database.write(savepoints=True)`); neither is a statement of the transaction.
_MEMORY_SUBJOURNAL = "PRAGMA temp_store=MEMORY"
_DEFAULT_TEMP_STORE = "PRAGMA temp_store=DEFAULT"


def async_url(url: str) -> str:
    """Map plain sqlite:// and postgresql:// URLs to their asyncio drivers."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One process's handle on the metadata database."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # On a SQLite file: synchronous engines (see `read_now`, `read` and `write`);
        # elsewhere: asyncio engines, and `read_now` is `read`.
        self._sync_reader: Engine | None = None
        self._sync_writer: Engine | None = None
        self._writers: WriterLock | None = None
        self._checkpoints: Checkpointer | None = None
        self._writer_conn: tuple[int, Connection] | None = None  # (pid, held connection)
        self._thread_reader: Engine | None = None
        self._loop_driver: tuple[int, Any, Any] | None = None  # (pid, pooled, driver)
        self._autocommit_reader: AsyncEngine | None = None
        self._pinged_autocommit_reader: AsyncEngine | None = None
        self._read_threads = ProcessPool(4, "db-read")
        self._read_slots: asyncio.Semaphore | None = None
        self._read_slots_loop: asyncio.AbstractEventLoop | None = None
        self.reader: AsyncEngine | None = None
        self.writer: AsyncEngine | None = None
        parsed = make_url(self.url)
        database = parsed.database or ""
        if (
            self.is_sqlite
            and database
            and database != ":memory:"
            and "memory" not in str(parsed.query)
        ):
            sync_url = parsed.set(drivername="sqlite")
            self._sync_reader = self._sqlite_sync_engine(sync_url, writer=False)
            self._sync_writer = self._sqlite_sync_engine(sync_url, writer=True, pool_size=2)
            # `read` transactions hold a connection across awaits, in threads: their own pool,
            # so they can never starve `read_now`, which waits for one on the event loop.
            self._thread_reader = self._sqlite_sync_engine(
                sync_url, writer=False, pool_size=THREAD_READS, max_overflow=0
            )
            self._writers = WriterLock(f"{database}-writer.lock")
            self._checkpoints = Checkpointer(database, self._writers)
        elif self.is_sqlite:
            self.reader = self._sqlite_engine(immediate=False)
            self.writer = self._sqlite_engine(immediate=True)
        else:
            from sqlalchemy.ext.asyncio import create_async_engine

            self.reader = self.writer = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            # Reads outside a transaction: on the `reader` engine, a read costs BEGIN, ping,
            # ROLLBACK (the pre-ping), BEGIN, its statements and ROLLBACK; in autocommit the
            # ping is one round trip and there is no BEGIN or ROLLBACK. At READ COMMITTED every
            # statement takes its own snapshot anyway, so a `read_now` block sees the same.
            # `metadata.hot` lookups go further: no pre-ping (a connection found dead is
            # retried once instead), so such a lookup is one round trip.
            # No overflow for the lookups (each holds its connection for one statement): a
            # burst waits for one of the pool's instead of opening connections that are closed
            # again at once, each a PostgreSQL backend started and a statement re-planned.
            self._autocommit_reader = create_async_engine(
                self.url, pool_size=HOT_CONNECTIONS, max_overflow=0, isolation_level="AUTOCOMMIT"
            )
            self._pinged_autocommit_reader = create_async_engine(
                self.url,
                pool_size=HOT_CONNECTIONS,
                max_overflow=HOT_CONNECTIONS,
                pool_pre_ping=True,
                isolation_level="AUTOCOMMIT",
            )
            roundtrips.install(self._autocommit_reader.sync_engine)
            roundtrips.install(self._pinged_autocommit_reader.sync_engine)
        for engine in (self._sync_reader, self._sync_writer, self._thread_reader):
            if engine is not None:
                roundtrips.install(engine)
        for async_engine in (self.reader, self.writer):
            if async_engine is not None:
                roundtrips.install(async_engine.sync_engine)

    def _sqlite_engine(self, *, immediate: bool) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.url, pool_size=2 if immediate else 5, max_overflow=8)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves; the driver's implicit transactions are deferred.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @staticmethod
    def _sqlite_sync_engine(
        url: Any, *, writer: bool, pool_size: int = 4, max_overflow: int = 4
    ) -> Engine:
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit at the driver: readers see the latest commit with each SELECT (WAL
            # readers never wait for writers); writers issue BEGIN IMMEDIATE themselves and
            # never sleep in SQLite's busy handler, which would block the event loop.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if writer:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=0")
                # Checkpoints run off the write path (`Checkpointer`): an automatic one runs
                # inside the commit that crosses its threshold, on the event loop, with every
                # other writer queued behind it while it writes and fsyncs the database file.
                # It stays as a backstop, at ten times SQLite's default WAL size, for a process
                # that writes without ever letting the checkpointer's task run.
                cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            else:
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        return engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        """A read transaction (one snapshot) for queries that may scan: on a SQLite file its
        statements run in a thread, so the event loop keeps serving meanwhile."""
        if self._thread_reader is None:
            assert self.reader is not None
            async with self.reader.connect() as conn:
                yield conn
            return
        # At most as many open transactions as the pool has connections, waited for here on
        # the loop: a thread must never block on the pool, or the transactions holding the
        # connections could find no thread to finish on.
        async with self._slots():
            reads = _ThreadReads(self._thread_reader, self._read_threads.get())
            try:
                yield reads
            finally:
                # Also when cancelled while a statement runs in its thread: `end` waits for it
                # and returns the connection it checked out.
                await reads.end()

    def _slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._read_slots is None or self._read_slots_loop is not loop:
            self._read_slots, self._read_slots_loop = asyncio.Semaphore(THREAD_READS), loop
        return self._read_slots

    @asynccontextmanager
    async def read_now(self) -> AsyncIterator[Conn]:
        """For short indexed lookups on the request path (a manifest by tag, a repository,
        an authorization check): on SQLite the query runs right on the event loop, which
        costs tens of microseconds instead of the several thread hand-offs (BEGIN, execute,
        fetch, rollback) an aiosqlite read takes. On PostgreSQL it runs outside a transaction
        (see `__init__`). Use `read` for anything that may scan."""
        if self._pinged_autocommit_reader is not None:
            async with self._pinged_autocommit_reader.connect() as conn:
                yield conn
            return
        if self._sync_reader is None:
            async with self.read() as conn:
                yield conn
            return
        with self._sync_reader.connect() as conn:
            yield _SyncReads(conn)

    @property
    def writes_in_turn(self) -> bool:
        """Whether this process's write transactions run one at a time, on one connection
        on the event loop (a SQLite file; `write`): pushes may then share one
        (`registry.pushgroup`)."""
        return self._writers is not None

    def writing_here(self) -> bool:
        """Whether the running task is inside this process's SQLite write transaction (a
        second one there would wait for itself)."""
        return self._writers is not None and self._writers.held_here()

    @asynccontextmanager
    async def write(self, *, savepoints: bool = False) -> AsyncIterator[Conn]:
        """A write transaction, committed when the block ends and rolled back on an error.

        `savepoints`: the transaction runs many SAVEPOINTs (a batch of pushes). On a SQLite
        file its sub-journal (a savepoint's copy of each page it changes that the transaction
        had changed already, and each statement's within it) then stays in memory: by default
        SQLite spills it past 64 KiB to a temporary file, which a batch of 16 pushes outgrew
        after a few, and every push then wrote ~18 pages to it, twice the pages its COMMIT
        writes. Bounded by the batch (~70 KiB a push); the setting is put back after it."""
        if self._writers is None:
            assert self.writer is not None
            async with self.writer.begin() as conn:
                yield conn
            return
        assert self._checkpoints is not None
        async with self._writers.held():
            # With the writer lock held, the transaction runs on the event loop: about 50 us
            # a statement instead of several aiosqlite thread hand-offs, so the database lock
            # that every worker's writes queue for is held for much less time.
            sync_conn = self._writer_connection()
            if savepoints:  # read when the transaction begins (SQLite's pager takes it then)
                sync_conn.connection.driver_connection.execute(_MEMORY_SUBJOURNAL)
            try:
                await begin_immediate(sync_conn)
                yield _SyncReads(sync_conn)
                if sync_conn.in_transaction():  # a statement of SQLAlchemy's autobegan one
                    sync_conn.commit()  # the driver's COMMIT, through SQLAlchemy
                else:
                    sync_conn.connection.driver_connection.commit()
            except BaseException:
                self._abandon(sync_conn)
                raise
            finally:
                if savepoints:
                    self._default_temp_store(sync_conn)
        self._checkpoints.committed()

    def _default_temp_store(self, conn: Connection) -> None:
        """Put the writer's temporary files back where the other writes keep them; a
        connection that cannot is dropped (the next write opens another)."""
        held = self._writer_conn
        if held is None or held[1] is not conn:  # abandoned already
            return
        try:
            conn.connection.driver_connection.execute(_DEFAULT_TEMP_STORE)
        except Exception:
            self._writer_conn = None
            conn.invalidate()

    def _writer_connection(self) -> Connection:
        """This process's writer connection, held between transactions: writes are one at a
        time per process (`WriterLock`), and a pool checkout and return (with its reset)
        cost more than a push's statements. Reopened after a fork or a failure."""
        held = self._writer_conn
        if held is None or held[0] != os.getpid() or held[1].closed or held[1].invalidated:
            assert self._sync_writer is not None
            held = self._writer_conn = (os.getpid(), self._sync_writer.connect())
        return held[1]

    def _abandon(self, conn: Connection) -> None:
        """Roll a failed write back; a connection that cannot even roll back is closed (its
        driver connection discarded), and the next write opens another."""
        try:
            conn.rollback()  # SQLAlchemy's state (nothing when it began no transaction) ...
            conn.connection.driver_connection.rollback()  # ... and the driver's BEGIN's
        except BaseException:
            self._writer_conn = None
            conn.invalidate()

    async def check_schema(self) -> None:
        """Raise SchemaOutOfDate unless the schema is at the revision this code needs: one
        indexed read, cheap enough for /readyz (migrations themselves live in migrations/)."""
        async with self.read() as conn:
            current = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
        if current != schema.SCHEMA_REVISION:
            raise SchemaOutOfDate(
                f"database schema is at revision {current}, not {schema.SCHEMA_REVISION}"
            )

    def loop_driver(self) -> Any | None:
        """On a SQLite file, this process's own read-only driver (sqlite3) connection, for the
        few hottest lookups of the request path (`metadata.hot`), which run on it directly on
        the event loop; None on any other database. Checked out of the `read_now` pool once
        per process (never across a fork) and held until `dispose`."""
        if self._sync_reader is None:
            return None
        held = self._loop_driver
        if held is None or held[0] != _PID:
            fairy = self._sync_reader.raw_connection()
            # The driver's connection kept beside its pool entry: two property hops a lookup
            # less. Only `metadata.hot` uses it, on the driver itself, so SQLAlchemy never
            # invalidates (replaces) it.
            held = self._loop_driver = (_PID, fairy, fairy.driver_connection)
        return held[2]

    def autocommit_reader(self) -> AsyncEngine | None:
        """On PostgreSQL, the engine of `metadata.hot` lookups (see `__init__`); else None."""
        return self._autocommit_reader

    async def dispose(self) -> None:
        for engine in (self._autocommit_reader, self._pinged_autocommit_reader):
            if engine is not None:
                await engine.dispose()
        if self._loop_driver is not None and self._loop_driver[0] == os.getpid():
            self._loop_driver[1].close()
        self._loop_driver = None
        if self._sync_reader is not None:
            self._sync_reader.dispose()
        if self._writer_conn is not None and self._writer_conn[0] == os.getpid():
            self._writer_conn[1].close()
        self._writer_conn = None
        if self._checkpoints is not None:
            await self._checkpoints.close()
        if self._sync_writer is not None:
            self._sync_writer.dispose()
        if self._thread_reader is not None:
            self._thread_reader.dispose()
        if self._writers is not None:
            self._writers.close()
        self._read_threads.shutdown()
        if self.reader is not None:
            await self.reader.dispose()
        if self.writer is not None and self.writer is not self.reader:
            await self.writer.dispose()


class _SyncReads:
    """A synchronous connection behind the awaitable `Conn` surface the services use."""

    __slots__ = ("_conn", "_driver")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver: Any = None

    @property
    def dialect(self) -> Any:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.scalar(statement, parameters)

    def driver(self) -> Any:
        """The driver (sqlite3) connection under this transaction: `audit.record` runs its
        batch inserts on it, without SQLAlchemy's per-statement machinery. Looked up once per
        transaction: a push asks for it once per statement."""
        if self._driver is None:
            self._driver = self._conn.connection.driver_connection
        return self._driver


class _ThreadReads:
    """A read transaction on a synchronous SQLite connection whose statements run, one at a
    time, in a thread. Results are fetched in the thread too (frozen), so the event loop never
    waits on the database. If the task is cancelled mid-statement, the connection is only
    rolled back and returned once that statement has finished with it.

    One thread hand-off per statement, none more: the first statement's thread checks the
    connection out and issues BEGIN (SQLite's BEGIN is deferred, so the snapshot starts at the
    first read either way), and `end` rolls the read back and returns the connection on the
    loop, which takes microseconds and waits for no lock. A hand-off costs about 80 us of CPU
    (a thread wake-up, the loop's wake-up, GIL hand-overs): separate BEGIN and rollback
    hand-offs made a one-statement `read` cost four times a `read_now`."""

    __slots__ = ("_conn", "_engine", "_pool", "_running")

    def __init__(self, engine: Engine, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._engine = engine
        self._pool = pool
        self._conn: Connection | None = None
        self._running: concurrent.futures.Future[Any] | None = None

    @property
    def dialect(self) -> Any:
        return self._engine.dialect

    async def _call(self, fn: Callable[[], Any]) -> Any:
        # In the caller's context, so the statement counts toward its request.
        self._running = self._pool.submit(contextvars.copy_context().run, fn)
        return await asyncio.wrap_future(self._running)

    def _begun(self) -> Connection:
        """The transaction's connection, checked out and begun by its first statement (in
        that statement's thread)."""
        if self._conn is None:
            conn = self._engine.connect()
            try:
                conn.exec_driver_sql("BEGIN")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        def run() -> Any:
            result = self._begun().execute(statement, parameters)
            return result.freeze()() if result.returns_rows else result

        return await self._call(run)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        def run() -> Any:
            return self._begun().scalar(statement, parameters)

        return await self._call(run)

    async def end(self) -> None:
        cancelled = await settle(self._running)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
            finally:
                conn.close()
        if cancelled:
            raise asyncio.CancelledError


def now() -> float:
    return time.time()
