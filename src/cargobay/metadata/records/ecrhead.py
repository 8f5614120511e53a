"""The head every ECR door statement starts with (`records.ecrreads`, `records.ecrdescribe`,
`records.ecrlist`): the repository row in one region with the columns its authorization needs
and the caller's key columns (`records.ecrreads`' docstring), and how such statements are kept
and run: one `HotRead` per shape, built on first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, select

from cargobay.metadata import schema
from cargobay.metadata.hot import HotRead
from cargobay.metadata.records.pulls import authorization_columns
from cargobay.metadata.records.repositories import COLUMNS

r = schema.repositories

# Statements built per batch or page shape, kept at most (per kind).
SHAPES = 512


def head(with_identity: bool) -> list[Any]:
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


def call_params(
    registry_id: str, name: str, region: str, caller: tuple[str, str, str]
) -> dict[str, Any]:
    params = {"registry_id": registry_id, "region": region, "name": name}
    params["caller_account"], params["caller"], params["caller_key"] = caller
    return params


def shaped(cache: dict[Any, HotRead], key: Any, build: Any) -> HotRead:
    found = cache.get(key)
    if found is None:
        if len(cache) >= SHAPES:
            cache.clear()
        found = cache[key] = HotRead(build(*key))
    return found
