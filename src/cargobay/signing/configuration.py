"""The registry's signing configuration (ECR's Put/Get/DeleteSigningConfiguration, per account
and region: the request's, `cargobay.regions`), which pushes it signs, and each image's signing
status per profile (DescribeImageSigningStatus).

A push runs `on_push` inside its own transaction (registry.hooks): for each signing profile a
matching rule names, a status row (IN_PROGRESS) and a `sign` task are written with the push, so
a signature is never lost to a crash and a failed push never signs. The task (`signing.job`)
then signs, as the principal who pushed (who needs `signer:SignPayload` on the profile, as on
ECR), and records COMPLETE or FAILED with a failure code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from cargobay import regions
from cargobay.errors import SigningConfigurationNotFound
from cargobay.jobs import queue
from cargobay.metadata import schema
from cargobay.metadata.sql import upsert
from cargobay.registry.hooks import CLIENT, PUSHED_REGION, PUSHED_REGISTRY, Deleted, Pushed
from cargobay.wildcards import Glob, tokens

if TYPE_CHECKING:
    from cargobay.metadata.db import Database
    from cargobay.registry.repositories import Repository

C, S = schema.registry_signing_configurations, schema.image_signing_statuses
TASK_KIND = "sign"
IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"


def _mine(registry_id: str, region_key: str | None = None) -> Any:
    """The registry's configuration row in a region (its key; default the request's)."""
    region_key = regions.current_key() if region_key is None else region_key
    return and_(C.c.registry_id == registry_id, C.c.region == region_key)


def normalized(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules as ECR echoes them: the model's members only (the door checked the shape)."""
    out = []
    for rule in rules:
        kept: dict[str, Any] = {"signingProfileArn": rule["signingProfileArn"]}
        if rule.get("repositoryFilters"):
            kept["repositoryFilters"] = [
                {"filter": f["filter"], "filterType": f["filterType"]}
                for f in rule["repositoryFilters"]
            ]
        out.append(kept)
    return out


def matches(pattern: str, repository: str) -> bool:
    """WILDCARD_MATCH: `*` stands for any run of characters; the rest must match exactly."""
    return Glob(tokens(pattern)).matches(repository)


def profiles_for(rules: list[dict[str, Any]], repository: str) -> list[str]:
    """The signing profile ARNs whose rules match `repository`, each once, in rule order. A rule
    without filters matches every repository."""
    found: list[str] = []
    for rule in rules:
        filters = rule.get("repositoryFilters") or []
        hit = not filters or any(matches(f["filter"], repository) for f in filters)
        if hit and rule["signingProfileArn"] not in found:
            found.append(rule["signingProfileArn"])
    return found


async def _stored_rules(conn: Any, registry_id: str) -> str:
    """The registry's configuration in the request's region as stored (JSON rules);
    SigningConfigurationNotFound when it has none, as Get and Delete both answer."""
    query = select(C.c.rules).where(_mine(registry_id))
    text = (await conn.execute(query)).scalar_one_or_none()
    if text is None:
        raise SigningConfigurationNotFound(
            f"Signing configuration not found for registry {registry_id}"
        )
    return text


