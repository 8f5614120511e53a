"""The pull lookup: a manifest by tag or digest together with everything its authorization and
routing need, in one statement.

A warm manifest GET used to cost three statements (the repository and registry policies, the
pull-through rules, the manifest). Here one SELECT from the repository row returns the
manifest (outer-joined: NULL when absent), the repository's and registry's policy texts and
the registry's policy scope, whether a pull-through cache rule covers the name, and, for a
caller that is not an account administrator, the caller's tags and identity policies. Every
policy is read by the very statement that serves the pull, so a change made on any worker or
node applies to the next request; only parsed documents are cached (by their text).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, Text, and_, bindparam, exists, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead

r, t, m, a = schema.repositories, schema.tags, schema.manifests, schema.image_archives
rp, rs = schema.registry_policies, schema.registry_account_settings
rules, u, up = schema.pull_through_cache_rules, schema.users, schema.user_policies
k = schema.access_keys

# Joins a user's identity policy documents into one column. Stored documents are JSON, which
# cannot hold a raw record separator (control characters are escaped inside JSON strings).
POLICY_SEPARATOR = "\x1e"
# pullthrough.rules.ROOT: the rule that covers every repository of its registry.
_ROOT_PREFIX = "ROOT"
# iam.policyscope.SETTING: the account setting that scopes the registry policy.
POLICY_SCOPE_SETTING = "REGISTRY_POLICY_SCOPE"


class _joined(FunctionElement[str]):
    """string_agg(value, separator), group_concat on SQLite, with the separator an ordinary
    bound parameter (SQLAlchemy's aggregate_strings renders it at execution time, which a
    statement compiled once for `HotRead` cannot hold)."""

    type = Text()
    inherit_cache = True


@compiles(_joined)
def _string_agg(element: _joined, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)})"


@compiles(_joined, "sqlite")
def _group_concat(element: _joined, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)})"


# The public name of the aggregate, for the other one-statement lookups (`records.ecrreads`).
joined_texts = _joined


def authorization_columns(with_identity: bool) -> list[Any]:
    """The columns of a lookup from the repository row `r` that authorize the call on it (also
    the ECR reads', `records.ecrreads`): `registry_columns`, the caller's access key status
    (`caller_admin`: NULL unless the key is still Active and its user's, else the user's
    is_admin: the revocation check of a verification the credential store remembers) and,
    `with_identity`, the caller's `caller_tags` and `caller_policies`.
    Parameters: registry_id, region, name, caller_account, caller, caller_key."""
    caller = (u.c.account_id == bindparam("caller_account"), u.c.name == bindparam("caller"))
    columns: list[Any] = [
        *registry_columns(),
        select(u.c.is_admin)
        .select_from(k.join(u, u.c.id == k.c.user_id))
        .where(k.c.id == bindparam("caller_key"), k.c.status == "Active", *caller)
        .scalar_subquery()
        .label("caller_admin"),
    ]
    if with_identity:
        columns.append(select(u.c.tags).where(*caller).scalar_subquery().label("caller_tags"))
        columns.append(
            select(_joined(up.c.document, literal(POLICY_SEPARATOR, String)))
            .select_from(u.join(up, up.c.user_id == u.c.id))
            .where(*caller)
            .scalar_subquery()
            .label("caller_policies")
        )
    return columns


def registry_columns() -> list[Any]:
    """The policy columns of a lookup from the repository row `r`: the repository's and
    registry's policy texts, the registry's policy scope, and whether a pull-through rule
    covers the name (`cached`). Registry-level settings are the repository's region's
    (`region`, its key). Parameters: registry_id, region, name."""
    account, name = bindparam("registry_id"), bindparam("name", type_=String)
    region = bindparam("region", type_=String)
    # Rule.covers in SQL: the ROOT rule, or the name starts with "<prefix>/".
    covered = exists().where(
        rules.c.registry_id == account,
        rules.c.region == region,
        (rules.c.prefix == _ROOT_PREFIX)
        | (func.substr(name, 1, func.length(rules.c.prefix) + 1) == rules.c.prefix + literal("/")),
    )
    return [
        r.c.policy_text.label("repository_policy"),
        select(rp.c.policy_text)
        .where(rp.c.registry_id == account, rp.c.region == region)
        .scalar_subquery()
        .label("registry_policy"),
        select(rs.c.value)
        .where(
            rs.c.registry_id == account, rs.c.region == region, rs.c.name == POLICY_SCOPE_SETTING
        )
        .scalar_subquery()
        .label("policy_scope"),
        covered.label("cached"),
    ]


def _build(by_digest: bool, with_identity: bool) -> Select:
    """One of the four statements; built once (constructing one costs more than running it)."""
    account, name = bindparam("registry_id"), bindparam("name", type_=String)
    reference = bindparam("reference")
    if by_digest:
        source = r.outerjoin(m, and_(m.c.repository_id == r.c.id, m.c.digest == reference))
    else:
        source = r.outerjoin(t, and_(t.c.repository_id == r.c.id, t.c.name == reference)).outerjoin(
            m, and_(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest)
        )
    source = source.outerjoin(
        a, and_(a.c.repository_id == m.c.repository_id, a.c.digest == m.c.digest)
    )
    columns: list[Any] = [
        r.c.id.label("repository_id"),
        r.c.encryption_type,
        r.c.kms_key,
        m.c.digest,
        m.c.media_type,
        m.c.content,
        m.c.last_pulled_at,
        a.c.status.label("archive_status"),
        *authorization_columns(with_identity),
    ]
    return (
        select(*columns)
        .select_from(source)
        .where(
            r.c.registry_id == account,
            r.c.region == bindparam("region", type_=String),
            r.c.name == name,
        )
    )


_STATEMENTS = {
    (by_digest, with_identity): HotRead(_build(by_digest, with_identity))
    for by_digest in (False, True)
    for with_identity in (False, True)
}


async def lookup(
    db: Database,
    registry_id: str,
    name: str,
    reference: str,
    *,
    by_digest: bool,
    caller: tuple[str, str, str],
    with_identity: bool,
    region: str = "",
) -> Any | None:
    """The pull row (see the module docstring), or None when the repository does not exist
    in `region` (the repository region key, `cargobay.regions.key`).
    `caller` is (account, user name, access key id): `caller_admin` is NULL unless that key
    is Active, else the user's is_admin. With `with_identity`, the caller's `caller_tags`
    (JSON) and `caller_policies` (documents joined by POLICY_SEPARATOR) come too."""
    params = {"registry_id": registry_id, "region": region, "name": name, "reference": reference}
    params["caller_account"], params["caller"], params["caller_key"] = caller
    return await _STATEMENTS[(by_digest, with_identity)].first(db, params)
