"""Manifest records: the stored manifest (its bytes exactly as pushed, sealed or not), the
references it makes to blobs and child manifests, and the lookups the pull path makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.hotwrite import HotSelect, HotWrite
from cargobay.metadata.records import gcqueue
from cargobay.metadata.records.archives import ARCHIVED
from cargobay.metadata.sql import insert_statement

m, mr = schema.manifests, schema.manifest_references
rb = schema.repository_blobs
r, t, a = schema.repositories, schema.tags, schema.image_archives


def _archived(manifests: Any = m) -> Any:
    return and_(a.c.repository_id == manifests.c.repository_id, a.c.digest == manifests.c.digest)


def _pull_queries() -> tuple[Select, Select]:
    """A manifest by digest and by tag, repository included. Built once: constructing the
    statement cost more than running it on every pull."""
    columns = select(
        m.c.repository_id,
        m.c.digest,
        m.c.media_type,
        m.c.content,
        m.c.last_pulled_at,
        r.c.encryption_type,
        r.c.kms_key,
        a.c.status.label("archive_status"),
    )
    by_digest = columns.select_from(
        m.join(r, r.c.id == m.c.repository_id).outerjoin(a, _archived())
    ).where(m.c.digest == bindparam("reference"))
    by_tag = columns.select_from(
        t.join(r, r.c.id == t.c.repository_id)
        .join(m, and_(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest))
        .outerjoin(a, _archived())
    ).where(t.c.name == bindparam("reference"))
    in_repo = (
        r.c.registry_id == bindparam("registry_id"),
        r.c.region == bindparam("region"),
        r.c.name == bindparam("name"),
    )
    return by_digest.where(*in_repo), by_tag.where(*in_repo)


_BY_DIGEST, _BY_TAG = _pull_queries()


async def for_pull(
    conn: Conn, registry_id: str, name: str, reference: str, *, by_digest: bool, region: str = ""
) -> Any | None:
    """A manifest by tag or digest in one indexed query: repository_id, digest, media_type,
    content, last_pulled_at, the repository's encryption_type and kms_key, and
    archive_status (None when never archived). None when the repository or image is absent.
    `region` is the repository's region key (`cargobay.regions.key`)."""
    params = {"registry_id": registry_id, "region": region, "name": name, "reference": reference}
    return (await conn.execute(_BY_DIGEST if by_digest else _BY_TAG, params)).first()


# The columns of a manifest served to a pull (`many_for_pull`, the ECR reads' BatchGetImage
# rows in `records.ecrreads`), its archive state from an outer join of `image_archives`.
PULL_COLUMNS = (
    m.c.repository_id,
    m.c.digest,
    m.c.media_type,
    m.c.content,
    m.c.last_pulled_at,
    a.c.status.label("archive_status"),
)


async def many_for_pull(conn: Conn, repository_id: int, digests: list[str]) -> dict[str, Any]:
    """`for_pull`'s rows (without the repository's columns) for many manifests of one
    repository in one query, by digest; absent digests are left out."""
    if not digests:
        return {}
    query = (
        select(*PULL_COLUMNS)
        .select_from(m.outerjoin(a, _archived()))
        .where(m.c.repository_id == repository_id, m.c.digest.in_(sorted(set(digests))))
    )
    return {row.digest: row for row in await conn.execute(query)}


async def referencing_blob(conn: Conn, repository_id: int, digest: str) -> Any | None:
    """A manifest of the repository that references the blob `digest` (its digest,
    media_type, content sealed as stored, and archive_status), one not archived when there is
    one; None when none does. The pull-through cache reads the blob's size from it: not a
    pull, so nothing is recorded."""
    archived = case((a.c.status == ARCHIVED, 1), else_=0)
    referencing = and_(mr.c.repository_id == m.c.repository_id, mr.c.manifest_digest == m.c.digest)
    query = (
        select(m.c.digest, m.c.media_type, m.c.content, a.c.status.label("archive_status"))
        .select_from(m.join(mr, referencing).outerjoin(a, _archived()))
        .where(mr.c.repository_id == repository_id, mr.c.target_digest == digest)
        .where(mr.c.kind == "blob")
        .order_by(archived)
        .limit(1)
    )
    return (await conn.execute(query)).first()


# The push's check of the blobs a manifest references, built once (constructing and keying
# the statement cost more than running it on every push).
_LINKED_BLOBS = (
    select(rb.c.digest)
    .where(
        rb.c.repository_id == bindparam("repository_id"),
        rb.c.digest.in_(bindparam("digests", expanding=True)),
    )
    .with_for_update(read=True)  # SQLite leaves it out
)
# `HotSelect`s of `_LINKED_BLOBS` and of its widened forms (one per `Hooks`), by the
# statement's id, each kept beside its statement so the id stays its own; bounded, as a
# process that builds many `Hooks` (tests) would otherwise keep every one.
_LINKED_HOT: dict[int, tuple[Select, HotSelect]] = {}
_LINKED_HOT_MAX = 64


def _linked_hot(statement: Select) -> HotSelect:
    found = _LINKED_HOT.get(id(statement))
    if found is None or found[0] is not statement:
        if len(_LINKED_HOT) >= _LINKED_HOT_MAX:
            _LINKED_HOT.clear()
        found = _LINKED_HOT[id(statement)] = (statement, HotSelect(statement, "digests"))
    return found[1]


