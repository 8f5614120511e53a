"""The archive storage class: moving images between STANDARD and ARCHIVE (issue 18).

An archived image keeps its manifest, tags and blobs (cargobay has one blob store; the class
changes what may be pulled and how its bytes are metered, not where they live): pulls of it
fail with `ImageArchived` (`ManifestService.get` checks the status), and so do pulls of
the blobs only archived images use (`LayerArchived`, `check_blob`); DescribeImages shows it
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

from cargobay.errors import ImageNotFound, ImageStorageClassUpdateNotSupported, LayerArchived
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import archives as records
from cargobay.metadata.records import manifests as manifest_records
from cargobay.registry.hooks import Pushed
from cargobay.registry.repositories import Repository

ACTIVE, ARCHIVED = records.ACTIVE, records.ARCHIVED
ACTIVATING = "ACTIVATING"
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
        async with self.db.read() as conn:
            found = await records.rows(conn, repo.id, digests)
        return {
            row.digest: ArchiveState(row.status, row.archived_at, row.activated_at) for row in found
        }

    async def archived_blobs(self, repo: Repository, digests: list[str]) -> set[str]:
        """The named blobs that only archived images of the repository reference (ECR's
        layer availability ARCHIVED); a blob one active image uses is available."""
        if not digests:
            return set()
        async with self.db.read() as conn:
            return await records.archived_blobs(conn, repo.id, digests)

    async def check_blob(self, repo: Repository, digest: str) -> None:
        """LayerArchived when only archived images of the repository reference the blob: its
        bytes are not pullable until one of them is restored (or an active image uses it)."""
        async with self.db.read_now() as conn:
            archived = await records.blob_archived(conn, repo.id, digest)
        if archived:
            self.refuse_blob(repo, digest)

    @staticmethod
    def refuse_blob(repo: Repository, digest: str) -> None:
        """Raise `check_blob`'s LayerArchived for a blob already known to be archived only
        (`BlobService.stat_for_pull` says so in the statement that found it)."""
        raise LayerArchived(
            f"The layer '{digest}' belongs only to archived images in the repository with "
            f"name '{repo.name}' in registry with id '{repo.registry_id}'; restore an image "
            "with UpdateImageStorageClass (targetStorageClass STANDARD) to pull it",
            detail={"digest": digest},
        )

    async def update(
        self, repo: Repository, digest: str, target: str, *, now: float | None = None
    ) -> str:
        """Move an image (and the manifests its index lists) to `target` (STANDARD or
        ARCHIVE); its status afterwards. ImageNotFound when the repository has no such image,
        ImageStorageClassUpdateNotSupported when it is already there or is part of an index."""
        if target not in STORAGE_CLASSES:
            raise ImageStorageClassUpdateNotSupported(f"unknown storage class {target!r}")
        when = time.time() if now is None else now
        async with self.db.write() as conn:
            if not await manifest_records.present(conn, repo.id, [digest]):
                raise ImageNotFound(
                    f"The image with digest '{digest}' does not exist within the repository "
                    f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
                )
            parents = await manifest_records.parents(conn, repo.id, digest)
            if parents:
                raise ImageStorageClassUpdateNotSupported(
                    f"The image '{digest}' is listed by the image index "
                    f"'{parents[0]}'; change the storage class of the index instead"
                )
            current = await records.status(conn, repo.id, digest)
            children = await records.children(conn, repo.id, digest)
            if target == ARCHIVE:
                if current == ARCHIVED:
                    raise ImageStorageClassUpdateNotSupported(
                        f"The image '{digest}' is already in the ARCHIVE storage class"
                    )
                for each in (digest, *children):
                    await records.archive(conn, repo.id, each, when)
                return ARCHIVED
            if current != ARCHIVED:
                raise ImageStorageClassUpdateNotSupported(
                    f"The image '{digest}' is not archived; only archived images can be "
                    "restored to the STANDARD storage class"
                )
            for each in (digest, *children):
                await records.activate(conn, repo.id, each, when)
            return ACTIVE

    async def on_push(self, conn: Conn, event: Pushed) -> None:
        """A re-push of an archived image restores it, as on ECR (in the push's transaction)."""
        if event.created:
            return
        await records.activate(conn, event.repo.id, event.digest, time.time())
