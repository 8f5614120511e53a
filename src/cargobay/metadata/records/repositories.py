"""Repository records: the repository row, its resource tags, the registry policy and the
account settings a push consults."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import String, bindparam, select

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records import gcqueue
from cargobay.metadata.sql import insert_ignore, upsert

r = schema.repositories

# The columns of a repository row, in the order `registry.repositories.Repository` takes them.
COLUMNS = (
    r.c.id,
    r.c.registry_id,
    r.c.name,
    r.c.created_at,
    r.c.tag_mutability,
    r.c.scan_on_push,
    r.c.encryption_type,
    r.c.kms_key,
    r.c.mutability_exclusions,
    r.c.region,
)

# Rows that belong to a repository, removed with it (children before the repository).
OWNED = (
    schema.tags,
    schema.manifest_references,
    schema.manifests,
    schema.repository_blobs,
    schema.repository_tags,
    schema.uploads,
)


# Repositories are regional: every lookup by name is within one region, by its key ("" for the
# deployment's default region: `cargobay.regions.key`).


async def find(conn: Conn, registry_id: str, name: str, region: str = "") -> Any | None:
    """The repository row (`COLUMNS`), or None."""
    query = select(*COLUMNS).where(
        r.c.registry_id == registry_id, r.c.region == region, r.c.name == name
    )
    return (await conn.execute(query)).first()


_FIND = HotRead(
    select(*COLUMNS).where(
        r.c.registry_id == bindparam("registry_id"),
        r.c.region == bindparam("region", type_=String),
        r.c.name == bindparam("name", type_=String),
    )
)


async def find_now(db: Database, registry_id: str, name: str, region: str = "") -> Any | None:
    """`find` as one `metadata.hot` lookup, outside any transaction (`scan_on_push` may come
    back as an integer on SQLite's own driver)."""
    return await _FIND.first(db, {"registry_id": registry_id, "region": region, "name": name})


async def insert(conn: Conn, registry_id: str, name: str, region: str = "", **values: Any) -> bool:
    """Insert a repository unless one of that name exists; whether this call inserted it."""
    result = await insert_ignore(
        conn,
        r,
        registry_id=registry_id,
        region=region,
        name=name,
        created_at=time.time(),
        **values,
    )
    return bool(result.rowcount)


async def id_of(conn: Conn, registry_id: str, name: str, region: str = "") -> int | None:
    query = select(r.c.id).where(
        r.c.registry_id == registry_id, r.c.region == region, r.c.name == name
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def list_names(
    conn: Conn, registry_id: str, last: str | None, limit: int | None, region: str = ""
) -> list[str]:
    """Names in byte order after `last`: one indexed range scan."""
    query = (
        select(r.c.name)
        .where(r.c.registry_id == registry_id, r.c.region == region)
        .order_by(r.c.name)
    )
    if last:
        query = query.where(r.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return list((await conn.execute(query)).scalars())


async def list_rows(
    conn: Conn,
    registry_id: str,
    names: list[str] | None,
    last: str | None,
    limit: int | None,
    region: str = "",
) -> list[Any]:
    """Repository rows of a registry in name order (all, or the named ones)."""
    query = (
        select(*COLUMNS)
        .where(r.c.registry_id == registry_id, r.c.region == region)
        .order_by(r.c.name)
    )
    if names is not None:
        query = query.where(r.c.name.in_(names))
    if last:
        query = query.where(r.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return list(await conn.execute(query))


async def has_images(conn: Conn, repository_id: int) -> bool:
    m = schema.manifests
    query = select(m.c.digest).where(m.c.repository_id == repository_id).limit(1)
    return (await conn.execute(query)).first() is not None


async def delete(conn: Conn, repository_id: int) -> None:
    """Delete a repository and every row it owns (its blobs queued for GC first)."""
    await gcqueue.enqueue_repository(conn, repository_id)
    for table in OWNED:
        await conn.execute(table.delete().where(table.c.repository_id == repository_id))
    await conn.execute(r.delete().where(r.c.id == repository_id))


async def update(conn: Conn, repository_id: int, **values: Any) -> None:
    await conn.execute(r.update().where(r.c.id == repository_id).values(**values))


async def field(conn: Conn, repository_id: int, column: str) -> Any:
    query = select(r.c[column]).where(r.c.id == repository_id)
    return (await conn.execute(query)).scalar_one_or_none()


# -- resource tags ------------------------------------------------------------------------------


async def resource_tags(conn: Conn, repository_id: int) -> dict[str, str]:
    t = schema.repository_tags
    rows = await conn.execute(
        select(t.c.key, t.c.value).where(t.c.repository_id == repository_id).order_by(t.c.key)
    )
    return {row.key: row.value for row in rows}


async def add_resource_tags(conn: Conn, repository_id: int, tags: dict[str, str]) -> None:
    """Insert tags on a repository that has none of these keys yet (a new repository)."""
    for key, value in tags.items():
        await conn.execute(
            schema.repository_tags.insert().values(
                repository_id=repository_id, key=key, value=value
            )
        )


async def set_resource_tags(conn: Conn, repository_id: int, tags: dict[str, str]) -> int:
    """Add or overwrite tags; how many the repository has afterwards."""
    t = schema.repository_tags
    for key, value in tags.items():
        await upsert(
            conn, t, ["repository_id", "key"], repository_id=repository_id, key=key, value=value
        )
    return len(
        (await conn.execute(select(t.c.key).where(t.c.repository_id == repository_id))).all()
    )


async def remove_resource_tags(conn: Conn, repository_id: int, keys: list[str]) -> None:
    t = schema.repository_tags
    await conn.execute(t.delete().where(t.c.repository_id == repository_id, t.c.key.in_(keys)))


# -- registry policy and account settings ------------------------------------------------------


async def registry_policy(conn: Conn, registry_id: str, region: str) -> str | None:
    """The registry policy of an account in a region (its key, `cargobay.regions.key`)."""
    p = schema.registry_policies
    query = select(p.c.policy_text).where(p.c.registry_id == registry_id, p.c.region == region)
    return (await conn.execute(query)).scalar_one_or_none()


async def put_registry_policy(conn: Conn, registry_id: str, region: str, text: str) -> None:
    await upsert(
        conn,
        schema.registry_policies,
        ["registry_id", "region"],
        registry_id=registry_id,
        region=region,
        policy_text=text,
        updated_at=time.time(),
    )


async def delete_registry_policy(conn: Conn, registry_id: str, region: str) -> bool:
    """Whether there was a policy to delete."""
    p = schema.registry_policies
    result = await conn.execute(
        p.delete().where(p.c.registry_id == registry_id, p.c.region == region)
    )
    return bool(result.rowcount)


async def create_on_push(conn: Conn, registry_id: str) -> bool | None:
    """An account's own create-on-push setting (None: it follows the deployment's)."""
    a = schema.account_settings
    query = select(a.c.create_on_push).where(a.c.account_id == registry_id)
    value = (await conn.execute(query)).scalar_one_or_none()
    return None if value is None else bool(value)


async def set_create_on_push(conn: Conn, registry_id: str, value: bool | None) -> None:
    await upsert(
        conn,
        schema.account_settings,
        ["account_id"],
        account_id=registry_id,
        create_on_push=value,
        updated_at=time.time(),
    )
