"""Images as the ECR API sees them: a manifest in a repository plus the tags that name it.

Reads the same tables as the `/v2/` door; writes go through `ManifestService.put_image` and
`DeleteService`, so both doors share one push and one delete path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.registry.archive import ACTIVE
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


def _archive_join(m, a):
    return and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)


def _with_status(query, status_column, image_status: str):
    """`image_status` is ACTIVE, ARCHIVED, ACTIVATING or ANY (DescribeImagesFilter's enum)."""
    if image_status == "ANY":
        return query
    return query.where(status_column == image_status)


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
        m, t, a = schema.manifests, schema.tags, schema.image_archives
        query = (
            select(m.c.digest, t.c.name)
            .select_from(
                m.outerjoin(
                    t, and_(t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
                ).outerjoin(a, _archive_join(m, a))
            )
            .where(m.c.repository_id == repo.id)
        )
        query = _with_status(query, func.coalesce(a.c.status, ACTIVE), image_status)
        if tag_status == "TAGGED":
            query = query.where(t.c.name.is_not(None))
        elif tag_status == "UNTAGGED":
            query = query.where(t.c.name.is_(None))
        if after is not None:
            digest, tag = after
            query = query.where((m.c.digest > digest) | and_(m.c.digest == digest, t.c.name > tag))
        query = query.order_by(m.c.digest, t.c.name).limit(limit)
        async with self.db.read() as conn:
            return [(row[0], row[1]) for row in await conn.execute(query)]

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
        m, t, a = schema.manifests, schema.tags, schema.image_archives
        status = func.coalesce(a.c.status, ACTIVE)
        query = (
            select(
                m.c.digest,
                m.c.media_type,
                m.c.artifact_type,
                m.c.subject_digest,
                m.c.size,
                m.c.image_size,
                m.c.pushed_at,
                m.c.last_pulled_at,
                status.label("status"),
                a.c.archived_at,
                a.c.activated_at,
            )
            .select_from(m.outerjoin(a, _archive_join(m, a)))
            .where(m.c.repository_id == repo.id)
        )
        query = _with_status(query, status, image_status)
        if digests is not None:
            query = query.where(m.c.digest.in_(digests))
        has_tag = (
            select(t.c.name)
            .where(t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
            .exists()
        )
        if tag_status == "TAGGED":
            query = query.where(has_tag)
        elif tag_status == "UNTAGGED":
            query = query.where(~has_tag)
        if after:
            query = query.where(m.c.digest > after)
        query = query.order_by(m.c.digest)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            found = [row.digest for row in rows]
            tags: dict[str, list[str]] = {d: [] for d in found}
            if found:
                for row in await conn.execute(
                    select(t.c.digest, t.c.name)
                    .where(t.c.repository_id == repo.id, t.c.digest.in_(found))
                    .order_by(t.c.name)
                ):
                    tags[row.digest].append(row.name)
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

    async def digest_for_tag(self, repo: Repository, tag: str) -> str | None:
        t = schema.tags
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(t.c.digest).where(t.c.repository_id == repo.id, t.c.name == tag)
                )
            ).scalar_one_or_none()
