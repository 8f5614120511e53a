"""Images as the ECR API sees them: a manifest in a repository plus the tags that name it.

Reads the same tables as the `/v2/` door; writes go through `ManifestService.put_image` and
`DeleteService`, so both doors share one push and one delete path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cargobay.errors import DomainError, ImageNotFound
from cargobay.metadata.db import Database
from cargobay.metadata.records import images as records
from cargobay.metadata.records import manifests as manifest_records
from cargobay.metadata.records import tags as tag_records
from cargobay.registry.archive import ACTIVE
from cargobay.registry.deletes import ImageRef, check_refs, named_digest
from cargobay.registry.repositories import Repository


@dataclass(frozen=True, slots=True)
class ImageRow:
    digest: str
    media_type: str
    artifact_type: str | None
    subject_digest: str | None
    size: int
    image_size: int
    pushed_at: float
    last_pulled_at: float | None
    tags: list[str] = field(default_factory=list)
    # The archive storage class (registry.archive): ACTIVE or ARCHIVED, and when it last moved.
    status: str = ACTIVE
    archived_at: float | None = None
    activated_at: float | None = None


class ImageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_ids(
        self,
        repo: Repository,
        tag_status: str,
        after: tuple[str, str] | None,
        limit: int,
        image_status: str = "ANY",
    ) -> list[tuple[str, str | None]]:
        """(digest, tag) pairs ordered by digest then tag; untagged images appear once with
        tag None. `tag_status` is TAGGED, UNTAGGED or ANY."""
        async with self.db.read() as conn:
            return await records.list_ids(conn, repo.id, tag_status, after, limit, image_status)

    async def describe(
        self,
        repo: Repository,
        digests: list[str] | None = None,
        *,
        tag_status: str = "ANY",
        after: str | None = None,
        limit: int | None = None,
        image_status: str = "ANY",
    ) -> list[ImageRow]:
        """Images (with their tags) in digest order: the named ones, or a page of all."""
        async with self.db.read() as conn:
            rows = await records.describe(
                conn,
                repo.id,
                digests,
                tag_status=tag_status,
                after=after,
                limit=limit,
                image_status=image_status,
            )
            tags = await tag_records.on_each(conn, repo.id, [row.digest for row in rows])
        return [
            ImageRow(
                row.digest,
                row.media_type,
                row.artifact_type,
                row.subject_digest,
                int(row.size),
                int(row.image_size),
                row.pushed_at,
                row.last_pulled_at,
                tags[row.digest],
                row.status,
                row.archived_at,
                row.activated_at,
            )
            for row in rows
        ]

    async def resolve(self, repo: Repository, refs: Sequence[ImageRef]) -> list[str | DomainError]:
        """The digest each reference names, or the domain error that says why it names none:
        two queries (the tags, then the manifests named by digest alone) for any number."""
        results: list[str | DomainError | None] = list(check_refs(refs))
        checked = [i for i, result in enumerate(results) if result is None]
        async with self.db.read() as conn:
            tags = [tag for i in checked if (tag := refs[i].tag)]
            tagged = await tag_records.digests_of(conn, repo.id, tags)
            alone = [d for i in checked if not refs[i].tag and (d := refs[i].digest)]
            present = await manifest_records.present(conn, repo.id, alone) if alone else set()
        for i in checked:
            try:
                digest = named_digest(refs[i], tagged)
                if not refs[i].tag and digest not in present:
                    raise ImageNotFound()
                results[i] = digest
            except DomainError as exc:
                results[i] = exc
        return [result for result in results if result is not None]