async def linked_blobs(conn: Conn, repository_id: int, digests: list[str]) -> set[str]:
    """Which of the blobs `digests` a manifest about to be inserted references are linked to
    the repository, the links locked for share on PostgreSQL: garbage collection locks a link
    before removing it, so it either waits for the push or the push sees the link gone."""
    return {row.digest for row in await linked_blob_rows(conn, repository_id, digests)}


async def linked_blob_rows(
    conn: Conn,
    repository_id: int,
    digests: list[str],
    widen: Callable[[Select], Select] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Any]:
    """`linked_blobs`' rows (`digest`), with the columns `widen` adds to its statement (and
    their `params`) in each: the push reads its hooks' settings this way
    (`registry.hooks.Hooks.widened`), in the same statement."""
    statement = _LINKED_BLOBS if widen is None else widen(_LINKED_BLOBS)
    values = {"repository_id": repository_id, "digests": digests, **(params or {})}
    return await _linked_hot(statement).all(conn, values)


async def present(conn: Conn, repository_id: int, digests: list[str]) -> set[str]:
    """Which of `digests` the repository holds."""
    query = select(m.c.digest).where(m.c.repository_id == repository_id, m.c.digest.in_(digests))
    return {row.digest for row in await conn.execute(query)}


async def largest_image(conn: Conn, repository_id: int, digests: list[str]) -> int:
    """The largest image size among `digests` (an index's size, as ECR gives it)."""
    query = select(func.max(m.c.image_size)).where(
        m.c.repository_id == repository_id, m.c.digest.in_(digests)
    )
    return (await conn.execute(query)).scalar_one() or 0


# The push's inserts, built once per dialect and run on the driver in a SQLite file's write
# transaction (`metadata.hotwrite`): SQLAlchemy's execution cost more than SQLite's.
_MANIFEST_COLUMNS = (
    "repository_id",
    "digest",
    "pushed_at",
    "media_type",
    "artifact_type",
    "subject_digest",
    "annotations",
    "size",
    "image_size",
    "content",
)
# The columns an insert may leave out, as the table's defaults fill them.
_OPTIONAL = {"artifact_type": None, "subject_digest": None, "annotations": None, "image_size": 0}
_INSERT_MANIFEST = HotWrite(
    lambda dialect: insert_statement(dialect, m).on_conflict_do_nothing(),
    names=_MANIFEST_COLUMNS,
)
_INSERT_REFERENCES = HotWrite(
    lambda dialect: insert_statement(dialect, mr).on_conflict_do_nothing(),
    names=("repository_id", "manifest_digest", "target_digest", "kind"),
)


async def insert(
    conn: Conn,
    repository_id: int,
    digest: str,
    *,
    blobs: list[str],
    children: list[str],
    **values: Any,
) -> bool:
    """Insert a manifest row and its references (to `blobs` and child manifests); False,
    and nothing written, when the repository already holds it."""
    row = {
        **_OPTIONAL,
        "repository_id": repository_id,
        "digest": digest,
        "pushed_at": time.time(),
        **values,
    }
    if not await _INSERT_MANIFEST.run(conn, row):
        return False
    targets = [*((d, "blob") for d in blobs), *((d, "manifest") for d in children)]
    references = [
        {"repository_id": repository_id, "manifest_digest": digest, "target_digest": d, "kind": k}
        for d, k in targets
    ]
    if references:
        await _INSERT_REFERENCES.run_many(conn, references)  # one executemany
    return True


async def parents(conn: Conn, repository_id: int, digest: str) -> list[str]:
    """The image indexes in the repository that list `digest`."""
    query = select(mr.c.manifest_digest).where(
        mr.c.repository_id == repository_id,
        mr.c.target_digest == digest,
        mr.c.kind == "manifest",
    )
    return [row.manifest_digest for row in await conn.execute(query)]


async def delete(conn: Conn, repository_id: int, digest: str) -> bool:
    """Delete a manifest row (its tags and references are the caller's next steps, in the
    same transaction); whether it existed."""
    result = await conn.execute(
        m.delete().where(m.c.repository_id == repository_id, m.c.digest == digest)
    )
    return bool(result.rowcount)


async def delete_references(conn: Conn, repository_id: int, digest: str) -> None:
    """Delete the references a manifest makes, queueing the blobs it referenced for GC (in
    this transaction: whatever commits the removal also commits the candidates)."""
    gone = await conn.execute(
        mr.delete()
        .where(mr.c.repository_id == repository_id, mr.c.manifest_digest == digest)
        .returning(mr.c.target_digest, mr.c.kind)
    )
    blobs = [row.target_digest for row in gone if row.kind == "blob"]
    await gcqueue.enqueue(conn, repository_id, blobs, gcqueue.AT_ONCE)


async def count(conn: Conn, repository_id: int) -> int:
    query = select(func.count()).select_from(m).where(m.c.repository_id == repository_id)
    return int((await conn.execute(query)).scalar_one())


async def record_pull(conn: Conn, repository_id: int, digests: list[str], when: float) -> None:
    """Note when the manifests `digests` were last pulled."""
    await conn.execute(
        m.update()
        .where(m.c.repository_id == repository_id, m.c.digest.in_(digests))
        .values(last_pulled_at=when)
    )