class SigningService:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Set by the process that runs the task queue: look for work at once after a push.
        self.wake: Callable[[], None] | None = None

    # -- the configuration -------------------------------------------------------------------

    async def put_configuration(
        self, registry_id: str, rules: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rules = normalized(rules)
        async with self.db.write() as conn:
            await upsert(
                conn,
                C,
                ["registry_id", "region"],
                registry_id=registry_id,
                region=regions.current_key(),
                rules=json.dumps(rules),
                updated_at=time.time(),
            )
        return rules

    async def get_configuration(self, registry_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return json.loads(await _stored_rules(conn, registry_id))

    async def delete_configuration(self, registry_id: str) -> list[dict[str, Any]]:
        async with self.db.write() as conn:
            text = await _stored_rules(conn, registry_id)
            await conn.execute(C.delete().where(_mine(registry_id)))
        return json.loads(text)

    # -- hooks -------------------------------------------------------------------------------

    @staticmethod
    def push_reads() -> dict[str, Any]:
        """What `on_push` needs, read with the other hooks' settings (`registry.hooks`): the
        pushed registry's signing rules (None without a configuration)."""
        query = select(C.c.rules).where(
            C.c.registry_id == PUSHED_REGISTRY, C.c.region == PUSHED_REGION
        )
        return {"signing_rules": query.scalar_subquery()}

    async def on_push(self, conn: Any, event: Pushed) -> None:
        """Queue a signature per matching profile for a new image a client pushed (not for the
        referrers attached to an image, signatures included, nor for replicas and cache fills)."""
        if event.origin != CLIENT or not event.created or event.subject:
            return
        if "signing_rules" in event.settings:  # read with the push's other settings
            text = event.settings["signing_rules"]
        else:
            query = select(C.c.rules).where(_mine(event.repo.registry_id, event.repo.region_key))
            text = (await conn.execute(query)).scalar_one_or_none()
        if text is None:
            return
        arns = profiles_for(json.loads(text), event.repo.name)
        if not arns:
            return
        now = time.time()
        for arn in arns:
            await upsert(
                conn,
                S,
                ["repository_id", "digest", "profile_arn"],
                repository_id=event.repo.id,
                digest=event.digest,
                profile_arn=arn,
                status=IN_PROGRESS,
                failure_code=None,
                failure_reason=None,
                signature_digest=None,
                updated_at=now,
            )
            payload = {
                "repository_id": event.repo.id,
                "registry_id": event.repo.registry_id,
                "repository": event.repo.name,
                "digest": event.digest,
                "profile_arn": arn,
            }
            if event.pusher is not None:
                # The task signs as the pusher (ECR signs with the pushing identity), so it
                # checks their signer:SignPayload; the key id is not needed for that.
                payload["pusher"] = {
                    "account_id": event.pusher.account_id,
                    "user_name": event.pusher.user_name,
                    "is_admin": event.pusher.is_admin,
                }
            key = f"sign:{event.repo.id}:{event.digest}:{arn}:{now}"
            await queue.enqueue(conn, TASK_KIND, payload, key=key)
        if self.wake is not None:
            # After the commit (the hook runs inside the transaction); the tick is the backstop.
            asyncio.get_running_loop().call_later(0.3, self.wake)

    async def on_delete(self, conn: Any, event: Deleted) -> None:
        """An image's signing statuses go with it."""
        if event.untagged_only:
            return
        await conn.execute(
            S.delete().where(S.c.repository_id == event.repo.id, S.c.digest == event.digest)
        )

    # -- statuses ----------------------------------------------------------------------------

    async def record(
        self,
        repository_id: int,
        digest: str,
        profile_arn: str,
        status: str,
        *,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        signature_digest: str | None = None,
    ) -> None:
        """The outcome of a signing task (only while the image's status row exists: a deleted
        image's late task records nothing)."""
        async with self.db.write() as conn:
            await conn.execute(
                S.update()
                .where(
                    S.c.repository_id == repository_id,
                    S.c.digest == digest,
                    S.c.profile_arn == profile_arn,
                )
                .values(
                    status=status,
                    failure_code=failure_code,
                    failure_reason=failure_reason,
                    signature_digest=signature_digest,
                    updated_at=time.time(),
                )
            )

    async def statuses(self, repo: Repository, digest: str) -> list[dict[str, Any]]:
        """The ImageSigningStatus list of one image, one entry per profile."""
        async with self.db.read_now() as conn:
            rows = (
                await conn.execute(
                    select(S)
                    .where(S.c.repository_id == repo.id, S.c.digest == digest)
                    .order_by(S.c.profile_arn)
                )
            ).all()
        out = []
        for row in rows:
            entry = {"signingProfileArn": row.profile_arn, "status": row.status}
            if row.status == FAILED:
                entry["failureCode"] = row.failure_code or "SigningFailed"
                entry["failureReason"] = row.failure_reason or "The image could not be signed."
            out.append(entry)
        return out
