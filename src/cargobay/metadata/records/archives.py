"""Archive records: an image's storage-class status (ECR's ARCHIVE class). An image without a
row was never archived and is ACTIVE; a row keeps when it last moved either way."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, exists, false, func, or_, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.sql import upsert

ACTIVE, ARCHIVED = "ACTIVE", "ARCHIVED"

a, mr = schema.image_archives, schema.manifest_references


async def rows(conn: Conn, repository_id: int, digests: list[str]) -> list[Any]:
    """The rows (digest, status, archived_at, activated_at) of the named images that ever
    were archived."""
    if not digests:
        return []
    query = select(a.c.digest, a.c.status, a.c.archived_at, a.c.activated_at).where(
        a.c.repository_id == repository_id, a.c.digest.in_(digests)
    )
    return list(await conn.execute(query))


async def status(conn: Conn, repository_id: int, digest: str) -> str:
    query = select(a.c.status).where(a.c.repository_id == repository_id, a.c.digest == digest)
    return (await conn.execute(query)).scalar_one_or_none() or ACTIVE


async def archived_blobs(conn: Conn, repository_id: int, digests: list[str]) -> set[str]:
    """The named blobs that only archived images of the repository reference."""
    if not digests:
        return set()
    archived = case((a.c.status == ARCHIVED, 1), else_=0)
    query = (
        select(mr.c.target_digest)
        .select_from(
            mr.outerjoin(
                a, and_(a.c.repository_id == mr.c.repository_id, a.c.digest == mr.c.manifest_digest)
            )
        )
        .where(
            mr.c.repository_id == repository_id,
            mr.c.kind == "blob",
            mr.c.target_digest.in_(digests),
        )
        .group_by(mr.c.target_digest)
        .having(func.min(archived) == 1)
    )
    return {row.target_digest for row in await conn.execute(query)}


async def blob_archived(conn: Conn, repository_id: int, digest: str) -> bool:
    """Whether only archived images of the repository reference the blob (a layer or config),
    in one query on primary keys (`blob_archived_clause`)."""
    query = select(blob_archived_clause(repository_id, digest))
    return bool((await conn.execute(query)).scalar())


def blob_archived_clause(repository_id: Any, digest: Any) -> Any:
    """The SQL truth of `blob_archived`, for a column of a larger statement (the blob GET's
    lookup, `records.blobs.pull_stat`): the archived references are found from the
    repository's archived `image_archives` rows (none in a repository that never archived
    anything: one index probe), each checked on `manifest_references`' primary key; only then
    is any reference by an image that is not archived looked for, which makes the blob
    pullable. Starting from the references instead walked every repository's reference to the
    digest (a base layer's are many). Either argument may be a bound parameter."""
    referenced = exists().where(
        mr.c.repository_id == a.c.repository_id,
        mr.c.manifest_digest == a.c.digest,
        mr.c.target_digest == digest,
        mr.c.kind == "blob",
    )
    by_archived = exists().where(
        a.c.repository_id == repository_id, a.c.status == ARCHIVED, referenced
    )
    joined = and_(a.c.repository_id == mr.c.repository_id, a.c.digest == mr.c.manifest_digest)
    by_active = (
        select(mr.c.manifest_digest)
        .select_from(mr.outerjoin(a, joined))
        .where(
            mr.c.repository_id == repository_id,
            mr.c.target_digest == digest,
            mr.c.kind == "blob",
            or_(a.c.status.is_(None), a.c.status != ARCHIVED),
        )
    )
    # CASE, not AND: the second probe runs only for a blob an archived image references.
    return case((by_archived, ~exists(by_active)), else_=false())


async def children(conn: Conn, repository_id: int, digest: str) -> list[str]:
    """The manifests an image index lists."""
    query = select(mr.c.target_digest).where(
        mr.c.repository_id == repository_id,
        mr.c.manifest_digest == digest,
        mr.c.kind == "manifest",
    )
    return [row.target_digest for row in await conn.execute(query)]


async def archive(conn: Conn, repository_id: int, digest: str, when: float) -> None:
    """Mark an image ARCHIVED at `when`, keeping when it was last activated."""
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


async def activate(conn: Conn, repository_id: int, digest: str, when: float) -> None:
    """Mark an archived image ACTIVE again at `when` (nothing for one that is not archived)."""
    await conn.execute(
        a.update()
        .where(a.c.repository_id == repository_id, a.c.digest == digest, a.c.status == ARCHIVED)
        .values(status=ACTIVE, activated_at=when)
    )
