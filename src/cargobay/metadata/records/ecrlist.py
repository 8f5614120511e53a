"""ListImages' one statement: the head (`records.ecrhead`) and one row per (digest, tag) pair
of a page, ordered by digest then tag, an untagged image once with tag NULL; one row of NULLs
when the page is empty; no row at all when the repository does not exist in that region.

The page is `records.images.list_ids`' query (same filters, same cursor, same order) with the
repository id read by the statement itself, so the repository, its policies, the caller's key
and the page are one round trip instead of three (the credentials generation, the repository,
the page in a thread)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, String, and_, bindparam, func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records.archives import ACTIVE
from cargobay.metadata.records.ecrhead import (
    Head,
    head,
    in_repository,
    own_repository_id,
    shaped,
)

r, t, m, a = schema.repositories, schema.tags, schema.manifests, schema.image_archives


def _listed(tag_status: str, filtered: bool, resumed: bool, with_identity: bool) -> Select:
    """The statement of one page shape: `tag_status` (TAGGED, UNTAGGED, ANY), whether the
    image status is `filtered` (parameter image_status) and whether the page is `resumed`
    after a cursor (parameters after_digest, after_tag); parameter limit."""
    on_image = and_(t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
    on_archive = and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)
    page = (
        select(m.c.repository_id.label("owner"), m.c.digest, t.c.name.label("tag"))
        .select_from(m.outerjoin(t, on_image).outerjoin(a, on_archive))
        .where(m.c.repository_id == own_repository_id())
    )
    if filtered:
        status = func.coalesce(a.c.status, ACTIVE)
        page = page.where(status == bindparam("image_status", type_=String))
    if tag_status == "TAGGED":
        page = page.where(t.c.name.is_not(None))
    elif tag_status == "UNTAGGED":
        page = page.where(t.c.name.is_(None))
    if resumed:
        digest = bindparam("after_digest", type_=String)
        tag = bindparam("after_tag", type_=String)
        page = page.where((m.c.digest > digest) | and_(m.c.digest == digest, t.c.name > tag))
    chosen = (
        page.order_by(m.c.digest, t.c.name)
        .limit(bindparam("limit", type_=Integer))
        .subquery("listed")
    )
    return (
        select(*head(with_identity), chosen.c.digest, chosen.c.tag)
        .select_from(r.outerjoin(chosen, chosen.c.owner == r.c.id))
        .where(*in_repository())
        .order_by(chosen.c.digest, chosen.c.tag)
    )


_LISTED: dict[tuple[Any, ...], HotRead] = {}


async def listed(
    db: Database,
    call: Head,
    tag_status: str,
    image_status: str,
    after: tuple[str, str] | None,
    limit: int,
) -> list[Any]:
    """Head rows with `digest` and `tag` of the first `limit` pairs after `after` (module
    docstring); `image_status` "ANY" for all. No row when the repository does not exist."""
    values = call.params()
    values["limit"] = limit
    filtered = image_status != "ANY"
    if filtered:
        values["image_status"] = image_status
    if after is not None:
        values["after_digest"], values["after_tag"] = after
    key = (tag_status, filtered, after is not None, call.with_identity)
    return await shaped(_LISTED, key, _listed).all(db, values)
