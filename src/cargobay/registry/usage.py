"""Usage metering: stored bytes per storage class, standard and archive (derived from committed
metadata, so it cannot drift), and bytes transferred out (counted per repository, principal
and day).

Transfer counts are added up in memory by each worker and flushed every few seconds with an
additive upsert, so a pull costs no database write and concurrent workers never lose counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, case, func, select

from cargobay import regions
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import add_counts
from cargobay.registry.archive import ARCHIVED

log = logging.getLogger("cargobay.usage")
GB = Decimal(1024**3)


@dataclass
class RepositoryUsage:
    registry_id: str
    repository: str
    stored_bytes: int = 0
    transferred_bytes: int = 0
    pulls: int = 0


class UsageRecorder:
    def __init__(self, db: Database, flush_every: float = 5.0) -> None:
        self.db = db
        self.flush_every = flush_every
        self._pending: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._task: asyncio.Task[None] | None = None

    def record(self, repository_id: int, principal_arn: str, nbytes: int) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        counts = self._pending[(repository_id, principal_arn, day)]
        counts[0] += nbytes
        counts[1] += 1
        if self._task is None:
            self._task = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.flush_every)
        finally:
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        if not pending:
            return
        try:
            async with self.db.write() as conn:
                for (repository_id, principal, day), (nbytes, requests) in pending.items():
                    await add_counts(
                        conn,
                        schema.transfer_usage,
                        ["repository_id", "principal_arn", "day"],
                        repository_id=repository_id,
                        principal_arn=principal,
                        day=day,
                        bytes=nbytes,
                        requests=requests,
                    )
        except Exception:
            log.exception("could not record transfer usage; counts kept for the next flush")
            for key, (nbytes, requests) in pending.items():
                self._pending[key][0] += nbytes
                self._pending[key][1] += requests

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


async def stored_by_class(db: Database) -> dict[int, tuple[int, int]]:
    """Per repository id: (standard, archive) bytes. Every distinct layer and config the
    repository's images reference (what DescribeImages' imageSizeInBytes counts), shared blobs
    counted once; a blob is in the archive storage class when only archived images reference
    it (one active image keeps it standard)."""
    mr, b, a = schema.manifest_references, schema.blobs, schema.image_archives
    archived = case((a.c.status == ARCHIVED, 1), else_=0)
    per_blob = (
        select(
            mr.c.repository_id,
            mr.c.target_digest,
            func.min(archived).label("archived"),
        )
        .select_from(
            mr.outerjoin(
                a,
                and_(a.c.repository_id == mr.c.repository_id, a.c.digest == mr.c.manifest_digest),
            )
        )
        .where(mr.c.kind == "blob")
        .group_by(mr.c.repository_id, mr.c.target_digest)
        .subquery()
    )
    query = (
        select(per_blob.c.repository_id, per_blob.c.archived, func.sum(b.c.size))
        .join(b, b.c.digest == per_blob.c.target_digest)
        .group_by(per_blob.c.repository_id, per_blob.c.archived)
    )
    totals: dict[int, tuple[int, int]] = {}
    async with db.read() as conn:
        for repo_id, is_archived, size in await conn.execute(query):
            standard, archive = totals.get(int(repo_id), (0, 0))
            if is_archived:
                archive += int(size or 0)
            else:
                standard += int(size or 0)
            totals[int(repo_id)] = (standard, archive)
    return totals


async def stored_bytes(db: Database) -> dict[int, int]:
    """Per repository id: the bytes in the standard storage class (see `stored_by_class`)."""
    return {repo_id: standard for repo_id, (standard, _) in (await stored_by_class(db)).items()}


async def report(
    db: Database,
    since_day: str | None = None,
    registry_id: str | None = None,
    *,
    default_region: str,
    region: str | None = None,
) -> dict[str, object]:
    """Usage per repository (with its region: the same name in two regions is two
    repositories) and per principal, plus account totals; with `registry_id`, only that
    account's repositories and the bytes its repositories served; with `region`, only that
    region's (`default_region` is the deployment's, stored as "")."""
    r, t = schema.repositories, schema.transfer_usage
    stored = await stored_by_class(db)
    transfer_q = select(t.c.repository_id, func.sum(t.c.bytes), func.sum(t.c.requests)).group_by(
        t.c.repository_id
    )
    principal_q = select(t.c.principal_arn, func.sum(t.c.bytes), func.sum(t.c.requests)).group_by(
        t.c.principal_arn
    )
    repos_q = select(r.c.id, r.c.registry_id, r.c.name, r.c.region)
    if since_day:
        transfer_q = transfer_q.where(t.c.day >= since_day)
        principal_q = principal_q.where(t.c.day >= since_day)
    scope = []
    if registry_id is not None:
        scope.append(r.c.registry_id == registry_id)
    if region is not None:
        scope.append(r.c.region == regions.key(region, default_region))
    if scope:
        repos_q = repos_q.where(*scope)
        principal_q = principal_q.join(r, r.c.id == t.c.repository_id).where(*scope)
    async with db.read() as conn:
        repos = (await conn.execute(repos_q)).all()
        transfers = {
            row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in await conn.execute(transfer_q)
        }
        principals = [
            {"principal": row[0], "transferred_bytes": int(row[1] or 0), "requests": int(row[2])}
            for row in await conn.execute(principal_q.order_by(t.c.principal_arn))
        ]
    repositories = []
    accounts: dict[str, dict[str, int]] = {}
    for repo_id, registry_id, name, key in sorted(repos, key=lambda row: (row[1], row[3], row[2])):
        sent, pulls = transfers.get(repo_id, (0, 0))
        entry = {
            "registry_id": registry_id,
            "region": regions.from_key(key, default_region),
            "repository": name,
            "stored_bytes": stored.get(repo_id, (0, 0))[0],
            "archived_bytes": stored.get(repo_id, (0, 0))[1],
            "transferred_bytes": sent,
            "requests": pulls,
        }
        repositories.append(entry)
        totals = accounts.setdefault(
            registry_id, {"stored_bytes": 0, "archived_bytes": 0, "transferred_bytes": 0}
        )
        totals["stored_bytes"] += entry["stored_bytes"]
        totals["archived_bytes"] += entry["archived_bytes"]
        totals["transferred_bytes"] += sent
    return {"repositories": repositories, "accounts": accounts, "principals": principals}


def cost(
    stored: int,
    transferred: int,
    per_gb_month: str,
    per_gb_out: str,
    archived: int = 0,
    per_gb_month_archive: str = "0",
) -> dict[str, str]:
    """USD for the bytes in each storage class (a month) and those sent out."""
    storage = Decimal(stored) / GB * Decimal(per_gb_month)
    archive = Decimal(archived) / GB * Decimal(per_gb_month_archive)
    transfer = Decimal(transferred) / GB * Decimal(per_gb_out)
    return {
        "storage_usd_per_month": f"{storage:.6f}",
        "archive_usd_per_month": f"{archive:.6f}",
        "transfer_usd": f"{transfer:.6f}",
    }
