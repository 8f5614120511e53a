"""The ECR read operations' lookups: a repository with everything its authorization needs and
what the operation reads, in one statement (`metadata.hot`).

Every statement starts from the repository row (in one region) and returns, in each of its
rows, the columns `registry.repositories.Repository` takes, the repository's and registry's
policy texts, the registry's policy scope, whether a pull-through cache rule covers the name,
the caller's access key status and, for a caller that is not an account administrator, the
caller's tags and identity policies (the same head as the pull lookup, `records.pulls`). Then,
per statement:

- `repository`: nothing more (one row);
- `layer`: the linked size of one blob and whether only archived images reference it;
  these two statements of one row read the caller's key and user rows by a join
  (`ecrhead.joined_head`), the others by subqueries (one probe per statement, not per row);
- `layers`: one row per linked blob of <= 100 (size, archived), or one row of NULLs;
- `images`: one row per requested tag (with the manifest it names) and one per manifest
  requested by digest alone: BatchGetImage's two queries as one;
- `described` (DescribeImages, `records.ecrdescribe`): one row per image of a page (or per
  image named by tag or digest), with its tags, archive status and latest scan;
- `listed` (ListImages, `records.ecrlist`): one row per (digest, tag) pair of a page.

No row at all: the repository does not exist in that region. Policies are read by the very
statement that serves the call, so a change made anywhere applies to the next call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    bindparam,
    cast,
    false,
    null,
    select,
    union_all,
)

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records.archives import blob_archived_clause
from cargobay.metadata.records.ecrdescribe import TAG_SEPARATOR, described
from cargobay.metadata.records.ecrhead import (
    Head,
    head,
    in_repository,
    joined_head,
    shaped,
    with_caller,
)
from cargobay.metadata.records.ecrlist import listed
from cargobay.metadata.records.manifests import PULL_COLUMNS
from cargobay.metadata.records.pulls import POLICY_SEPARATOR

r, t, m, a = schema.repositories, schema.tags, schema.manifests, schema.image_archives
b, rb = schema.blobs, schema.repository_blobs

__all__ = [
    "POLICY_SEPARATOR",
    "TAG_SEPARATOR",
    "Head",
    "described",
    "images",
    "layer",
    "layers",
    "listed",
    "repository",
]


def _only_archived(digest: Any) -> ColumnElement[bool]:
    """`records.archives.blob_archived` of the statement's repository row and `digest`."""
    return blob_archived_clause(r.c.id, digest)


def _repository(with_identity: bool) -> Select:
    return select(*joined_head(with_identity)).select_from(with_caller(r)).where(*in_repository())


def _layer(with_identity: bool) -> Select:
    digest = bindparam("digest", type_=String)
    size = (
        select(b.c.size)
        .select_from(rb.join(b, b.c.digest == rb.c.digest))
        .where(rb.c.repository_id == r.c.id, rb.c.digest == digest)
        .scalar_subquery()
    )
    return (
        select(
            *joined_head(with_identity),
            size.label("layer_size"),
            _only_archived(digest).label("archived"),
        )
        .select_from(with_caller(r))
        .where(*in_repository())
    )


def _layers(count: int, with_identity: bool) -> Select:
    wanted = [bindparam(f"d{i}", type_=String) for i in range(count)]
    source = r.outerjoin(rb, and_(rb.c.repository_id == r.c.id, rb.c.digest.in_(wanted))).outerjoin(
        b, b.c.digest == rb.c.digest
    )
    return (
        select(
            *head(with_identity),
            rb.c.digest.label("layer_digest"),
            b.c.size.label("layer_size"),
            _only_archived(rb.c.digest).label("archived"),
        )
        .select_from(source)
        .where(*in_repository())
    )


def _images(tags: int, digests: int, with_identity: bool) -> Select | CompoundSelect:
    """One row per requested tag that exists (else one row of NULLs) with its manifest, then
    one per manifest requested by digest alone (`tag` NULL)."""
    manifest = list(PULL_COLUMNS)
    archived = and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)
    if tags:
        named = [bindparam(f"t{i}", type_=String) for i in range(tags)]
        source = (
            r.outerjoin(t, and_(t.c.repository_id == r.c.id, t.c.name.in_(named)))
            .outerjoin(m, and_(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest))
            .outerjoin(a, archived)
        )
        by_tag = select(*head(with_identity), t.c.name.label("tag"), *manifest)
    else:
        source = r.outerjoin(m, false()).outerjoin(a, archived)
        by_tag = select(*head(with_identity), cast(null(), String).label("tag"), *manifest)
    by_tag = by_tag.select_from(source).where(*in_repository())
    if not digests:
        return by_tag
    listed = [bindparam(f"d{i}", type_=String) for i in range(digests)]
    by_digest = (
        select(*head(with_identity), cast(null(), String).label("tag"), *manifest)
        .select_from(
            r.join(m, and_(m.c.repository_id == r.c.id, m.c.digest.in_(listed))).outerjoin(
                a, archived
            )
        )
        .where(*in_repository())
    )
    return union_all(by_tag, by_digest)


_REPOSITORY = {w: HotRead(_repository(w)) for w in (False, True)}
_LAYER = {w: HotRead(_layer(w)) for w in (False, True)}
_LAYERS: dict[tuple[int, bool], HotRead] = {}
_IMAGES: dict[tuple[int, int, bool], HotRead] = {}


async def repository(db: Database, call: Head) -> Any | None:
    """The head row (module docstring), or None when the repository does not exist."""
    return await _REPOSITORY[call.with_identity].first(db, call.params())


async def layer(db: Database, call: Head, digest: str) -> Any | None:
    """The head row with `layer_size` (None when the blob is not linked to the repository)
    and `archived`, or None when the repository does not exist."""
    params = call.params()
    params["digest"] = digest
    return await _LAYER[call.with_identity].first(db, params)


async def layers(db: Database, call: Head, digests: list[str]) -> list[Any]:
    """Head rows with `layer_digest`, `layer_size` and `archived` for each linked blob of
    `digests` (distinct, 1 to 100); one row with NULL `layer_digest` when none is linked;
    no row when the repository does not exist."""
    params = call.params()
    params.update((f"d{i}", digest) for i, digest in enumerate(digests))
    statement = shaped(_LAYERS, (len(digests), call.with_identity), _layers)
    return await statement.all(db, params)


async def images(db: Database, call: Head, tags: list[str], digests: list[str]) -> list[Any]:
    """Head rows with `tag` and the manifest's columns (`records.manifests.many_for_pull`'s)
    for each of `tags` that exists and each of `digests` (distinct, at most 100 each) stored;
    one row at least when the repository exists, none when it does not."""
    params = call.params()
    params.update((f"t{i}", tag) for i, tag in enumerate(tags))
    params.update((f"d{i}", digest) for i, digest in enumerate(digests))
    statement = shaped(_IMAGES, (len(tags), len(digests), call.with_identity), _images)
    return await statement.all(db, params)
