"""The images a lifecycle rule may act on, read from the database by index, so evaluating a
policy costs what it selects, not the repository's size (issue 19).

Per rule, one query over the repository's images (never the children an index lists, never the
other storage class):

- `sinceImagePushed` / `sinceImagePulled`: a range of the (repository, pushed_at, digest) index,
  every image pushed before the rule's cutoff; a superset (a restore or a pull can make an old
  image young), narrowed exactly by `evaluate.candidates` on the rows read.
- `sinceImageTransitioned`: the archived images archived before the cutoff.
- `imageCountMoreThan N`: the selection newest first from that index, past the first N. The tag
  criteria are SQL when they can be exact (`any`, `untagged`, `tagPrefixList`); a
  `tagPatternList` selection is read newest first in batches and matched here, since SQL's
  LIKE differs between backends (case).

The caller (`LifecycleService.plan`) then gives each candidate to the first rule, by priority,
whose storage class and tag criteria it matches, as ECR does: an image is acted on by at most one
rule, the lowest-priority-number rule that selects it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from cargobay.lifecycle.policy import ARCHIVE, DAY, Rule, Selection
from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.records import tags as tag_records

m, t, a, mr = schema.manifests, schema.tags, schema.image_archives, schema.manifest_references
ARCHIVED = "ARCHIVED"
PATTERN_BATCH = 1000


def _has_tag(*conditions: Any) -> Any:
    return (
        select(t.c.name)
        .where(t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest, *conditions)
        .exists()
    )


def _tag_filter(selection: Selection) -> tuple[Any, bool]:
    """The selection's tag criteria as SQL, and whether that SQL is exact."""
    if selection.tag_status == "any":
        return None, True
    if selection.tag_status == "untagged":
        return ~_has_tag(), True
    if selection.tag_prefixes:
        return and_(
            *(_has_tag(func.substr(t.c.name, 1, len(p)) == p) for p in selection.tag_prefixes)
        ), True
    return _has_tag(), False  # patterns: any tagged image, matched in Python


def _images(repository_id: int, selection: Selection) -> Any:
    """The repository's images in the selection's storage class, index children left out."""
    archived = a.c.status == ARCHIVED
    in_class = (
        archived
        if selection.storage_class == ARCHIVE
        else func.coalesce(a.c.status, "") != ARCHIVED
    )
    child = (
        select(mr.c.target_digest)
        .where(
            mr.c.repository_id == m.c.repository_id,
            mr.c.target_digest == m.c.digest,
            mr.c.kind == "manifest",
        )
        .exists()
    )
    return (
        select(m.c.digest)
        .select_from(
            m.outerjoin(a, and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest))
        )
        .where(m.c.repository_id == repository_id, in_class, ~child)
    )


async def for_rule(conn: Conn, repository_id: int, rule: Rule, now: float) -> list[str]:
    """Digests the rule's count criterion may mark: exactly, for `imageCountMoreThan`; a
    superset to narrow on the rows, for the age criteria."""
    sel = rule.selection
    query = _images(repository_id, sel)
    tag_sql, exact = _tag_filter(sel)
    if tag_sql is not None:
        query = query.where(tag_sql)
    if sel.count_type == "imageCountMoreThan":
        query = query.order_by(m.c.pushed_at.desc(), m.c.digest.desc())
        if exact:
            rows = await conn.execute(query.offset(sel.count_number))
            return [row.digest for row in rows]
        return await _past_newest(conn, repository_id, sel, query)
    cutoff = now - sel.count_number * DAY
    if sel.count_type == "sinceImageTransitioned":
        query = query.where(a.c.archived_at < cutoff)
    else:
        query = query.where(m.c.pushed_at < cutoff)
        if sel.count_type == "sinceImagePulled":
            query = query.where(m.c.last_pulled_at.is_(None) | (m.c.last_pulled_at < cutoff))
    return [row.digest for row in await conn.execute(query)]


async def _past_newest(conn: Conn, repository_id: int, sel: Selection, query: Any) -> list[str]:
    """A pattern selection, newest first, matched here: every image past the first N."""
    kept, out, offset = 0, [], 0
    while True:
        batch = [r.digest for r in await conn.execute(query.limit(PATTERN_BATCH).offset(offset))]
        if not batch:
            return out
        offset += len(batch)
        tags = await tag_records.on_each(conn, repository_id, batch)
        for digest in batch:
            if not sel.matches(tags[digest]):
                continue
            if kept < sel.count_number:
                kept += 1
            else:
                out.append(digest)
