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
- `layers`: one row per linked blob of <= 100 (size, archived), or one row of NULLs;
- `images`: one row per requested tag (with the manifest it names) and one per manifest
  requested by digest alone: BatchGetImage's two queries as one;
- `described` (DescribeImages): one row per image of a page (or per image named by tag or
  digest), in digest order, with its tags (joined by commas), archive status and latest scan:
  the four queries it took as one; one row of NULLs when none.

No row at all: the repository does not exist in that region. Policies are read by the very
statement that serves the call, so a change made anywhere applies to the next call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records.archives import ACTIVE, blob_archived_clause
from cargobay.metadata.records.manifests import PULL_COLUMNS
from cargobay.metadata.records.pulls import POLICY_SEPARATOR, authorization_columns, joined_texts
from cargobay.metadata.records.repositories import COLUMNS

r, t, m, a = schema.repositories, schema.tags, schema.manifests, schema.image_archives
b, rb, s = schema.blobs, schema.repository_blobs, schema.image_scans

__all__ = ["POLICY_SEPARATOR", "described", "images", "layer", "layers", "repository"]
# Tag names cannot hold a comma (the OCI tag grammar): `described` joins them with one.
TAG_SEPARATOR = ","

# Statements built per batch shape (number of tags, digests), kept at most.
_SHAPES = 512


class _plain(FunctionElement):
    """A name column compared to `image_scans.digest`, a plain String: on PostgreSQL the names
    are `COLLATE "C"` (`schema.Name`), and a comparison of the two collations cannot use
    pk_image_scans (the planner then read every scan of the repository per image)."""

    type = String()
    inherit_cache = True


