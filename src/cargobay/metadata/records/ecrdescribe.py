"""DescribeImages' one statement: the head (`records.ecrhead`) and the rows of the images a
page or a list of ids names, in digest order, with their tags (joined by commas), archive
status and latest scan: the four queries it took as one; one row of NULLs when none. No row at
all: the repository does not exist in that region."""

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
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

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
from cargobay.metadata.records.pulls import joined_texts

r, t, m, a, s = (
    schema.repositories,
    schema.tags,
    schema.manifests,
    schema.image_archives,
    schema.image_scans,
)

# Tag names cannot hold a comma (the OCI tag grammar): `described` joins them with one.
TAG_SEPARATOR = ","


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


def _likely(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition`, which PostgreSQL's planner then takes as true for most rows: its guess for
    an opaque `x IS NULL` or `x = $1` is 0.5%, after which it expected a page's index walk to
    read the whole repository and sorted all of it instead; a `<>` it guesses at 99.5%."""
    return case((condition, 1), else_=0) != 0


def _page(tag_status: str, filtered: bool) -> Select:
    """The (repository_id, digest) of a page's images, read by the manifests' primary key
    alone: an index range from `after` in digest order, its filters checked per row, so the
    LIMIT stops the range early."""
    chosen = select(m.c.repository_id, m.c.digest).where(m.c.repository_id == own_repository_id())
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
    repository_id = own_repository_id()
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
        select(*head(with_identity), *[c for c in page.c if c.key != "owner"])
        .select_from(r.outerjoin(page, page.c.owner == r.c.id))
        .where(*in_repository())
        .order_by(page.c.digest)
    )


_DESCRIBED: dict[tuple[Any, ...], HotRead] = {}


async def described(
    db: Database, call: Head, shape: tuple[Any, Any], values: dict[str, Any]
) -> list[Any]:
    """Head rows with the columns of the images DescribeImages answers (module docstring):
    `shape` is ("page", tag_status, filtered) with `values` after, limit and image_status,
    or ("ids", digests, tags) with `values` d0.. and t0.. (at most 100 each, digests >= 1 or
    tags >= 1); none when the repository does not exist."""
    params = call.params()
    params.update(values)
    statement = shaped(_DESCRIBED, (*shape, call.with_identity), lambda *key: _described(key))
    return await statement.all(db, params)
