"""A durable task queue in the metadata database: work that must happen after a commit.

A task is a row written in the same transaction as the change that calls for it (an outbox),
so a crash never loses one and a rolled-back change never leaves one. Any worker on any node
claims due tasks with one conditional UPDATE per row (the database lets exactly one claimant
win, on SQLite and PostgreSQL alike), runs the handler registered for the task's kind, and
records the outcome. A claimant that dies leaves a lease that expires; the task then runs
again elsewhere, so handlers are idempotent. Failures retry with exponential backoff until the
task's deadline, then stay `failed` for an operator to see.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, bindparam, or_, select

from cargobay import regions
from cargobay.jobs.leases import holder_id
from cargobay.jobs.loop import BackgroundLoop
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.sql import insert_ignore

log = logging.getLogger("cargobay.queue")

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


class Retry(Exception):
    """The task could not finish now; run it again after `delay` seconds (backoff if None)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class Fail(Exception):
    """The task can never succeed as it is; record the reason and stop retrying. `code` is
    a machine-readable failure code for the handler's own bookkeeping."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


Handler = Callable[[Task], Awaitable[None]]


# The payload member naming the region a task runs in (absent: the default region).
REGION_KEY = "_region"


async def enqueue(
    conn: Any,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    delay: float = 0.0,
    deadline: float = 7 * 86400.0,
) -> None:
    """Write a task in the caller's open transaction. A `key` makes it idempotent: a second
    task with the same kind and key is not added while the first exists. A task queued while
    serving another region than the default runs in that region (`cargobay.regions`)."""
    now = time.time()
    if regions.current_key():
        payload = {**payload, REGION_KEY: regions.current_key()}
    await insert_ignore(
        conn,
        schema.tasks,
        kind=kind,
        dedupe_key=key,
        payload=json.dumps(payload, separators=(",", ":")),
        status=PENDING,
        attempts=0,
        run_after=now + delay,
        give_up_at=now + deadline,
        lease_expires_at=0.0,
        created_at=now,
        updated_at=now,
    )


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before attempt `attempts + 1`: 2, 4, 8, ... up to five minutes (by default;
    `task_backoff_seconds` and `task_max_backoff_seconds` set `base` and `cap`)."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def _due(now: Any):
    t = schema.tasks
    return or_(
        and_(t.c.status == PENDING, t.c.run_after <= now),
        and_(t.c.status == RUNNING, t.c.lease_expires_at < now),
    )


@functools.lru_cache(maxsize=64)
def _due_ids(kinds: tuple[str, ...], limit: int) -> HotRead:
    """The due tasks' ids, as one `metadata.hot` lookup built once per kinds and limit: every
    process's runner polls it every tick, and building and executing it through SQLAlchemy
    cost 5-20 ms of CPU in one turn of the event loop (each kind a bound value, the `IN`
    expansion), the longest turn a worker had under steady load (benchmarks/RESULTS.md,
    stop 26)."""
    t = schema.tasks
    return HotRead(
        select(t.c.id)
        .where(or_(*(t.c.kind == kind for kind in kinds)), _due(bindparam("now", type_=Float)))
        .order_by(t.c.run_after, t.c.id)
        .limit(limit)
    )


async def claim(
    db: Database, kinds: list[str], holder: str, *, limit: int = 8, lease: float = 600.0
) -> list[Task]:
    """Take up to `limit` due tasks of these kinds; each is won by exactly one claimant."""
    t = schema.tasks
    now = time.time()
    if not kinds:
        return []
    rows = await _due_ids(tuple(kinds), limit).all(db, {"now": now})
    won: list[Task] = []
    for (task_id,) in rows:
        async with db.write() as conn:
            result = await conn.execute(
                t.update()
                .where(t.c.id == task_id, _due(now))
                .values(
                    status=RUNNING,
                    holder=holder,
                    lease_expires_at=now + lease,
                    attempts=t.c.attempts + 1,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                continue
            row = (
                await conn.execute(
                    select(t.c.id, t.c.kind, t.c.payload, t.c.attempts, t.c.created_at).where(
                        t.c.id == task_id
                    )
                )
            ).one()
        won.append(Task(row.id, row.kind, json.loads(row.payload), row.attempts, row.created_at))
    return won


async def _settle(db: Database, task: Task, holder: str, **values: Any) -> None:
    t = schema.tasks
    async with db.write() as conn:
        await conn.execute(
            t.update()
            .where(t.c.id == task.id, t.c.holder == holder)
            .values(holder=None, lease_expires_at=0.0, updated_at=time.time(), **values)
        )


async def complete(db: Database, task: Task, holder: str) -> None:
    await _settle(db, task, holder, status=DONE, last_error=None)


async def retry(db: Database, task: Task, holder: str, reason: str, delay: float) -> bool:
    """Schedule another attempt; False (and the task failed) once past its deadline."""
    t = schema.tasks
    async with db.read_now() as conn:
        give_up_at = (
            await conn.execute(select(t.c.give_up_at).where(t.c.id == task.id))
        ).scalar_one()
    if time.time() + delay > give_up_at:
        await _settle(db, task, holder, status=FAILED, last_error=reason[:1000])
        return False
    await _settle(
        db, task, holder, status=PENDING, run_after=time.time() + delay, last_error=reason[:1000]
    )
    return True


async def fail(db: Database, task: Task, holder: str, reason: str) -> None:
    await _settle(db, task, holder, status=FAILED, last_error=reason[:1000])


async def run_task(
    db: Database,
    task: Task,
    holder: str,
    handler: Handler,
    *,
    backoff_base: float = 2.0,
    backoff_cap: float = 300.0,
) -> str:
    """Run one claimed task and record its outcome; returns the new status."""
    region = task.payload.get(REGION_KEY, "") if isinstance(task.payload, dict) else ""
    try:
        with regions.serving_key(region if isinstance(region, str) else ""):
            await handler(task)
    except Retry as exc:
        delay = (
            backoff(task.attempts, backoff_base, backoff_cap) if exc.delay is None else exc.delay
        )
        return PENDING if await retry(db, task, holder, exc.reason, delay) else FAILED
    except Fail as exc:
        await fail(db, task, holder, str(exc))
        return FAILED
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in a handler: keep retrying, loudly
        log.exception("task %s %d failed", task.kind, task.id)
        delay = backoff(task.attempts, backoff_base, backoff_cap)
        reason = f"{type(exc).__name__}: {exc}"
        return PENDING if await retry(db, task, holder, reason, delay) else FAILED
    await complete(db, task, holder)
    return DONE


class TaskRunner(BackgroundLoop):
    """Drains the queue in one process: polls every `tick` seconds, or at once when this
    process enqueued something (`wake`), and runs at most `concurrency` tasks at a time; a
    task that asks to be retried waits `backoff(attempts, *backoff)` seconds."""

    def __init__(
        self,
        db: Database,
        handlers: dict[str, Handler],
        *,
        tick: float = 2.0,
        concurrency: int = 4,
        backoff: tuple[float, float] = (2.0, 300.0),
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.tick = tick
        self.backoff = backoff
        self.holder = holder_id()
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[str]] = set()
        # Called once the runner has stopped (closing HTTP sessions and the like).
        self.on_stop: list[Callable[[], Awaitable[None]]] = []

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        for running in list(self._running):
            running.cancel()
        for running in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        for close in self.on_stop:
            await close()

    async def drain(self) -> int:
        """Claim and start what is due now; the number of tasks started."""
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        tasks = await claim(self.db, list(self.handlers), self.holder, limit=free)
        for task in tasks:
            await self._slots.acquire()
            job = asyncio.ensure_future(
                run_task(
                    self.db,
                    task,
                    self.holder,
                    self.handlers[task.kind],
                    backoff_base=self.backoff[0],
                    backoff_cap=self.backoff[1],
                )
            )
            self._running.add(job)
            job.add_done_callback(self._finished)
        return len(tasks)

    def _finished(self, job: asyncio.Task[str]) -> None:
        self._running.discard(job)
        self._slots.release()
        self._wake.set()  # a slot is free: look for more at once

    async def _loop(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming tasks failed")
            # `asyncio.timeout`, not `wait_for`: on CPython 3.11, `wait_for` loses a
            # cancellation that arrives with the wake-up, and the runner never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            self._wake.clear()
