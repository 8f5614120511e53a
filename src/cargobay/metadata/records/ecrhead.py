"""The head every ECR door statement starts with (`records.ecrreads`, `records.ecrdescribe`,
`records.ecrlist`): the repository row in one region with the columns its authorization needs
and the caller's key columns (`records.ecrreads`' docstring), and how such statements are kept
and run: one `HotRead` per shape, built on first use."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, FromClause, String, and_, bindparam, literal, select

from cargobay.metadata import schema
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records.pulls import (
    POLICY_SEPARATOR,
    authorization_columns,
    joined_texts,
    registry_columns,
)
from cargobay.metadata.records.repositories import COLUMNS

r = schema.repositories
k, u, up = schema.access_keys, schema.users, schema.user_policies

# Statements built per batch or page shape, kept at most (per kind).
SHAPES = 512


def head(with_identity: bool) -> list[Any]:
    """The columns every statement starts with (see the module docstring), and the caller's
    key's `caller_verifier`: the door confirms with it that the key still holds the secret
    its remembered row was opened from (`iam.awsrequest.signed_caller`)."""
    columns: list[Any] = [column.label(f"repo_{column.key}") for column in COLUMNS]
    verifier = select(k.c.secret_verifier).where(k.c.id == bindparam("caller_key"))
    return [
        *columns,
        *authorization_columns(with_identity),
        verifier.scalar_subquery().label("caller_verifier"),
    ]


def joined_head(with_identity: bool) -> list[Any]:
    """`head`'s columns for a statement of one row whose FROM is `with_caller(...)`: the
    caller's columns come from the key and user rows joined once, not from a subquery each
    (the key's row was read twice, the user's up to three times). Where the key is not
    Active or not that user's, `caller_admin` is NULL, as `head`'s, and the other caller
    columns are NULL too: nothing reads them then (`registry.ecrreads` goes the long way)."""
    columns: list[Any] = [column.label(f"repo_{column.key}") for column in COLUMNS]
    columns += [*registry_columns(), u.c.is_admin.label("caller_admin")]
    if with_identity:
        policies = select(joined_texts(up.c.document, literal(POLICY_SEPARATOR, String))).where(
            up.c.user_id == u.c.id
        )
        columns.append(u.c.tags.label("caller_tags"))
        columns.append(policies.scalar_subquery().label("caller_policies"))
    columns.append(k.c.secret_verifier.label("caller_verifier"))
    return columns


def with_caller(source: FromClause) -> FromClause:
    """`source` (the repository row, joined to at most one row of anything) with the caller's
    Active key and its user outer-joined, for `joined_head`."""
    key = and_(k.c.id == bindparam("caller_key"), k.c.status == "Active")
    user = and_(
        u.c.id == k.c.user_id,
        u.c.account_id == bindparam("caller_account"),
        u.c.name == bindparam("caller"),
    )
    return source.outerjoin(k, key).outerjoin(u, user)


def in_repository() -> tuple[ColumnElement[bool], ...]:
    return (
        r.c.registry_id == bindparam("registry_id"),
        r.c.region == bindparam("region", type_=String),
        r.c.name == bindparam("name", type_=String),
    )


def own_repository_id() -> Any:
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


class Head(NamedTuple):
    """Whose call on which repository a statement reads: the parameters of `head` and
    `in_repository`. `caller` is (account, user name, access key id); `with_identity`, for a
    caller that is not an account administrator, reads its tags and identity policies."""

    registry_id: str
    name: str
    region: str
    caller: tuple[str, str, str]
    with_identity: bool

    def params(self) -> dict[str, Any]:
        params = {"registry_id": self.registry_id, "region": self.region, "name": self.name}
        params["caller_account"], params["caller"], params["caller_key"] = self.caller
        return params


def shaped(cache: dict[Any, HotRead], key: Any, build: Any) -> HotRead:
    found = cache.get(key)
    if found is None:
        if len(cache) >= SHAPES:
            cache.clear()
        found = cache[key] = HotRead(build(*key))
    return found
