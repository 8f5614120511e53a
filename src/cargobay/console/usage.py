"""Usage read model for the console: stored bytes and bytes out of one account's repositories
in the page's region, per day and per repository, in a few grouped queries (no query per
repository)."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from cargobay import regions
from cargobay.metadata import schema
from cargobay.metadata.db import Database

TOP_REPOSITORIES = 100


def _mine(r, registry_id: str) -> tuple:
    """The account's repositories in the page's region (the console's region picker)."""
    return r.c.registry_id == registry_id, r.c.region == regions.current_key()


def _days(count: int, today: datetime) -> list[str]:
    return [(today - timedelta(days=count - 1 - i)).strftime("%Y-%m-%d") for i in range(count)]


async def series(db: Database, registry_id: str, days: int = 30) -> dict[str, list]:
    """Per day of the last `days`: bytes out, and the stored size of the images present now
    by the day they were pushed (a running total)."""
    r, m, t = schema.repositories, schema.manifests, schema.transfer_usage
    today = datetime.now(UTC)
    labels = _days(days, today)
    start = datetime.strptime(labels[0], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    in_account = m.c.repository_id.in_(select(r.c.id).where(*_mine(r, registry_id)))
    before = select(func.coalesce(func.sum(m.c.image_size), 0)).where(
        in_account, m.c.pushed_at < start
    )
    pushed = select(m.c.pushed_at, m.c.image_size).where(in_account, m.c.pushed_at >= start)
    out = (
        select(t.c.day, func.sum(t.c.bytes))
        .join(r, r.c.id == t.c.repository_id)
        .where(*_mine(r, registry_id), t.c.day >= labels[0])
        .group_by(t.c.day)
    )
    added: dict[str, int] = defaultdict(int)
    async with db.read() as conn:
        running = int((await conn.execute(before)).scalar_one())
        for when, size in await conn.execute(pushed):
            added[time.strftime("%Y-%m-%d", time.gmtime(when))] += int(size or 0)
        sent = {day: int(total or 0) for day, total in await conn.execute(out)}
    stored = []
    for day in labels:
        running += added.get(day, 0)
        stored.append(running)
    return {"days": labels, "stored": stored, "transferred": [sent.get(d, 0) for d in labels]}


async def by_repository(db: Database, registry_id: str, since_day: str) -> list[dict]:
    """The account's largest repositories: stored bytes (distinct blobs, as metering counts
    them) and bytes out since `since_day`."""
    r, mr, b, t = (
        schema.repositories,
        schema.manifest_references,
        schema.blobs,
        schema.transfer_usage,
    )
    distinct = (
        select(mr.c.repository_id, mr.c.target_digest)
        .join(r, r.c.id == mr.c.repository_id)
        .where(*_mine(r, registry_id), mr.c.kind == "blob")
        .distinct()
        .subquery()
    )
    stored_q = (
        select(distinct.c.repository_id, func.sum(b.c.size))
        .join(b, b.c.digest == distinct.c.target_digest)
        .group_by(distinct.c.repository_id)
    )
    out_q = (
        select(t.c.repository_id, func.sum(t.c.bytes))
        .join(r, r.c.id == t.c.repository_id)
        .where(*_mine(r, registry_id), t.c.day >= since_day)
        .group_by(t.c.repository_id)
    )
    async with db.read() as conn:
        stored = {int(i): int(n or 0) for i, n in await conn.execute(stored_q)}
        sent = {int(i): int(n or 0) for i, n in await conn.execute(out_q)}
        ids = sorted(set(stored) | set(sent), key=lambda i: (-stored.get(i, 0), -sent.get(i, 0)))
        ids = ids[:TOP_REPOSITORIES]
        names = (
            dict((await conn.execute(select(r.c.id, r.c.name).where(r.c.id.in_(ids)))).all())
            if ids
            else {}
        )
    return [
        {
            "repository": names.get(i, "?"),
            "stored_bytes": stored.get(i, 0),
            "transferred_bytes": sent.get(i, 0),
        }
        for i in ids
    ]
