"""Storing audit records.

Hook for the doors (after the call, whether it succeeded, failed or was denied):

    await audit.record.record(services.db, AuditEvent(...), flush_ms=settings.audit_flush_ms)

Records are buffered per process and written in one transaction every `flush_ms` (default
200 ms) or every `MAX_BATCH` records: a request never waits for the audit insert, and on SQLite
one write-lock turn per batch instead of per call keeps pushes fast. The records are encoded on
the event loop, `ENCODE_CHUNK` at a time with a turn of the loop between (~6 µs a record).
On a SQLite file, a batch's inserts run in a thread of their own (`OFF_LOOP_ROWS` records or
more): sqlite3 lets go of the GIL while SQLite steps, so the requests in flight go on
meanwhile, where the insert of 200 records on the loop was one turn of 3.5-9 ms, the read
calls' p99 (stop 25). The writer lock is held meanwhile, as it was; a transaction inserts at
most `MAX_BATCH` records (smaller ones cost ~0.3 ms more a commit, benchmarks/RESULTS.md, stops
25 and 26). The trade-off, chosen knowingly: a process killed with SIGKILL loses the records of
its last `flush_ms` (graceful stops flush; `audit_flush_ms = 0` writes each record before the
call returns, at the cost of a write transaction per call). The buffer only delays writes of
records this process made; nothing is decided in it, so a second node needs nothing from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from sqlalchemy import String, bindparam, insert, select

from cargobay.audit import sqlite_batch
from cargobay.audit.cloudtrail import (
    AuditEvent,
    Resource,
    cloudtrail_record,
    new_event_id,
    record_json,
    user_identity,
)
from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hotwrite import HotWrite, sqlite_driver
from cargobay.threads import ProcessPool, settle

__all__ = [
    "AuditEvent",
    "AuditRecorder",
    "Resource",
    "cloudtrail_record",
    "record",
    "record_json",
    "user_identity",
    "write",
]

log = logging.getLogger("cargobay.audit")

MAX_BATCH = 200
ENCODE_CHUNK = 50  # records encoded between two turns of the event loop
OFF_LOOP_ROWS = 20  # a SQLite batch of this many records or more is inserted in a thread
MAX_BUFFER = 20_000  # beyond this (database down for long), the oldest records are dropped

# The records' columns and the resources' parameters, in the order of `_rows`' tuples.
_COLUMNS = sqlite_batch.RECORD_COLUMNS
_RESOURCE_PARAMS = sqlite_batch.RESOURCE_VALUES

Row = tuple[Any, ...]


def _rows(event: AuditEvent) -> tuple[Row, list[Row]]:
    """A record's values (in `_COLUMNS` order) and its resources' (`_RESOURCE_PARAMS`)."""
    event_time = event.event_time = event.event_time or time.time()
    event_id = event.event_id = event.event_id or new_event_id(event_time)
    principal = event.principal
    row = (
        event_id,
        event.account_id,
        event_time,
        event.event_source,
        event.event_name,
        event.read_only,
        principal.user_name[:128] if principal else None,
        principal.access_key_id[:128] if principal else None,
        record_json(event),
        event.region,
    )
    # Names come from requests (also refused ones): cut to the columns' sizes and without NUL
    # (which PostgreSQL's text refuses), so one odd request cannot make its batch fail.
    resources = [
        (r.type[:64], r.name[:1024].replace("\x00", "\ufffd"), event_id) for r in event.resources
    ]
    return row, resources


# A record's resources, found by its event id: no ids to read back from the records' insert,
# so both inserts are plain executemany statements.
_t, _r = schema.audit_records, schema.audit_resources
_INSERT_RECORDS = insert(_t)
_INSERT_RESOURCES = insert(_r).from_select(
    ["record_id", "resource_type", "resource_name"],
    select(
        _t.c.id,
        bindparam("resource_type", type_=String),
        bindparam("resource_name", type_=String),
    ).where(_t.c.event_id == bindparam("event_id")),
)


_RECORDS = HotWrite.of(_INSERT_RECORDS, names=_COLUMNS)
_RESOURCES = HotWrite.of(_INSERT_RESOURCES, names=_RESOURCE_PARAMS)
_INSERTS = ProcessPool(1, "audit-insert")


async def write(db: Database, events: list[AuditEvent]) -> None:
    """Insert records (and the resources they name) in one transaction: two executemany
    statements, at the driver level on SQLite (`metadata.hotwrite`), in a thread for a batch."""
    if not events:
        return
    records: list[Row] = []
    named: list[Row] = []
    for index, event in enumerate(events):
        if index and not index % ENCODE_CHUNK:
            await asyncio.sleep(0)  # the requests in flight go on between chunks
        row, resources = _rows(event)
        records.append(row)
        if resources:
            named.extend(resources)
    # A resource named twice by one call is one row (the table's key); sorted, so concurrent
    # batches take their locks in one order.
    resources = sorted(set(named)) if named else []
    await asyncio.sleep(0)  # and between the encoding and the transaction
    async with db.write() as conn:
        await _insert(conn, records, resources)


async def _insert(conn: Conn, records: list[Row], resources: list[Row]) -> None:
    driver = sqlite_driver(conn, 0)
    if driver is None:  # PostgreSQL (its driver awaits the server), an in-memory SQLite
        await _RECORDS.run_many(conn, records)
        await _RESOURCES.run_many(conn, resources)
        return
    batch = sqlite_batch.statements(driver, records, resources)
    sqlite_driver(conn, len(batch))  # counted here, in the caller's context (`roundtrips`)
    if len(records) < OFF_LOOP_ROWS:
        sqlite_batch.run(driver, batch)
        return
    # The transaction (and its connection) must outlive the thread's use of it: `settle`
    # waits for the thread even if this task is cancelled meanwhile. The thread commits too:
    # nothing else is written in this transaction (`write` ends it right after).
    job = _INSERTS.get().submit(sqlite_batch.run, driver, batch, commit=True)
    if await settle(job):
        raise asyncio.CancelledError
    job.result()


class AuditRecorder:
    """One process's buffer of records, flushed every `flush_ms` (see the module's note)."""

    def __init__(self, db: Database, flush_ms: int = 200) -> None:
        self.db = db
        self.flush_ms = flush_ms
        self._buffer: list[AuditEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False  # the timer is due at once (a full batch waits)
        self._flushing: set[asyncio.Task[None]] = set()
        self.dropped = 0

    async def record(self, event: AuditEvent) -> None:
        if self.flush_ms <= 0:
            await write(self.db, [event])
            return
        self.buffer(event)

    def buffer(self, event: AuditEvent) -> None:
        """`record` for a recorder that buffers (`flush_ms` > 0): an append, no coroutine."""
        self._buffer.append(event)
        if len(self._buffer) > MAX_BUFFER:
            excess = len(self._buffer) - MAX_BUFFER
            del self._buffer[:excess]
            self.dropped += excess
            log.error("audit buffer full: dropped %d records", excess)
        if len(self._buffer) >= MAX_BATCH:
            if not self._soon:  # not once more for each record until the flush starts
                self._schedule(0.0)
        elif self._timer is None:
            self._schedule(self.flush_ms / 1000)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._start_flush)
        self._soon = delay <= 0

    def _start_flush(self) -> None:
        self._timer, self._soon = None, False
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
        if not batch:
            return
        try:
            await write(self.db, batch)
        except Exception:
            kept = await self._one_by_one(batch) if len(batch) > 1 else batch
            if kept:
                log.exception(
                    "writing %d audit records failed; keeping them for the next flush", len(kept)
                )
                self._buffer[:0] = kept
                self._schedule(max(self.flush_ms / 1000, 1.0))
                return
        if self._buffer:
            self._schedule(0.0 if len(self._buffer) >= MAX_BATCH else self.flush_ms / 1000)

    async def _one_by_one(self, batch: list[AuditEvent]) -> list[AuditEvent]:
        """After a failed batch: write each record alone. When some succeed, the database is up
        and the others are refused for what they hold: drop those (loudly) rather than retry
        them forever. When none does, the database is down: keep them all."""
        failed: list[AuditEvent] = []
        for event in batch:
            try:
                await write(self.db, [event])
            except Exception:
                failed.append(event)
        if len(failed) == len(batch):
            return batch
        for event in failed:
            log.error("dropped an audit record the database refuses: %s", event.event_name)
        self.dropped += len(failed)
        return []

    async def close(self) -> None:
        """Write what is buffered (graceful stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._soon = None, False
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        while self._buffer:
            before = len(self._buffer)
            await self.flush()
            if len(self._buffer) >= before:  # the database refuses: give up, loudly
                log.error("lost %d audit records at shutdown", len(self._buffer))
                self._buffer.clear()


_recorders: weakref.WeakKeyDictionary[Database, AuditRecorder] = weakref.WeakKeyDictionary()


# The last recorder handed out, beside a weak reference to its database: every audited call
# asks for the same one, and a `WeakKeyDictionary` lookup makes a weak reference each time.
_last: tuple[weakref.ref[Database], AuditRecorder] | None = None


def recorder_for(db: Database, flush_ms: int = 200) -> AuditRecorder:
    """The process's recorder for a database (one per `Services`, built on first use)."""
    global _last
    last = _last
    if last is not None and last[0]() is db:
        return last[1]
    recorder = _recorders.get(db)
    if recorder is None:
        recorder = _recorders[db] = AuditRecorder(db, flush_ms)
    _last = (weakref.ref(db), recorder)
    return recorder


async def record(db: Database, event: AuditEvent, *, flush_ms: int = 200) -> None:
    """Record one call: cheap (an append) unless `flush_ms` is 0."""
    await recorder_for(db, flush_ms).record(event)


async def close_for(db: Database) -> None:
    """Flush and forget the recorder of one database (its `Services` is closing)."""
    global _last
    recorder = _recorders.pop(db, None)
    if _last is not None and _last[1] is recorder:
        _last = None
    if recorder is not None:
        await recorder.close()


async def close_all() -> None:
    """Flush every recorder of this process (the worker calls this when it stops)."""
    for recorder in list(_recorders.values()):
        await recorder.close()
