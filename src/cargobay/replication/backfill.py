"""Replication backfills: copying images pushed before a rule existed, on request, as ECR's
StartReplicationBackfill does (a rule alone never copies what is already there).

A backfill is a row (PREPARING → IN_PROGRESS → COMPLETE, or STOPPED); starting one queues a
`replication-backfill` task that lists the images of every repository whose rules name the
destination and queues one ordinary `replicate` task per image, each tied to a result row.
The backfill completes when its last result does. Stopping it makes the remaining tasks
skip their work. A backfill belongs to the region it was started in (`source_region`), where
it is listed, read and stopped, as in ECR.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select

from cargobay import regions
from cargobay.errors import (
    InvalidParameter,
    ReplicationBackfillInProgress,
    ReplicationBackfillInvalidStatus,
    ReplicationBackfillNotFound,
)
from cargobay.jobs import queue
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.replication.config import Destination

TASK_KIND = "replication-backfill"
PREPARING, IN_PROGRESS, COMPLETE, FAILED = "PREPARING", "IN_PROGRESS", "COMPLETE", "FAILED"
STOPPING, STOPPED = "STOPPING", "STOPPED"
ACTIVE = (PREPARING, IN_PROGRESS, STOPPING)


@dataclass(frozen=True, slots=True)
class Backfill:
    id: str
    registry_id: str
    destination: Destination
    status: str
    failure_code: str | None
    started_at: float
    ended_at: float | None

    def summary(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "replicationBackfillId": self.id,
            "destination": self.destination.to_json(),
            "status": self.status,
            "startedAt": self.started_at,
        }
        if self.failure_code:
            body["failureCode"] = self.failure_code
        if self.ended_at:
            body["endedAt"] = self.ended_at
        return body


def _mine(registry_id: str) -> Any:
    """The registry's backfills started in the request's region."""
    b = schema.replication_backfills
    return and_(b.c.registry_id == registry_id, b.c.source_region == regions.current_key())


def _backfill(row: Any) -> Backfill:
    return Backfill(
        row.id,
        row.registry_id,
        Destination(row.region, row.destination_registry_id),
        row.status,
        row.failure_code,
        row.started_at,
        row.ended_at,
    )


class BackfillService:
    def __init__(self, db: Database, replication: Any) -> None:
        self.db = db
        self.replication = replication

    async def start(self, registry_id: str, destination: Destination) -> Backfill:
        config = await self.replication.configuration(registry_id)
        if not any(destination in rule.destinations for rule in config.rules):
            raise InvalidParameter(
                f"The destination {destination.region}/{destination.registry_id} is not in the "
                "registry's replication configuration"
            )
        b = schema.replication_backfills
        backfill_id = str(uuid.uuid4())
        now = time.time()
        async with self.db.write() as conn:
            running = (
                await conn.execute(
                    select(b.c.id).where(
                        _mine(registry_id),
                        b.c.region == destination.region,
                        b.c.destination_registry_id == destination.registry_id,
                        b.c.status.in_(ACTIVE),
                    )
                )
            ).first()
            if running is not None:
                raise ReplicationBackfillInProgress(
                    f"The replication backfill {running.id} to this destination is in progress"
                )
            await conn.execute(
                b.insert().values(
                    id=backfill_id,
                    registry_id=registry_id,
                    source_region=regions.current_key(),
                    region=destination.region,
                    destination_registry_id=destination.registry_id,
                    status=PREPARING,
                    started_at=now,
                )
            )
            await queue.enqueue(conn, TASK_KIND, {"backfill_id": backfill_id})
        return await self.get(registry_id, backfill_id)

    async def get(self, registry_id: str, backfill_id: str) -> Backfill:
        b = schema.replication_backfills
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(select(b).where(b.c.id == backfill_id, _mine(registry_id)))
            ).first()
        if row is None:
            raise ReplicationBackfillNotFound(
                f"The replication backfill '{backfill_id}' does not exist in the registry "
                f"with id '{registry_id}'"
            )
        return _backfill(row)

    async def stop(self, registry_id: str, backfill_id: str) -> Backfill:
        current = await self.get(registry_id, backfill_id)
        if current.status not in (PREPARING, IN_PROGRESS):
            raise ReplicationBackfillInvalidStatus(
                f"The replication backfill '{backfill_id}' is {current.status}"
            )
        b = schema.replication_backfills
        async with self.db.write() as conn:
            await conn.execute(
                b.update()
                .where(b.c.id == backfill_id, b.c.status.in_((PREPARING, IN_PROGRESS)))
                .values(status=STOPPED, ended_at=time.time())
            )
        return await self.get(registry_id, backfill_id)

    async def list(self, registry_id: str) -> list[Backfill]:
        b = schema.replication_backfills
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(b).where(_mine(registry_id)).order_by(b.c.started_at.desc())
                )
            ).all()
        return [_backfill(row) for row in rows]

    async def progress(self, backfill_id: str) -> dict[str, Any]:
        r = schema.replication_backfill_results
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(r.c.status, r.c.failure_code, func.count())
                    .where(r.c.backfill_id == backfill_id)
                    .group_by(r.c.status, r.c.failure_code)
                )
            ).all()
        total = sum(n for _, _, n in rows)
        return {
            "totalReplicationCount": total,
            "completedReplicationCount": sum(n for s, _, n in rows if s == COMPLETE),
            "failedReplicationCount": sum(n for s, _, n in rows if s == FAILED),
            "failureCodes": sorted({c for s, c, _ in rows if s == FAILED and c}),
        }

    async def results(
        self, backfill_id: str, status: str | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        """Finished results in id order after `after` (a page of at most `limit`)."""
        r = schema.replication_backfill_results
        query = select(r).where(
            r.c.backfill_id == backfill_id, r.c.id > after, r.c.status.in_((COMPLETE, FAILED))
        )
        if status:
            query = query.where(r.c.status == status)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(r.c.id).limit(limit))).all()
        results = []
        for row in rows:
            image_id = {"imageDigest": row.digest}
            if row.tag:
                image_id["imageTag"] = row.tag
            entry: dict[str, Any] = {
                "repositoryName": row.repository_name,
                "imageId": image_id,
                "status": row.status,
                "_id": row.id,
            }
            if row.failure_code:
                entry["failureCode"] = row.failure_code
            results.append(entry)
        return results

    # -- the tasks ------------------------------------------------------------------------

    async def prepare(self, backfill_id: str) -> None:
        """List what the backfill copies and queue it (the `replication-backfill` task)."""
        b, r = schema.replication_backfills, schema.replication_backfill_results
        repos, tags, m = schema.repositories, schema.tags, schema.manifests
        async with self.db.read_now() as conn:
            row = (await conn.execute(select(b).where(b.c.id == backfill_id))).first()
        if row is None or row.status != PREPARING:
            return
        backfill = _backfill(row)
        config = await self.replication.configuration(backfill.registry_id)
        rules = [rule for rule in config.rules if backfill.destination in rule.destinations]
        async with self.db.read() as conn:
            repositories = (
                await conn.execute(
                    # The task runs in the region of the request that started it (`jobs.queue`):
                    # that region's configuration and repositories.
                    select(repos.c.id, repos.c.name).where(
                        repos.c.registry_id == backfill.registry_id,
                        repos.c.region == regions.current_key(),
                    )
                )
            ).all()
            images: list[tuple[int, str, str, str | None]] = []
            for repo_id, name in repositories:
                if not any(rule.matches(name) for rule in rules):
                    continue
                tagged = (
                    await conn.execute(
                        select(tags.c.digest, tags.c.name)
                        .where(tags.c.repository_id == repo_id)
                        .order_by(tags.c.name)
                    )
                ).all()
                images += [(repo_id, name, digest, tag) for digest, tag in tagged]
                named = {digest for digest, _ in tagged}
                children = select(schema.manifest_references.c.target_digest).where(
                    schema.manifest_references.c.repository_id == repo_id
                )
                untagged = (
                    await conn.execute(
                        select(m.c.digest).where(
                            m.c.repository_id == repo_id, m.c.digest.not_in(children)
                        )
                    )
                ).scalars()
                images += [(repo_id, name, d, None) for d in untagged if d not in named]
        async with self.db.write() as conn:
            for repo_id, name, digest, tag in images:
                result = await conn.execute(
                    r.insert().values(
                        backfill_id=backfill_id,
                        repository_name=name,
                        digest=digest,
                        tag=tag,
                        status=IN_PROGRESS,
                    )
                )
                await self.replication.enqueue(
                    conn,
                    repo_id,
                    backfill.registry_id,
                    name,
                    digest,
                    tag,
                    backfill.destination,
                    backfill=(backfill_id, result.inserted_primary_key[0]),
                )
            status = IN_PROGRESS if images else COMPLETE
            await conn.execute(
                b.update()
                .where(b.c.id == backfill_id, b.c.status == PREPARING)
                .values(status=status, ended_at=None if images else time.time())
            )

    async def active(self, backfill_id: str) -> bool:
        b = schema.replication_backfills
        async with self.db.read_now() as conn:
            status = (
                await conn.execute(select(b.c.status).where(b.c.id == backfill_id))
            ).scalar_one_or_none()
        return status == IN_PROGRESS

    async def finish(self, backfill_id: str, result_id: int, status: str, code: str | None) -> None:
        """Record one image's outcome; the backfill completes with its last image."""
        b, r = schema.replication_backfills, schema.replication_backfill_results
        async with self.db.write() as conn:
            await conn.execute(
                r.update().where(r.c.id == result_id).values(status=status, failure_code=code)
            )
            pending = (
                await conn.execute(
                    select(func.count()).where(
                        r.c.backfill_id == backfill_id, r.c.status == IN_PROGRESS
                    )
                )
            ).scalar_one()
            if not pending:
                await conn.execute(
                    b.update()
                    .where(b.c.id == backfill_id, b.c.status == IN_PROGRESS)
                    .values(status=COMPLETE, ended_at=time.time())
                )
