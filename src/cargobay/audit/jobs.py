"""Retention: records older than `audit_retention_days` are deleted by a periodic job that runs
once across the deployment (job leases), in batches so no transaction holds the lock long."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select

from cargobay.config import Settings
from cargobay.jobs.leases import Job
from cargobay.metadata import schema
from cargobay.metadata.db import Database

BATCH = 5000


async def purge(db: Database, *, retention_days: float, now: float | None = None) -> int:
    """Delete records older than the retention; returns how many."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    t, r = schema.audit_records, schema.audit_resources
    removed = 0
    while True:
        async with db.write() as conn:
            ids = [
                row.id
                for row in (
                    await conn.execute(select(t.c.id).where(t.c.event_time < cutoff).limit(BATCH))
                ).all()
            ]
            if not ids:
                return removed
            await conn.execute(delete(r).where(r.c.record_id.in_(ids)))
            await conn.execute(delete(t).where(t.c.id.in_(ids)))
        removed += len(ids)


def purge_job(settings: Settings, db: Database) -> Job:
    async def run() -> dict[str, Any]:
        removed = await purge(db, retention_days=settings.audit_retention_days)
        return {"audit_records_purged": removed}

    return Job("audit-purge", 3600.0, run)
