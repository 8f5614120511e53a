"""Image records as the ECR API lists them: manifests with their tags and archive status.

`status` is the archive storage class (ACTIVE unless an `image_archives` row says otherwise);
`image_status` filters are ACTIVE, ARCHIVED, ACTIVATING or ANY, `tag_status` filters TAGGED,
UNTAGGED or ANY (the ECR enums, checked by the doors)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.records.archives import ACTIVE

m, t, a = schema.manifests, schema.tags, schema.image_archives


def _archive_join() -> Any:
    return and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)


def _with_status(query: Any, status_column: Any, image_status: str) -> Any:
    if image_status == "ANY":
        return query
    return query.where(status_column == image_status)


async def list_ids(
    conn: Conn,
    repository_id: int,
    tag_status: str,
    after: tuple[str, str] | None,
    limit: int,
    image_status: str = "ANY",
) -> list[tuple[str, str | None]]:
    """(digest, tag) pairs ordered by digest then tag, after `after`; an untagged image
    appears once, with tag None."""
    query = (
        select(m.c.digest, t.c.name)
        .select_from(
            m.outerjoin(
                t, and_(t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
            ).outerjoin(a, _archive_join())
        )
        .where(m.c.repository_id == repository_id)
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
    return [(row[0], row[1]) for row in await conn.execute(query)]


async def describe(
    conn: Conn,
    repository_id: int,
    digests: list[str] | None = None,
    *,
    tag_status: str = "ANY",
    after: str | None = None,
    limit: int | None = None,
    image_status: str = "ANY",
) -> list[Any]:
    """Image rows in digest order (the named ones, or a page of all): digest, media_type,
    artifact_type, subject_digest, size, image_size, pushed_at, last_pulled_at, status,
    archived_at, activated_at."""
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
        .select_from(m.outerjoin(a, _archive_join()))
        .where(m.c.repository_id == repository_id)
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
    return list((await conn.execute(query)).all())


async def referrers(
    conn: Conn,
    repository_id: int,
    digest: str,
    artifact_types: list[str] | None = None,
    statuses: list[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Any]:
    """Manifests whose subject is `digest`, in digest order after `after`: digest,
    media_type, size, artifact_type, annotations (as stored: sealed or not), status."""
    status = func.coalesce(a.c.status, ACTIVE)
    query = (
        select(
            m.c.digest,
            m.c.media_type,
            m.c.size,
            m.c.artifact_type,
            m.c.annotations,
            status.label("status"),
        )
        .select_from(m.outerjoin(a, _archive_join()))
        .where(m.c.repository_id == repository_id, m.c.subject_digest == digest)
    )
    if artifact_types:
        query = query.where(m.c.artifact_type.in_(artifact_types))
    if statuses is not None:
        query = query.where(status.in_(statuses))
    if after:
        query = query.where(m.c.digest > after)
    query = query.order_by(m.c.digest)
    if limit is not None:
        query = query.limit(limit)
    return list((await conn.execute(query)).all())
