"""Exactly-once periodic jobs on a shared database.

Each job has a row in `job_leases`. A worker that finds a job due claims it with one conditional
UPDATE (due, and no live lease) — the database lets exactly one claimant win on SQLite and
PostgreSQL alike — runs it, then records the finish. A worker that dies mid-run leaves a lease
that expires, after which another worker runs the job again. No other coordinator exists.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from cargobay.jobs.loop import BackgroundLoop
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.sql import insert_ignore

log = logging.getLogger("cargobay.jobs")

JobFn = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Job:
    name: str
    interval: float  # seconds between the starts of two runs
    run: JobFn
    lease: float = 3600.0  # how long a run may take before another node may retry it


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def try_claim(
    db: Database, job: Job, holder: str, now: float | None = None, force: bool = False
) -> bool:
    """Claim the job's next run if it is due and nobody holds a live lease."""
    now = time.time() if now is None else now
    t = schema.job_leases
    async with db.write() as conn:
        await insert_ignore(
            conn,
            t,
            name=job.name,
            holder=None,
            lease_expires_at=0.0,
            last_started_at=0.0,
            last_finished_at=0.0,
        )
        condition = t.c.lease_expires_at < now
        if not force:
            condition = and_(
                condition,
                or_(t.c.last_started_at + job.interval <= now, t.c.last_started_at == 0.0),
            )
        result = await conn.execute(
            t.update()
            .where(t.c.name == job.name, condition)
            .values(holder=holder, lease_expires_at=now + job.lease, last_started_at=now)
        )
        return result.rowcount == 1


async def finish(db: Database, job: Job, holder: str, result: dict[str, Any]) -> None:
    t = schema.job_leases
    async with db.write() as conn:
        await conn.execute(
            t.update()
            .where(t.c.name == job.name, t.c.holder == holder)
            .values(
                lease_expires_at=0.0, last_finished_at=time.time(), last_result=json.dumps(result)
            )
        )


async def run_once(
    db: Database, job: Job, holder: str | None = None, force: bool = False
) -> dict[str, Any] | None:
    """Run the job here if this process wins the claim; None when another holds it."""
    holder = holder or holder_id()
    if not await try_claim(db, job, holder, force=force):
        return None
    try:
        result = await job.run()
    except Exception as exc:
        log.exception("job %s failed", job.name)
        result = {"error": str(exc)}
    await finish(db, job, holder, result)
    return result


async def last_result(db: Database, name: str) -> dict[str, Any] | None:
    t = schema.job_leases
    async with db.read() as conn:
        row = (await conn.execute(select(t.c.last_result).where(t.c.name == name))).first()
    return json.loads(row.last_result) if row and row.last_result else None


# Every job's lease row, read by each tick (a handful of rows) as one `metadata.hot` lookup.
_LEASES = HotRead(
    select(
        schema.job_leases.c.name,
        schema.job_leases.c.lease_expires_at,
        schema.job_leases.c.last_started_at,
    )
)


def may_be_due(job: Job, row: Any | None, now: float) -> bool:
    """Whether `try_claim` could win `job` now, judged from its lease row as last read (None:
    no row yet). Only a filter: the claim's conditional UPDATE still decides."""
    if row is None:
        return True
    if row.lease_expires_at >= now:
        return False
    return row.last_started_at == 0.0 or row.last_started_at + job.interval <= now


class Scheduler(BackgroundLoop):
    """Polls the jobs every `tick` seconds in one worker; the database decides who runs.

    A tick first reads the lease rows and claims only the jobs that look due: claiming every
    job every tick cost two write transactions each, built through SQLAlchemy, and was the
    longest turn of a busy worker's event loop (9-18 ms every 30 s, benchmarks/RESULTS.md)."""

    def __init__(self, db: Database, jobs: list[Job], tick: float = 30.0) -> None:
        self.db = db
        self.jobs = jobs
        self.tick = tick
        self.holder = holder_id()

    async def _loop(self) -> None:
        while True:
            try:
                rows = {r.name: r for r in await _LEASES.all(self.db, {})}
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the job leases failed")
                rows = {}
            now = time.time()
            for job in self.jobs:
                if rows and not may_be_due(job, rows.get(job.name), now):
                    continue
                try:
                    await run_once(self.db, job, self.holder)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduling %s failed", job.name)
            await asyncio.sleep(self.tick)
