"""The periodic lifecycle job: for every repository with a lifecycle policy, expire what the
policy selects, through the same delete service as BatchDeleteImage, archive what its
`transition` rules select, through the same archive service as UpdateImageStorageClass, and
record each action in `lifecycle_events`.

`LifecycleService.plan()` is shared with StartLifecyclePolicyPreview, so a preview lists exactly
what a run at the same moment would expire.

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

from cargobay import regions
from cargobay.errors import (
    ImageNotFound,
    ImageReferencedByManifestList,
    ImageStorageClassUpdateNotSupported,
)
from cargobay.jobs import leases
from cargobay.lifecycle.policy import (
    TRANSITION,
    LifecyclePolicy,
    LifecyclePolicyError,
    Rule,
    parse_policy,
)
from cargobay.lifecycle.service import JOB_NAME
from cargobay.metadata import schema
from cargobay.registry.archive import ARCHIVE
from cargobay.registry.deletes import ImageRef
from cargobay.registry.repositories import Repository
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.lifecycle")

ACTION_EXPIRE = "EXPIRE"
ACTION_TRANSITION = "TRANSITION"


async def _act(services: Services, repo: Repository, digest: str, rule: Rule) -> str:
    """Expire or archive one image as its rule says; the action recorded."""
    if rule.action == TRANSITION:
        await services.archive.update(repo, digest, ARCHIVE)
        return ACTION_TRANSITION
    await services.deletes.delete_image(
        repo, ImageRef(digest=digest), origin="lifecycle", rule_priority=rule.priority
    )
    return ACTION_EXPIRE


async def expire_repository(
    services: Services, repo: Repository, policy: LifecyclePolicy, now: float
) -> int:
    """Apply the policy to one repository; the number of images expired or archived."""
    expired = 0
    for image, rule in await services.lifecycle.plan(repo, policy, now):
        try:
            action = await _act(services, repo, image.digest, rule)
        except (ImageReferencedByManifestList, ImageStorageClassUpdateNotSupported):
            continue  # an index pushed since the plan lists it now: the next run decides
        except ImageNotFound:
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
                    action=action,
                    occurred_at=time.time(),
                )
            )
        expired += 1
        log.info(
            "lifecycle rule %d %s %s@%s (tags %s)",
            rule.priority,
            "archived" if action == ACTION_TRANSITION else "expired",
            repo.name,
            image.digest,
            ",".join(image.tags) or "-",
        )
    return expired


async def run(services: Services) -> dict[str, Any]:
    """One pass over every repository with a lifecycle policy."""
    previous = await leases.last_result(services.db, JOB_NAME) or {}
    earlier = previous.get("lastEvaluatedAt") or {}
    r = schema.repositories
    async with services.db.read() as conn:
        rows = (
            await conn.execute(
                select(r.c.id, r.c.registry_id, r.c.region, r.c.name, r.c.lifecycle_policy)
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
        with regions.serving_key(row.region):  # the repository's region (`regions_served`)
            repo = await services.repositories.find(row.registry_id, row.name)
            if repo is None or repo.id != row.id:
                continue  # deleted (or deleted and re-created) since the listing
        try:
            now = time.time()
            with regions.serving_key(row.region):
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
