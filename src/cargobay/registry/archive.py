"""The archive storage class: moving images between STANDARD and ARCHIVE (issue 18).

An archived image keeps its manifest, tags and blobs (cargobay has one blob store; the class
changes what may be pulled and how its bytes are metered, not where they live): pulls of it
fail with `ImageArchived` (`ManifestService.get` checks the status), DescribeImages shows it
only when asked, and `registry.usage` meters the bytes only archived images reference at the
archive price. Restoring is immediate, so an image never stays ACTIVATING here; restore or a
re-push of the same manifest makes it pullable again, byte for byte.

The images of an image index move with it: archiving an index archives the manifests it lists
and restoring restores them, so no platform of an archived image can be pulled by digest. Such
a manifest cannot change class on its own (`ImageStorageClassUpdateNotSupported`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select

from cargobay.errors import ImageNotFound, ImageStorageClassUpdateNotSupported
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert
from cargobay.registry.hooks import Pushed
from cargobay.registry.repositories import Repository

ACTIVE, ARCHIVED, ACTIVATING = "ACTIVE", "ARCHIVED", "ACTIVATING"
STANDARD, ARCHIVE = "STANDARD", "ARCHIVE"
STORAGE_CLASSES = (STANDARD, ARCHIVE)


@dataclass(frozen=True, slots=True)
class ArchiveState:
    """An image's storage-class status and when it last moved (None: never)."""

    status: str = ACTIVE
    archived_at: float | None = None
    activated_at: float | None = None


def storage_class(status: str) -> str:
    """The storage class an image status is in (lifecycle previews show it)."""
    return ARCHIVE if status == ARCHIVED else STANDARD


class ArchiveService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def states(self, repo: Repository, digests: list[str]) -> dict[str, ArchiveState]:
        """The states of the named images that ever were archived (others are ACTIVE)."""
        if not digests:
            return {}
        a = schema.image_archives
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(a.c.digest, a.c.status, a.c.archived_at, a.c.activated_at).where(
                    a.c.repository_id == repo.id, a.c.digest.in_(digests)
                )
            )
            return {
                row.digest: ArchiveState(row.status, row.archived_at, row.activated_at)
                for row in rows
            }

    async def archived_blobs(self, repo: Repository, digests: list[str]) -> set[str]:
        """The named blobs that only archived images of the repository reference (ECR's
        layer availability ARCHIVED); a blob one active image uses is available."""
        if not digests:
            return set()
        r, a = schema.manifest_references, schema.image_archives
        archived = case((a.c.status == ARCHIVED, 1), else_=0)
        query = (
            select(r.c.target_digest)
            .select_from(
                r.outerjoin(
                    a,
                    and_(a.c.repository_id == r.c.repository_id, a.c.digest == r.c.manifest_digest),
                )
            )
            .where(
                r.c.repository_id == repo.id,
                r.c.kind == "blob",
                r.c.target_digest.in_(digests),
            )
            .group_by(r.c.target_digest)
            .having(func.min(archived) == 1)
        )
        async with self.db.read() as conn:
            return {row.target_digest for row in await conn.execute(query)}

    async def update(
        self, repo: Repository, digest: str, target: str, *, now: float | None = None
    ) -> str:
        """Move an image (and the manifests its index lists) to `target` (STANDARD or
        ARCHIVE); its status afterwards. ImageNotFound when the repository has no such image,
        ImageStorageClassUpdateNotSupported when it is already there or is part of an index."""
        if target not in STORAGE_CLASSES:
            raise ImageStorageClassUpdateNotSupported(f"unknown storage class {target!r}")
        when = time.time() if now is None else now
        m, r, a = schema.manifests, schema.manifest_references, schema.image_archives
        async with self.db.write() as conn:
            found = (
                await conn.execute(
                    select(m.c.digest).where(m.c.repository_id == repo.id, m.c.digest == digest)
                )
            ).first()
            if found is None:
                raise ImageNotFound(
                    f"The image with digest '{digest}' does not exist within the repository "
                    f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
                )
            parent = (
                await conn.execute(
                    select(r.c.manifest_digest).where(
                        r.c.repository_id == repo.id,
                        r.c.target_digest == digest,
                        r.c.kind == "manifest",
                    )
                )
            ).first()
            if parent is not None:
                raise ImageStorageClassUpdateNotSupported(
                    f"The image '{digest}' is listed by the image index "
                    f"'{parent.manifest_digest}'; change the storage class of the index instead"
                )
            current = (
                await conn.execute(
                    select(a.c.status).where(a.c.repository_id == repo.id, a.c.digest == digest)
                )
            ).scalar_one_or_none() or ACTIVE
            children = [
                row.target_digest
                for row in await conn.execute(
                    select(r.c.target_digest).where(
                        r.c.repository_id == repo.id,
                        r.c.manifest_digest == digest,
                        r.c.kind == "manifest",
                    )
                )
            ]
            if target == ARCHIVE:
                if current == ARCHIVED:
                    raise ImageStorageClassUpdateNotSupported(
                        f"The image '{digest}' is already in the ARCHIVE storage class"
                    )
                for each in (digest, *children):
                    await _archive(conn, repo.id, each, when)
                return ARCHIVED
            if current != ARCHIVED:
                raise ImageStorageClassUpdateNotSupported(
                    f"The image '{digest}' is not archived; only archived images can be "
                    "restored to the STANDARD storage class"
                )
            for each in (digest, *children):
                await _activate(conn, repo.id, each, when)
            return ACTIVE

    async def on_push(self, conn: Any, event: Pushed) -> None:
        """A re-push of an archived image restores it, as on ECR (in the push's transaction)."""
        if event.created:
            return
        await _activate(conn, event.repo.id, event.digest, time.time())


async def _archive(conn: Any, repository_id: int, digest: str, when: float) -> None:
    a = schema.image_archives
    previous = (
        await conn.execute(
            select(a.c.activated_at).where(a.c.repository_id == repository_id, a.c.digest == digest)
        )
    ).scalar_one_or_none()
    await upsert(
        conn,
        a,
        ["repository_id", "digest"],
        repository_id=repository_id,
        digest=digest,
        status=ARCHIVED,
        archived_at=when,
        activated_at=previous,
    )


async def _activate(conn: Any, repository_id: int, digest: str, when: float) -> None:
    a = schema.image_archives
    await conn.execute(
        a.update()
        .where(a.c.repository_id == repository_id, a.c.digest == digest, a.c.status == ARCHIVED)
        .values(status=ACTIVE, activated_at=when)
    )