@compiles(_plain)
def _as_is(element: _plain, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_plain, "postgresql")
def _default_collation(element: _plain, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "default"'


class _among(ColumnElement[bool]):
    """`column IN (values)`; on PostgreSQL `column = ANY (ARRAY(values))`: the set is then an
    InitPlan read once, before the image lookups, whatever the planner's statistics say (a
    repository filled faster than autovacuum analyzes it had PostgreSQL join the named tags
    against every image of the repository, 70 ms a call)."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: Select | CompoundSelect) -> None:
        self.column = column
        self.values = values.scalar_subquery()


@compiles(_among)
def _in(element: _among, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} IN {compiler.process(element.values, **kw)}"


@compiles(_among, "postgresql")
def _any(element: _among, compiler: Any, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} = ANY (ARRAY{values})"


def _head(with_identity: bool) -> list[Any]:
    """The columns every statement starts with (see the module docstring), and the caller's
    key's `caller_verifier`: the door confirms with it that the key still holds the secret
    its remembered row was opened from (`iam.awsrequest.signed_caller`)."""
    columns: list[Any] = [column.label(f"repo_{column.key}") for column in COLUMNS]
    key = schema.access_keys
    verifier = select(key.c.secret_verifier).where(key.c.id == bindparam("caller_key"))
    return [
        *columns,
        *authorization_columns(with_identity),
        verifier.scalar_subquery().label("caller_verifier"),
    ]


def _in_repository() -> tuple[ColumnElement[bool], ...]:
    return (
        r.c.registry_id == bindparam("registry_id"),
        r.c.region == bindparam("region", type_=String),
        r.c.name == bindparam("name", type_=String),
    )


def _only_archived(digest: Any) -> ColumnElement[bool]:
    """`records.archives.blob_archived` of the statement's repository row and `digest`."""
    return blob_archived_clause(r.c.id, digest)


def _repository(with_identity: bool) -> Select:
    return select(*_head(with_identity)).where(*_in_repository())


def _layer(with_identity: bool) -> Select:
    digest = bindparam("digest", type_=String)
    size = (
        select(b.c.size)
        .select_from(rb.join(b, b.c.digest == rb.c.digest))
        .where(rb.c.repository_id == r.c.id, rb.c.digest == digest)
        .scalar_subquery()
    )
    return select(
        *_head(with_identity), size.label("layer_size"), _only_archived(digest).label("archived")
    ).where(*_in_repository())


def _layers(count: int, with_identity: bool) -> Select:
    wanted = [bindparam(f"d{i}", type_=String) for i in range(count)]
    source = r.outerjoin(rb, and_(rb.c.repository_id == r.c.id, rb.c.digest.in_(wanted))).outerjoin(
        b, b.c.digest == rb.c.digest
    )
    return (
        select(
            *_head(with_identity),
            rb.c.digest.label("layer_digest"),
            b.c.size.label("layer_size"),
            _only_archived(rb.c.digest).label("archived"),
        )
        .select_from(source)
        .where(*_in_repository())
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
        by_tag = select(*_head(with_identity), t.c.name.label("tag"), *manifest)
    else:
        source = r.outerjoin(m, false()).outerjoin(a, archived)
        by_tag = select(*_head(with_identity), cast(null(), String).label("tag"), *manifest)
    by_tag = by_tag.select_from(source).where(*_in_repository())
    if not digests:
        return by_tag
    listed = [bindparam(f"d{i}", type_=String) for i in range(digests)]
    by_digest = (
        select(*_head(with_identity), cast(null(), String).label("tag"), *manifest)
        .select_from(
            r.join(m, and_(m.c.repository_id == r.c.id, m.c.digest.in_(listed))).outerjoin(
                a, archived
            )
        )
        .where(*_in_repository())
    )
    return union_all(by_tag, by_digest)


def _likely(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition`, which PostgreSQL's planner then takes as true for most rows: its guess for
    an opaque `x IS NULL` or `x = $1` is 0.5%, after which it expected a page's index walk to
    read the whole repository and sorted all of it instead; a `<>` it guesses at 99.5%."""
    return case((condition, 1), else_=0) != 0


def _repository_id() -> Any:
    """The statement's repository id as a scalar subquery: a constant to the planner (a join
    hid the index order from PostgreSQL, which then sorted the whole repository per page)."""
    own = r.alias("own")
    return (
        select(own.c.id)
        .where(
            own.c.registry_id == bindparam("registry_id"),
            own.c.region == bindparam("region", type_=String),
            own.c.name == bindparam("name", type_=String),
        )
        .scalar_subquery()
    )


def _page(tag_status: str, filtered: bool) -> Select:
    """The (repository_id, digest) of a page's images, read by the manifests' primary key
    alone: an index range from `after` in digest order, its filters checked per row, so the
    LIMIT stops the range early."""
    chosen = select(m.c.repository_id, m.c.digest).where(m.c.repository_id == _repository_id())
    # A scalar subquery, not EXISTS: PostgreSQL turns EXISTS into a (hash or merge)
    # semi-join over all the repository's tags; this stays one lookup per image read.
    on_image = (t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
    a_tag = select(t.c.name).where(*on_image).limit(1).scalar_subquery()
    chosen = chosen.where(m.c.digest > bindparam("after", type_=String))
    if tag_status == "TAGGED":
        chosen = chosen.where(_likely(a_tag.is_not(None)))
    elif tag_status == "UNTAGGED":
        chosen = chosen.where(_likely(a_tag.is_(None)))
    if filtered:
        archived = select(a.c.status).where(
            a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest
        )
        status = func.coalesce(archived.scalar_subquery(), ACTIVE)
        chosen = chosen.where(_likely(status == bindparam("image_status", type_=String)))
    return chosen.order_by(m.c.digest).limit(bindparam("limit", type_=Integer))


def _named(digests: int, tags: int) -> list[ColumnElement[bool]]:
    """The conditions on `manifests` of a list of ids: the named digests and the digests the
    named tags point to, as one uncorrelated set (an OR of a correlated IN made PostgreSQL
    test every image of the repository), looked up in the primary key."""
    repository_id = _repository_id()
    named: list[Select] = []
    if digests:
        listed = [bindparam(f"d{i}", type_=String) for i in range(digests)]
        m2 = m.alias("listed")
        named.append(
            select(m2.c.digest).where(m2.c.repository_id == repository_id, m2.c.digest.in_(listed))
        )
    if tags:
        wanted = [bindparam(f"t{i}", type_=String) for i in range(tags)]
        named.append(
            select(t.c.digest).where(t.c.repository_id == repository_id, t.c.name.in_(wanted))
        )
    values = named[0] if len(named) == 1 else union_all(*named)
    return [m.c.repository_id == repository_id, _among(m.c.digest, values)]


def _described(shape: tuple[Any, ...]) -> Select:
    """DescribeImages' statement. `shape` is ("page", tag_status, filtered, with_identity)
    (parameters after, limit and, when filtered, image_status) or ("ids", digests, tags,
    with_identity) (parameters d0.. and t0..). A page's images are chosen first (`_page`, its
    LIMIT applies to them), a list's are looked up (`_named`); then they are joined to their
    archive state, scan and tags by primary key; the head's repository row is outer-joined
    to them."""
    kind, first, second, with_identity = shape
    status = func.coalesce(a.c.status, ACTIVE)
    on_image = (t.c.repository_id == m.c.repository_id, t.c.digest == m.c.digest)
    tags = select(joined_texts(t.c.name, literal(TAG_SEPARATOR, String))).where(*on_image)
    images = select(
        m.c.repository_id.label("owner"),
        m.c.digest,
        m.c.media_type,
        m.c.artifact_type,
        m.c.subject_digest,
        m.c.image_size,
        m.c.pushed_at,
        m.c.last_pulled_at,
        status.label("status"),
        a.c.archived_at,
        a.c.activated_at,
        tags.scalar_subquery().label("tags"),
        s.c.status.label("scan_status"),
        s.c.description.label("scan_description"),
        s.c.severity_counts,
        s.c.completed_at.label("scan_completed_at"),
        s.c.source_updated_at.label("scan_source_updated_at"),
    )
    if kind == "page":
        chosen = _page(first, second).subquery("chosen")
        on_chosen = and_(m.c.repository_id == chosen.c.repository_id, m.c.digest == chosen.c.digest)
        source = chosen.join(m, on_chosen)
    else:
        source, images = m, images.where(*_named(first, second))
    images = images.select_from(
        source.outerjoin(
            a, and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)
        ).outerjoin(
            s, and_(s.c.repository_id == m.c.repository_id, s.c.digest == _plain(m.c.digest))
        )
    )
    page = images.subquery("described")
    return (
        select(*_head(with_identity), *[c for c in page.c if c.key != "owner"])
        .select_from(r.outerjoin(page, page.c.owner == r.c.id))
        .where(*_in_repository())
        .order_by(page.c.digest)
    )


_REPOSITORY = {w: HotRead(_repository(w)) for w in (False, True)}
_LAYER = {w: HotRead(_layer(w)) for w in (False, True)}
_LAYERS: dict[tuple[int, bool], HotRead] = {}
_IMAGES: dict[tuple[int, int, bool], HotRead] = {}
_DESCRIBED: dict[tuple[Any, ...], HotRead] = {}


def _params(
    registry_id: str, name: str, region: str, caller: tuple[str, str, str]
) -> dict[str, Any]:
    params = {"registry_id": registry_id, "region": region, "name": name}
    params["caller_account"], params["caller"], params["caller_key"] = caller
    return params


def _shaped(cache: dict[Any, HotRead], key: Any, build: Any) -> HotRead:
    found = cache.get(key)
    if found is None:
        if len(cache) >= _SHAPES:
            cache.clear()
        found = cache[key] = HotRead(build(*key))
    return found


async def repository(
    db: Database,
    registry_id: str,
    name: str,
    region: str,
    caller: tuple[str, str, str],
    with_identity: bool,
) -> Any | None:
    """The head row (module docstring), or None when the repository does not exist.
    `caller` is (account, user name, access key id)."""
    params = _params(registry_id, name, region, caller)
    return await _REPOSITORY[with_identity].first(db, params)


async def layer(
    db: Database,
    registry_id: str,
    name: str,
    region: str,
    caller: tuple[str, str, str],
    with_identity: bool,
    digest: str,
) -> Any | None:
    """The head row with `layer_size` (None when the blob is not linked to the repository)
    and `archived`, or None when the repository does not exist."""
    params = _params(registry_id, name, region, caller)
    params["digest"] = digest
    return await _LAYER[with_identity].first(db, params)


async def layers(
    db: Database,
    registry_id: str,
    name: str,
    region: str,
    caller: tuple[str, str, str],
    with_identity: bool,
    digests: list[str],
) -> list[Any]:
    """Head rows with `layer_digest`, `layer_size` and `archived` for each linked blob of
    `digests` (distinct, 1 to 100); one row with NULL `layer_digest` when none is linked;
    no row when the repository does not exist."""
    params = _params(registry_id, name, region, caller)
    params.update((f"d{i}", digest) for i, digest in enumerate(digests))
    statement = _shaped(_LAYERS, (len(digests), with_identity), _layers)
    return await statement.all(db, params)


async def images(
    db: Database,
    registry_id: str,
    name: str,
    region: str,
    caller: tuple[str, str, str],
    with_identity: bool,
    tags: list[str],
    digests: list[str],
) -> list[Any]:
    """Head rows with `tag` and the manifest's columns (`records.manifests.many_for_pull`'s)
    for each of `tags` that exists and each of `digests` (distinct, at most 100 each) stored;
    one row at least when the repository exists, none when it does not."""
    params = _params(registry_id, name, region, caller)
    params.update((f"t{i}", tag) for i, tag in enumerate(tags))
    params.update((f"d{i}", digest) for i, digest in enumerate(digests))
    statement = _shaped(_IMAGES, (len(tags), len(digests), with_identity), _images)
    return await statement.all(db, params)


async def described(
    db: Database,
    registry_id: str,
    name: str,
    region: str,
    caller: tuple[str, str, str],
    with_identity: bool,
    shape: tuple[Any, Any],
    values: dict[str, Any],
) -> list[Any]:
    """Head rows with the columns of the images DescribeImages answers (module docstring):
    `shape` is ("page", tag_status, filtered) with `values` after, limit and image_status,
    or ("ids", digests, tags) with `values` d0.. and t0.. (at most 100 each, digests >= 1 or
    tags >= 1); none when the repository does not exist."""
    params = _params(registry_id, name, region, caller)
    params.update(values)
    statement = _shaped(_DESCRIBED, (*shape, with_identity), lambda *key: _described(key))
    return await statement.all(db, params)
