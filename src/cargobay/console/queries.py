"""Read models for console listings that ECR's shapes do not give (sorted, counted, with
per-repository totals): each is one query for the page plus one grouped query for its rows,
never a query per row, so 10,000 repositories page as fast as ten."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from cargobay import regions
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records.repositories import COLUMNS as _COLUMNS
from cargobay.registry.repositories import Repository

SORTS = ("name", "-name", "created", "-created", "pushed")
# Repository names use only these characters: a prefix with any other matches nothing.
_NAME_CHARS = re.compile(r"[a-z0-9._/-]*")


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    repository: Repository
    image_count: int
    size: int
    last_push: float | None


def _filtered(query: Select, registry_id: str, prefix: str) -> Select:
    r = schema.repositories
    # The page's region only (`web.chosen_region`), as DescribeRepositories lists.
    query = query.where(r.c.registry_id == registry_id, r.c.region == regions.current_key())
    if prefix:
        # A range on the (registry_id, name) index rather than LIKE (no escaping, no scan).
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        query = query.where(r.c.name >= prefix, r.c.name < upper)
    return query


async def repository_page(
    db: Database, registry_id: str, prefix: str, sort: str, offset: int, limit: int
) -> tuple[list[RepositoryRow], int]:
    """One page of a registry's repositories and how many match the prefix."""
    if not _NAME_CHARS.fullmatch(prefix):
        return [], 0
    r, m = schema.repositories, schema.manifests
    order = {
        "name": (r.c.name,),
        "-name": (r.c.name.desc(),),
        "created": (r.c.created_at, r.c.name),
        "-created": (r.c.created_at.desc(), r.c.name),
    }.get(sort)
    if order is None:  # last push, newest first
        # Never pushed sorts last on every database (PostgreSQL puts NULL first in DESC).
        pushed = select(func.coalesce(func.max(m.c.pushed_at), 0.0)).where(
            m.c.repository_id == r.c.id
        )
        order = (pushed.scalar_subquery().desc(), r.c.name)
    page_q = _filtered(select(*_COLUMNS), registry_id, prefix).order_by(*order)
    count_q = _filtered(select(func.count()).select_from(r), registry_id, prefix)
    async with db.read() as conn:
        repos = [Repository(*row) for row in await conn.execute(page_q.offset(offset).limit(limit))]
        total = int((await conn.execute(count_q)).scalar_one())
        stats = await _stats(conn, [repo.id for repo in repos])
    rows = [RepositoryRow(repo, *stats.get(repo.id, (0, 0, None))) for repo in repos]
    return rows, total


async def _stats(conn, ids: list[int]) -> dict[int, tuple[int, int, float | None]]:
    """Per repository id: images (manifests that are not referrers), stored bytes (each
    distinct layer and config once, as usage metering counts them) and the last push."""
    if not ids:
        return {}
    m, mr, b = schema.manifests, schema.manifest_references, schema.blobs
    counts = (
        select(m.c.repository_id, func.count(), func.max(m.c.pushed_at))
        .where(m.c.repository_id.in_(ids))
        .group_by(m.c.repository_id)
    )
    distinct = (
        select(mr.c.repository_id, mr.c.target_digest)
        .where(mr.c.repository_id.in_(ids), mr.c.kind == "blob")
        .distinct()
        .subquery()
    )
    sizes = (
        select(distinct.c.repository_id, func.sum(b.c.size))
        .join(b, b.c.digest == distinct.c.target_digest)
        .group_by(distinct.c.repository_id)
    )
    result: dict[int, tuple[int, int, float | None]] = {}
    size_by_id = {int(row[0]): int(row[1] or 0) for row in await conn.execute(sizes)}
    for repo_id, count, last in await conn.execute(counts):
        result[int(repo_id)] = (int(count), size_by_id.get(int(repo_id), 0), last)
    return result


async def users_and_keys(db: Database, account_id: str) -> list[dict[str, Any]]:
    """An account's users with their access key ids and statuses (never a secret)."""
    u, k = schema.users, schema.access_keys
    query = (
        select(u.c.name, u.c.is_admin, u.c.created_at, k.c.id, k.c.status)
        .outerjoin(k, k.c.user_id == u.c.id)
        .where(u.c.account_id == account_id)
        .order_by(u.c.name, k.c.id)
    )
    users: dict[str, dict[str, Any]] = {}
    async with db.read() as conn:
        for name, is_admin, created, key_id, status in await conn.execute(query):
            user = users.setdefault(
                name, {"name": name, "admin": bool(is_admin), "created": created, "keys": []}
            )
            if key_id:
                user["keys"].append({"id": key_id, "status": status})
    return list(users.values())
