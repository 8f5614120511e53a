"""Image scans as the ECR API sees them: status and findings per image, the quota, and the
push and delete hooks (the registry scanning configuration and account settings are
`settings`, scans/settings.py).

The scan itself runs later as a `scan` task (scans/job.py); this service only writes rows,
always in the caller's transaction or its own, so a scan is queued exactly when its push
commits and a status is never half-written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from cargobay import regions
from cargobay.errors import (
    ImageArchived,
    ImageNotFound,
    ScanNotFound,
    ScanQuotaExceeded,
    UnsupportedImageType,
)
from cargobay.jobs import queue
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore, upsert
from cargobay.oci.manifest import INDEX_TYPES
from cargobay.registry.archive import ARCHIVED
from cargobay.registry.hooks import REGISTRY, Deleted, Pushed
from cargobay.registry.repositories import Repository
from cargobay.scanning.mediatypes import IMAGE_CONFIGS
from cargobay.scans import config as cfg
from cargobay.scans.settings import ScanSettings, push_configuration, push_reads

log = logging.getLogger("cargobay.scans")

TASK_KIND = "scan"
QUOTA_SECONDS = 24 * 3600.0
IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"
UNSUPPORTED_IMAGE = "UNSUPPORTED_IMAGE"
IMAGE, INDEX = "image", "index"


def scan_kind(content: bytes) -> str | None:
    """IMAGE, INDEX, or None for what is not a container image (an artifact: an SBOM, a
    signature, a Helm chart... or an index of artifacts' manifests)."""
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("artifactType"):
        return None
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        return INDEX
    config = document.get("config")
    if isinstance(config, dict) and config.get("mediaType") in IMAGE_CONFIGS:
        return IMAGE
    return None


@dataclass(frozen=True, slots=True)
class ScanRecord:
    digest: str
    status: str
    description: str | None
    severity_counts: dict[str, int]
    finding_count: int
    completed_at: float | None
    source_updated_at: float | None
    database_version: int | None
    updated_at: float


def _record(row: Any) -> ScanRecord:
    return ScanRecord(
        row.digest,
        row.status,
        row.description,
        json.loads(row.severity_counts) if row.severity_counts else {},
        int(row.finding_count or 0),
        row.completed_at,
        row.source_updated_at,
        row.database_version,
        row.updated_at,
    )


class ScanService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.settings = ScanSettings(db)
        # Set by the process that runs the task queue: look for work at once after a push.
        self.wake: Callable[[], None] | None = None
        # Called inside the transaction that stores a finished scan, with (conn,
        # repository id, digest, status, severity counts): the `ECR Image Scan` event.
        self.completed: list[Callable[..., Awaitable[None]]] = []

    # -- queueing ----------------------------------------------------------------------------

    async def _queue(self, conn: Any, repo: Repository, digest: str, key: str, now: float) -> None:
        await upsert(
            conn,
            schema.image_scans,
            ["repository_id", "digest"],
            repository_id=repo.id,
            digest=digest,
            status=IN_PROGRESS,
            description="The scan is in progress.",
            updated_at=now,
        )
        payload = {
            "repository_id": repo.id,
            "registry_id": repo.registry_id,
            "repository": repo.name,
            "digest": digest,
        }
        await queue.enqueue(conn, TASK_KIND, payload, key=key)
        if self.wake is not None:
            # After the commit (the hook runs inside the transaction); the tick is the backstop.
            asyncio.get_running_loop().call_later(0.3, self.wake)

    async def start(self, repo: Repository, digest: str) -> ScanRecord:
        """StartImageScan: queue a scan unless the image was scanned (on push or on demand) in
        the last 24 hours (ScanQuotaExceeded); artifacts are UnsupportedImageType."""
        m, s = schema.manifests, schema.image_scans
        now = time.time()
        async with self.db.write() as conn:
            content = (
                await conn.execute(
                    select(m.c.content).where(m.c.repository_id == repo.id, m.c.digest == digest)
                )
            ).scalar_one_or_none()
            if content is None:
                raise ImageNotFound(f"The image with digest {digest} does not exist")
            a = schema.image_archives
            status = (
                await conn.execute(
                    select(a.c.status).where(a.c.repository_id == repo.id, a.c.digest == digest)
                )
            ).scalar_one_or_none()
            if status == ARCHIVED:
                raise ImageArchived(f"The image {digest} is archived and cannot be scanned")
            if scan_kind(content) is None:
                raise UnsupportedImageType(
                    f"The image {digest} is not a container image and cannot be scanned"
                )
            started = (
                await conn.execute(
                    select(s.c.quota_started_at).where(
                        s.c.repository_id == repo.id, s.c.digest == digest
                    )
                )
            ).scalar_one_or_none()
            if started is not None and started > now - QUOTA_SECONDS:
                raise ScanQuotaExceeded(
                    f"The scan quota per image has been exceeded. Wait and try again: image "
                    f"{digest} was scanned less than 24 hours ago"
                )
            await self._queue(conn, repo, digest, f"start:{repo.id}:{digest}:{now}", now)
            await conn.execute(
                s.update()
                .where(s.c.repository_id == repo.id, s.c.digest == digest)
                .values(quota_started_at=now)
            )
        log.info("scan of %s@%s requested", repo.name, digest)
        return await self.get(repo, digest)

    async def ensure(self, repo: Repository, digest: str) -> None:
        """A scan row for an image scanned as part of an index (no task, no quota)."""
        async with self.db.write() as conn:
            await insert_ignore(
                conn,
                schema.image_scans,
                repository_id=repo.id,
                digest=digest,
                status=IN_PROGRESS,
                description="The scan is in progress.",
                finding_count=0,
                scans=0,
                updated_at=time.time(),
            )

    @staticmethod
    def push_reads() -> dict[str, Any]:
        """What `on_push` needs, read with the other hooks' settings (`registry.hooks`)."""
        return push_reads()

    async def on_push(self, conn: Any, event: Pushed) -> None:
        """The push hook: queue a scan of a new image whose repository scans on push (its own
        scanOnPush, or a registry SCAN_ON_PUSH/CONTINUOUS_SCAN rule matching its name)."""
        if event.origin == REGISTRY or not event.created:
            return
        if event.subject or (event.artifact_type and event.artifact_type not in IMAGE_CONFIGS):
            return  # an artifact, or something attached to an image: nothing to scan
        configuration = await push_configuration(
            conn, event.repo.registry_id, event.settings, event.repo.region_key
        )
        frequency, _ = configuration.frequency(event.repo.name, event.repo.scan_on_push)
        if frequency == cfg.MANUAL:
            return
        now = time.time()
        # Finished tasks keep their keys: the time tells a push after a delete apart.
        key = f"push:{event.repo.id}:{event.digest}:{now}"
        await self._queue(conn, event.repo, event.digest, key, now)
        s = schema.image_scans
        await conn.execute(
            s.update()
            .where(s.c.repository_id == event.repo.id, s.c.digest == event.digest)
            .values(quota_started_at=now)
        )

    async def on_delete(self, conn: Any, event: Deleted) -> None:
        """The delete hook: an image's scan goes with it."""
        if event.untagged_only:
            return
        await self._forget(conn, event.repo.id, event.digest)

    async def _forget(self, conn: Any, repository_id: int, digest: str) -> None:
        for table in (schema.image_scans, schema.image_scan_findings):
            await conn.execute(
                table.delete().where(
                    table.c.repository_id == repository_id, table.c.digest == digest
                )
            )

    async def rescan_continuous(self) -> int:
        """Queue a rescan of every image in repositories a CONTINUOUS_SCAN rule covers (after a
        vulnerability database import); the number queued. Rescans do not count against the
        StartImageScan quota."""
        c, r, m = schema.registry_scanning_configurations, schema.repositories, schema.manifests
        queued = 0
        async with self.db.read_now() as conn:
            configurations = (await conn.execute(select(c))).all()
        version = time.time()
        for row in configurations:
            configuration = cfg.load(row.scan_type, json.loads(row.rules))
            async with self.db.write() as conn:
                repos = (
                    await conn.execute(
                        select(
                            r.c.id, r.c.name, r.c.created_at, r.c.scan_on_push, r.c.region
                        ).where(r.c.registry_id == row.registry_id, r.c.region == row.region)
                    )
                ).all()
                for repo_row in repos:
                    frequency, _ = configuration.frequency(repo_row.name, repo_row.scan_on_push)
                    if frequency != cfg.CONTINUOUS_SCAN:
                        continue
                    repo = Repository(
                        repo_row.id,
                        row.registry_id,
                        repo_row.name,
                        repo_row.created_at,
                        region_key=repo_row.region,
                    )
                    images = await conn.execute(
                        select(m.c.digest, m.c.content).where(
                            m.c.repository_id == repo.id,
                            m.c.subject_digest.is_(None),
                        )
                    )
                    for image in images.all():
                        if scan_kind(image.content) is None:
                            continue
                        key = f"rescan:{version}:{repo.id}:{image.digest}"
                        with regions.serving_key(repo.region_key):  # the task's region
                            await self._queue(conn, repo, image.digest, key, time.time())
                        queued += 1
        return queued

    # -- results -----------------------------------------------------------------------------

    async def record(
        self,
        repository_id: int,
        digest: str,
        status: str,
        description: str,
        findings: list[dict[str, Any]] | None = None,
        severity_counts: dict[str, int] | None = None,
        source_updated_at: float | None = None,
        database_version: int | None = None,
    ) -> None:
        """Store a scan's outcome (its findings replace the previous scan's)."""
        s, f = schema.image_scans, schema.image_scan_findings
        now = time.time()
        async with self.db.write() as conn:
            exists = (
                await conn.execute(
                    select(s.c.scans).where(
                        s.c.repository_id == repository_id, s.c.digest == digest
                    )
                )
            ).first()
            if exists is None:
                return  # the image was deleted while it was being scanned
            await conn.execute(
                f.delete().where(f.c.repository_id == repository_id, f.c.digest == digest)
            )
            if findings:
                await conn.execute(
                    f.insert(),
                    [
                        {
                            "repository_id": repository_id,
                            "digest": digest,
                            "position": position,
                            "finding": json.dumps(finding, separators=(",", ":")),
                        }
                        for position, finding in enumerate(findings)
                    ],
                )
            completed = status == COMPLETE
            await conn.execute(
                s.update()
                .where(s.c.repository_id == repository_id, s.c.digest == digest)
                .values(
                    status=status,
                    description=description,
                    severity_counts=json.dumps(severity_counts or {}) if completed else None,
                    finding_count=len(findings or []),
                    completed_at=now if completed else None,
                    source_updated_at=source_updated_at,
                    database_version=database_version,
                    scans=s.c.scans + 1,
                    updated_at=now,
                )
            )
            for hook in self.completed:
                await hook(conn, repository_id, digest, status, severity_counts or {})

    async def get(self, repo: Repository, digest: str) -> ScanRecord:
        found = await self.summaries(repo, [digest])
        if digest not in found:
            raise ScanNotFound(
                f"Image scan does not exist for the image with '{digest}' in the repository "
                f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
            )
        return found[digest]

    async def summaries(self, repo: Repository, digests: list[str]) -> dict[str, ScanRecord]:
        """The scans of these images (images never scanned are absent)."""
        if not digests:
            return {}
        s = schema.image_scans
        async with self.db.read_now() as conn:
            rows = await conn.execute(
                select(s).where(s.c.repository_id == repo.id, s.c.digest.in_(digests))
            )
            return {row.digest: _record(row) for row in rows}

    async def findings(
        self, repo: Repository, digest: str, start: int, limit: int
    ) -> tuple[ScanRecord, list[dict[str, Any]], int | None]:
        """A page of the latest scan's findings from position `start`; the next page's start
        (None at the end). ScanNotFound when the image was never scanned."""
        record = await self.get(repo, digest)
        f = schema.image_scan_findings
        async with self.db.read_now() as conn:
            rows = (
                await conn.execute(
                    select(f.c.finding)
                    .where(
                        f.c.repository_id == repo.id,
                        f.c.digest == digest,
                        f.c.position >= start,
                    )
                    .order_by(f.c.position)
                    .limit(limit + 1)
                )
            ).all()
        page = [json.loads(row.finding) for row in rows[:limit]]
        return record, page, (start + limit if len(rows) > limit else None)

    async def all_findings(self, repo: Repository, digest: str) -> list[dict[str, Any]]:
        return (await self.findings(repo, digest, 0, 1 << 30))[1]

    async def counts(self) -> tuple[int, dict[str, int]]:
        """Completed scans in total, and images by current scan status (for /metrics)."""
        s = schema.image_scans
        async with self.db.read() as conn:
            total = (await conn.execute(select(func.coalesce(func.sum(s.c.scans), 0)))).scalar_one()
            rows = await conn.execute(select(s.c.status, func.count()).group_by(s.c.status))
            return int(total), {row[0]: int(row[1]) for row in rows}
