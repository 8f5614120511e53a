"""The periodic lifecycle job: for every repository with a lifecycle policy, expire what the
policy selects, through the same delete path as BatchDeleteImage, and record each expiry in
`lifecycle_events`.

`plan()` is shared with StartLifecyclePolicyPreview, so a preview lists exactly what a run at
the same moment would expire.

Images that an image index (manifest list) in the repository references are parts of that
multi-architecture image, not images of their own: they are neither counted nor expired
(deleting them would break the index); when the index itself expires, they become untagged
images of their own for later runs.

When each repository's policy was last evaluated (GetLifecyclePolicy's `lastEvaluatedAt`) is
kept in the job's own result row (`job_leases.last_result`), keyed by repository id, so no
schema change is needed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import select

from cargobay.jobs import leases
from cargobay.jobs.leases import Job
from cargobay.lifecycle.evaluate import evaluate
from cargobay.lifecycle.policy import LifecyclePolicy, LifecyclePolicyError, Rule, parse_policy
from cargobay.metadata import schema
from cargobay.oci.errors import ManifestUnknown
from cargobay.registry.images import ImageRow
from cargobay.registry.repositories import Repository
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.lifecycle")

JOB_NAME = "lifecycle"
ACTION_EXPIRE = "EXPIRE"


async def index_children(services: Services, repo: Repository) -> set[str]:
    """Digests of manifests an image index in the repository lists."""
    r = schema.manifest_references
    async with services.db.read() as conn:
        rows = await conn.execute(
            select(r.c.target_digest).where(r.c.repository_id == repo.id, r.c.kind == "manifest")
        )
        return {row.target_digest for row in rows}


async def plan(
    services: Services, repo: Repository, policy: LifecyclePolicy, now: float
) -> list[tuple[ImageRow, Rule]]:
    """What the policy expires in the repository now: (image, rule) pairs, oldest first."""
    images = await services.images.describe(repo)
    children = await index_children(services, repo)
    return evaluate(policy, [i for i in images if i.digest not in children], now)


async def expire_repository(
    services: Services, repo: Repository, policy: LifecyclePolicy, now: float
) -> int:
    """Apply the policy to one repository; the number of images expired."""
    expired = 0
    for image, rule in await plan(services, repo, policy, now):
        # An index pushed since the plan may list this image now; leave it to the next run.
        if await services.images.parents(repo, image.digest):
            continue
        try:
            await services.manifests.delete(repo, image.digest)
        except ManifestUnknown:
            continue  # deleted meanwhile
        async with services.db.write() as conn:
            await conn.execute(
                schema.lifecycle_events.insert().values(
                    repository_id=repo.id,
                    repository_name=repo.name,
                    registry_id=repo.registry_id,
                    image_digest=image.digest,
                    image_tags=json.dumps(image.tags),
                    rule_priority=rule.priority,
                    action=ACTION_EXPIRE,
                    occurred_at=time.time(),
                )
            )
        expired += 1
        log.info(
            "lifecycle rule %d expired %s@%s (tags %s)",
            rule.priority,
            repo.name,
            image.digest,
            ",".join(image.tags) or "-",
        )
    return expired


async def last_evaluated(services: Services, repo: Repository) -> float | None:
    """When the job last evaluated this repository's policy, if it has."""
    result = await leases.last_result(services.db, JOB_NAME) or {}
    value = (result.get("lastEvaluatedAt") or {}).get(str(repo.id))
    return float(value) if isinstance(value, int | float) else None


async def run(services: Services) -> dict[str, Any]:
    """One pass over every repository with a lifecycle policy."""
    previous = await leases.last_result(services.db, JOB_NAME) or {}
    earlier = previous.get("lastEvaluatedAt") or {}
    r = schema.repositories
    async with services.db.read() as conn:
        rows = (
            await conn.execute(
                select(r.c.id, r.c.registry_id, r.c.name, r.c.lifecycle_policy)
                .where(r.c.lifecycle_policy.is_not(None))
                .order_by(r.c.id)
            )
        ).all()
    evaluated: dict[str, float] = {}
    expired = errors = 0
    for row in rows:
        key = str(row.id)
        try:
            policy = parse_policy(row.lifecycle_policy)
        except LifecyclePolicyError as exc:
            log.warning("repository %s has an invalid lifecycle policy: %s", row.name, exc.reason)
            errors += 1
            continue
        repo = await services.repositories.find(row.registry_id, row.name)
        if repo is None or repo.id != row.id:
            continue  # deleted (or deleted and re-created) since the listing
        try:
            now = time.time()
            expired += await expire_repository(services, repo, policy, now)
            evaluated[key] = now
        except Exception:
            log.exception("lifecycle evaluation of %s failed", row.name)
            errors += 1
            if key in earlier:
                evaluated[key] = earlier[key]
    return {
        "repositories": len(rows),
        "expired": expired,
        "errors": errors,
        "lastEvaluatedAt": evaluated,
    }


def lifecycle_job(services: Services) -> Job:
    async def run_job() -> dict[str, Any]:
        return await run(services)

    return Job(JOB_NAME, services.settings.lifecycle_interval_seconds, run_job)
