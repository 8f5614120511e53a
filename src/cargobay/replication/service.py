"""Replication as the rest of the registry sees it: the configuration per registry and region
(as in ECR: a push replicates by its own region's configuration), the
tasks a push leaves behind, and where each image stands at each destination.

A push writes one `replicate` task per destination in its own transaction (`on_push`), so a
crash after the commit never loses a replication and a failed push never starts one. The
statuses are rows beside the tasks, updated as the tasks run (replication/job.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cargobay import regions
from cargobay.jobs import queue
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert
from cargobay.registry.hooks import CLIENT, PUSHED_REGION, PUSHED_REGISTRY, Hooks, Pushed
from cargobay.replication.backfill import BackfillService
from cargobay.replication.config import (
    Destination,
    ReplicationConfiguration,
    from_stored,
    parse_configuration,
)

TASK_KIND = "replicate"
IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"


@dataclass(frozen=True, slots=True)
class ReplicationStatus:
    region: str
    registry_id: str
    status: str
    failure_code: str | None = None

    def to_json(self) -> dict[str, str]:
        body = {"region": self.region, "registryId": self.registry_id, "status": self.status}
        if self.failure_code:
            body["failureCode"] = self.failure_code
        return body


class ReplicationService:
    def __init__(
        self, db: Database, region: str, remote_regions: frozenset[str], hooks: Hooks
    ) -> None:
        self.db = db
        self.default_region = region
        self.known_regions = frozenset({region, *remote_regions})
        r = schema.replication_configurations
        mine = select(r.c.configuration).where(
            r.c.registry_id == PUSHED_REGISTRY, r.c.region == PUSHED_REGION
        )
        # Read with the other hooks' settings, in the push's one settings statement.
        hooks.on_push(self._pushed, reads={"replication": mine.scalar_subquery()})
        self.backfills = BackfillService(db, self)
        # Set by the process that runs the task queue: look for the new task soon after the
        # push commits (other processes see it within their poll).
        self.wake: Callable[[], None] | None = None

    @property
    def region(self) -> str:
        """The region being served (`regions_served`): the source region of its pushes."""
        return regions.current(self.default_region)

    async def _pushed(self, conn: Any, event: Pushed) -> None:
        """Replicate what clients push; copies made by replication or the pull-through cache
        stay where they are (ECR replicates one hop, and never cached images)."""
        if event.origin != CLIENT:
            return
        repo = event.repo
        config = None
        if "replication" in event.settings:
            text = event.settings["replication"]
            if not text:
                return  # no configuration, no rule: nothing to replicate
            config = from_stored(json.loads(text))
        await self.on_push(
            conn, repo.id, repo.registry_id, repo.name, event.digest, event.tag, config
        )

    async def configuration(self, registry_id: str, conn: Any = None) -> ReplicationConfiguration:
        """The registry's configuration in the request's (or task's) region."""
        r = schema.replication_configurations
        query = select(r.c.configuration).where(
            r.c.registry_id == registry_id, r.c.region == regions.current_key()
        )
        if conn is not None:
            text = (await conn.execute(query)).scalar_one_or_none()
        else:
            async with self.db.read_now() as reader:
                text = (await reader.execute(query)).scalar_one_or_none()
        return from_stored(json.loads(text)) if text else ReplicationConfiguration()

    async def put_configuration(self, registry_id: str, data: Any) -> ReplicationConfiguration:
        """Validate and store (InvalidParameter when ECR would refuse it)."""
        config = parse_configuration(
            data,
            source_region=self.region,
            source_account=registry_id,
            known_regions=self.known_regions,
        )
        async with self.db.write() as conn:
            await upsert(
                conn,
                schema.replication_configurations,
                ["registry_id", "region"],
                registry_id=registry_id,
                region=regions.current_key(),
                configuration=json.dumps(config.to_json()),
                updated_at=time.time(),
            )
        return config

    async def on_push(
        self,
        conn: Any,
        repository_id: int,
        registry_id: str,
        name: str,
        digest: str,
        tag: str | None,
        config: ReplicationConfiguration | None = None,
    ) -> list[Destination]:
        """Inside the push's transaction: one task and one IN_PROGRESS status per
        destination whose rules match the repository (`config`: the registry's, when the
        caller read it in this transaction already)."""
        if config is None:
            config = await self.configuration(registry_id, conn)
        # Never the region and account pushed to (a replica arriving there must not replicate
        # onto itself).
        here = (self.region, registry_id)
        destinations = [
            d for d in config.destinations_for(name) if (d.region, d.registry_id) != here
        ]
        for destination in destinations:
            await self.enqueue(conn, repository_id, registry_id, name, digest, tag, destination)
        return destinations

    async def enqueue(
        self,
        conn: Any,
        repository_id: int,
        registry_id: str,
        name: str,
        digest: str,
        tag: str | None,
        destination: Destination,
        *,
        backfill: tuple[str, int] | None = None,
    ) -> None:
        """One `replicate` task and an IN_PROGRESS status, in the caller's transaction."""
        await self._set_status(conn, repository_id, digest, destination, IN_PROGRESS, None, None)
        payload: dict[str, Any] = {
            "repository_id": repository_id,
            "registry_id": registry_id,
            "name": name,
            "digest": digest,
            "tag": tag,
            "region": destination.region,
            "destination_registry_id": destination.registry_id,
        }
        if backfill is not None:
            payload["backfill_id"], payload["backfill_result_id"] = backfill
        await queue.enqueue(conn, TASK_KIND, payload)
        if self.wake is not None:
            # Called inside the push's transaction: look a moment later, once it committed.
            asyncio.get_running_loop().call_later(0.3, self.wake)

    async def _set_status(
        self,
        conn: Any,
        repository_id: int,
        digest: str,
        destination: Destination,
        status: str,
        failure_code: str | None,
        failure_reason: str | None,
        bytes_sent: int = 0,
    ) -> None:
        await upsert(
            conn,
            schema.replication_statuses,
            ["repository_id", "digest", "region", "destination_registry_id"],
            repository_id=repository_id,
            digest=digest,
            region=destination.region,
            destination_registry_id=destination.registry_id,
            status=status,
            failure_code=failure_code,
            failure_reason=failure_reason,
            bytes_sent=bytes_sent,
            updated_at=time.time(),
        )

    async def record(
        self,
        repository_id: int,
        digest: str,
        destination: Destination,
        status: str,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        bytes_sent: int = 0,
    ) -> None:
        async with self.db.write() as conn:
            await self._set_status(
                conn,
                repository_id,
                digest,
                destination,
                status,
                failure_code,
                failure_reason,
                bytes_sent,
            )

    async def statuses(self, repository_id: int, digest: str) -> list[ReplicationStatus]:
        s = schema.replication_statuses
        async with self.db.read_now() as conn:
            rows = (
                await conn.execute(
                    select(s.c.region, s.c.destination_registry_id, s.c.status, s.c.failure_code)
                    .where(s.c.repository_id == repository_id, s.c.digest == digest)
                    .order_by(s.c.region, s.c.destination_registry_id)
                )
            ).all()
        return [ReplicationStatus(*row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """Statuses by value, for /metrics."""
        s = schema.replication_statuses
        async with self.db.read() as conn:
            rows = (await conn.execute(select(s.c.status))).all()
        counts = {IN_PROGRESS: 0, COMPLETE: 0, FAILED: 0}
        for (status,) in rows:
            counts[status] = counts.get(status, 0) + 1
        return counts
