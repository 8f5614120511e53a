"""The SQL behind the Secrets Manager service: finding a secret by any SecretId form, and
reading and moving versions, staging labels and tags."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, delete, func, select, update

from cargobay.metadata.schema import (
    secret_tags,
    secret_version_stages,
    secret_versions,
    secrets_table,
)
from cargobay.metadata.sql import upsert
from cargobay.secrets.errors import (
    InvalidRequestException,
    ResourceNotFoundException,
)
from cargobay.secrets.rules import CURRENT, PREVIOUS, SecretRef, arn_without_suffix_matches

MAX_VERSIONS = 100  # AWS keeps about 100 versions; unlabelled ones beyond that go first

NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_DELETED = (
    "You can't perform this operation on the secret because it was marked for deletion."
)


def is_expired(row: Any, now: float) -> bool:
    """A secret whose recovery window has passed no longer exists."""
    return row.deletion_date is not None and row.deletion_date <= now


async def find(conn: Any, account_id: str, region: str, ref: SecretRef, now: float) -> Any:
    """The secret row a SecretId names in this account and region; ResourceNotFound if none."""
    t = secrets_table
    if ref.arn is not None and (ref.account_id != account_id or ref.region != region):
        raise ResourceNotFoundException(NOT_FOUND)
    rows = []
    if ref.arn is not None:
        rows = (await conn.execute(select(t).where(t.c.arn == ref.arn))).all()
        if not rows:  # a partial ARN: everything but the random suffix
            candidates = (
                await conn.execute(
                    select(t).where(
                        t.c.account_id == account_id, t.c.region == region,
                        t.c.arn.startswith(ref.arn, autoescape=True),
                    )
                )
            ).all()  # fmt: skip
            rows = [r for r in candidates if arn_without_suffix_matches(r.arn, ref.arn)]
    else:
        rows = (
            await conn.execute(
                select(t).where(
                    t.c.account_id == account_id, t.c.region == region, t.c.name == ref.name
                )
            )
        ).all()
    rows = [r for r in rows if not is_expired(r, now)]
    if len(rows) != 1:
        raise ResourceNotFoundException(NOT_FOUND)
    return rows[0]


def require_live(row: Any) -> None:
    if row.deletion_date is not None:
        raise InvalidRequestException(MARKED_DELETED)


async def purge_if_expired(conn: Any, account_id: str, region: str, name: str, now: float) -> None:
    """Delete a secret of this name whose recovery window has passed (before re-creating)."""
    t = secrets_table
    await conn.execute(
        delete(t).where(
            t.c.account_id == account_id, t.c.region == region, t.c.name == name,
            t.c.deletion_date.is_not(None), t.c.deletion_date <= now,
        )
    )  # fmt: skip


async def stages_by_version(conn: Any, secret_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """{secret id: {version id: [labels]}} for the versions that have labels."""
    s = secret_version_stages
    result: dict[int, dict[str, list[str]]] = {i: {} for i in secret_ids}
    if not secret_ids:
        return result
    rows = await conn.execute(
        select(s.c.secret_id, s.c.version_id, s.c.stage)
        .where(s.c.secret_id.in_(secret_ids))
        .order_by(s.c.stage)
    )
    for row in rows:
        result[row.secret_id].setdefault(row.version_id, []).append(row.stage)
    return result


async def tags_of(conn: Any, secret_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    t = secret_tags
    result: dict[int, list[dict[str, str]]] = {i: [] for i in secret_ids}
    if not secret_ids:
        return result
    rows = await conn.execute(
        select(t.c.secret_id, t.c.key, t.c.value)
        .where(t.c.secret_id.in_(secret_ids))
        .order_by(t.c.key)
    )
    for row in rows:
        result[row.secret_id].append({"Key": row.key, "Value": row.value})
    return result


async def version(conn: Any, secret_id: int, version_id: str) -> Any:
    v = secret_versions
    return (
        await conn.execute(
            select(v).where(v.c.secret_id == secret_id, v.c.version_id == version_id)
        )
    ).first()


async def version_with_stage(conn: Any, secret_id: int, stage: str) -> str | None:
    s = secret_version_stages
    return (
        await conn.execute(
            select(s.c.version_id).where(s.c.secret_id == secret_id, s.c.stage == stage)
        )
    ).scalar_one_or_none()


async def add_version(
    conn: Any, secret_id: int, version_id: str, kind: str, sealed: str, now: float
) -> None:
    await conn.execute(
        secret_versions.insert().values(
            secret_id=secret_id, version_id=version_id, kind=kind, sealed_value=sealed,
            created_at=now,
        )
    )  # fmt: skip


async def label(conn: Any, secret_id: int, version_id: str, stages: list[str]) -> None:
    """Move each label to `version_id`; moving AWSCURRENT hands AWSPREVIOUS to the version
    that held it, as Secrets Manager does."""
    s = secret_version_stages
    for stage in stages:
        holder = await version_with_stage(conn, secret_id, stage)
        if holder == version_id:
            continue
        if stage == CURRENT and holder is not None:
            await upsert(conn, s, ["secret_id", "stage"], secret_id=secret_id, stage=PREVIOUS,
                         version_id=holder)  # fmt: skip
        await upsert(conn, s, ["secret_id", "stage"], secret_id=secret_id, stage=stage,
                     version_id=version_id)  # fmt: skip


async def prune_versions(conn: Any, secret_id: int) -> None:
    """Drop the oldest unlabelled versions beyond MAX_VERSIONS."""
    v, s = secret_versions, secret_version_stages
    count = (
        await conn.execute(select(func.count()).where(v.c.secret_id == secret_id))
    ).scalar_one()
    if count <= MAX_VERSIONS:
        return
    labelled = select(s.c.version_id).where(s.c.secret_id == secret_id)
    stale = (
        await conn.execute(
            select(v.c.version_id)
            .where(v.c.secret_id == secret_id, v.c.version_id.not_in(labelled))
            .order_by(v.c.created_at)
            .limit(count - MAX_VERSIONS)
        )
    ).scalars().all()  # fmt: skip
    if stale:
        await conn.execute(
            delete(v).where(and_(v.c.secret_id == secret_id, v.c.version_id.in_(stale)))
        )


async def touch(conn: Any, secret_id: int, **values: Any) -> None:
    await conn.execute(
        update(secrets_table).where(secrets_table.c.id == secret_id).values(**values)
    )


def policy_json(text: Any) -> str:
    """The policy as stored: the caller's text, once it is a JSON object."""
    from cargobay.secrets.errors import MalformedPolicyDocumentException

    if not isinstance(text, str) or not 1 <= len(text) <= 20480:
        raise MalformedPolicyDocumentException("The policy must be 1 to 20480 characters.")
    try:
        document = json.loads(text)
    except ValueError:
        raise MalformedPolicyDocumentException("The policy is not valid JSON.") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise MalformedPolicyDocumentException("The policy has no Statement.")
    return text
