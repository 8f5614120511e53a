"""Lifecycle policies and their previews: every rule and every row behind
Put/Get/DeleteLifecyclePolicy and Start/GetLifecyclePolicyPreview.

The policy text is stored verbatim in `repositories.lifecycle_policy`; the periodic job
(`lifecycle.job`) applies it. A preview is computed at once with the same `plan()` the job
uses and stored COMPLETE in `lifecycle_previews`, one per repository.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cargobay.errors import (
    InvalidParameter,
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewInProgress,
    LifecyclePolicyPreviewNotFound,
)
from cargobay.jobs import leases
from cargobay.lifecycle import candidates
from cargobay.lifecycle.evaluate import candidates as candidates_of
from cargobay.lifecycle.evaluate import first_rule
from cargobay.lifecycle.policy import LifecyclePolicy, LifecyclePolicyError, Rule, parse_policy
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert
from cargobay.registry.archive import storage_class
from cargobay.registry.images import ImageRow, ImageService
from cargobay.registry.repositories import Repository, RepositoryService

log = logging.getLogger("cargobay.lifecycle")

JOB_NAME = "lifecycle"
MIN_TEXT, MAX_TEXT = 100, 30_720
# A preview left IN_PROGRESS longer than this (its worker died) no longer blocks a new one.
PREVIEW_STALE_SECONDS = 300.0
DESCRIBE_CHUNK = 5000  # digests per describe query (an IN list)


@dataclass(frozen=True, slots=True)
class Preview:
    """A stored preview: its policy, status, when it started, and (when COMPLETE) the images
    it would act on as `{imageDigest, imageTags, imagePushedAt, appliedRulePriority, action
    ("expire" or "transition"), storageClass (the image's, STANDARD or ARCHIVE)}`."""

    policy_text: str
    status: str
    created_at: float
    results: list[dict[str, Any]]


def check_policy_text(text: object) -> str:
    """A lifecycle policy text that is the right size and parses, or InvalidParameter."""
    if not isinstance(text, str) or not text:
        raise InvalidParameter("lifecyclePolicyText is required")
    if not MIN_TEXT <= len(text) <= MAX_TEXT:
        raise InvalidParameter(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            f"'Member must have length between {MIN_TEXT} and {MAX_TEXT}'"
        )
    try:
        parse_policy(text)
    except LifecyclePolicyError as exc:
        raise InvalidParameter(exc.message) from None
    return text


class LifecycleService:
    def __init__(self, db: Database, repositories: RepositoryService, images: ImageService) -> None:
        self.db = db
        self.repositories = repositories
        self.images = images

    # -- policies -----------------------------------------------------------------------------

    async def policy(self, repo: Repository) -> str:
        text = await self.repositories.get_field(repo, "lifecycle_policy")
        if not text:
            raise LifecyclePolicyNotFound(
                f"Lifecycle policy does not exist for the repository with name '{repo.name}' "
                f"in the registry with id '{repo.registry_id}'"
            )
        return text

    async def put_policy(self, repo: Repository, text: object) -> str:
        checked = check_policy_text(text)
        await self.repositories.update(repo, lifecycle_policy=checked)
        return checked

    async def delete_policy(self, repo: Repository) -> str:
        text = await self.policy(repo)
        await self.repositories.update(repo, lifecycle_policy=None)
        return text

    async def last_evaluated(self, repo: Repository) -> float | None:
        """When the job last evaluated this repository's policy, if it has (kept in the job's
        own result row, keyed by repository id)."""
        result = await leases.last_result(self.db, JOB_NAME) or {}
        value = (result.get("lastEvaluatedAt") or {}).get(str(repo.id))
        return float(value) if isinstance(value, int | float) else None

    # -- what a policy selects ------------------------------------------------------------------

    async def plan(
        self, repo: Repository, policy: LifecyclePolicy, now: float
    ) -> list[tuple[ImageRow, Rule]]:
        """What the policy expires or archives in the repository now: (image, rule) pairs,
        oldest first. Images an index lists are parts of it, neither counted nor expired.

        Each rule's candidates come from an index (lifecycle.candidates), and only they are
        described, so this costs what the policy selects; each candidate goes to the first
        rule by priority whose storage class and tags it matches, and is acted on only if
        that rule's count criterion marks it (ECR: at most one rule per image, the
        lowest-priority-number one; an image a higher-priority rule's tags match is never
        expired by a lower one)."""
        marked: dict[int, set[str]] = {}
        async with self.db.read() as conn:
            for rule in policy.rules:
                marked[rule.priority] = set(await candidates.for_rule(conn, repo.id, rule, now))
        digests = sorted(set().union(*marked.values()))
        images: list[ImageRow] = []
        for start in range(0, len(digests), DESCRIBE_CHUNK):
            images += await self.images.describe(repo, digests[start : start + DESCRIBE_CHUNK])
        planned = []
        for image in images:
            rule = first_rule(policy, image)
            if rule is None or image.digest not in marked[rule.priority]:
                continue
            if rule.selection.count_type == "imageCountMoreThan" or candidates_of(
                rule.selection, [image], now
            ):
                planned.append((image, rule))
        return sorted(planned, key=lambda pair: (pair[0].pushed_at, pair[0].digest))

    # -- previews -------------------------------------------------------------------------------

    async def start_preview(self, repo: Repository, requested: object) -> tuple[str, str]:
        """Compute and store a preview of `requested` (default: the stored policy); its text and
        status. One preview per repository; a running one blocks another."""
        text = check_policy_text(requested) if requested is not None else await self.policy(repo)
        policy = parse_policy(text)
        p = schema.lifecycle_previews
        now = time.time()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(p.c.status, p.c.created_at).where(p.c.repository_id == repo.id)
                )
            ).first()
            if (
                row is not None
                and row.status == "IN_PROGRESS"
                and row.created_at > now - PREVIEW_STALE_SECONDS
            ):
                raise LifecyclePolicyPreviewInProgress(
                    "Previous lifecycle policy preview request has not been completed for the "
                    f"repository with name '{repo.name}' in the registry with id "
                    f"'{repo.registry_id}'"
                )
            await upsert(
                conn,
                p,
                ["repository_id"],
                repository_id=repo.id,
                policy_text=text,
                status="IN_PROGRESS",
                results=None,
                created_at=now,
            )
        try:
            planned = await self.plan(repo, policy, now)
            results: str | None = json.dumps(
                [
                    {
                        "imageDigest": image.digest,
                        "imageTags": image.tags,
                        "imagePushedAt": image.pushed_at,
                        "appliedRulePriority": rule.priority,
                        "action": rule.action,
                        "storageClass": storage_class(image.status),
                    }
                    for image, rule in planned
                ]
            )
            status = "COMPLETE"
        except Exception:
            log.exception("lifecycle policy preview of %s failed", repo.name)
            results, status = None, "FAILED"
        async with self.db.write() as conn:
            await conn.execute(
                p.update()
                .where(p.c.repository_id == repo.id, p.c.created_at == now)
                .values(status=status, results=results)
            )
        return text, status

    async def preview(self, repo: Repository) -> Preview:
        p = schema.lifecycle_previews
        async with self.db.read() as conn:
            row = (await conn.execute(select(p).where(p.c.repository_id == repo.id))).first()
        if row is None:
            raise LifecyclePolicyPreviewNotFound(
                "There is no dry run for the repository with name "
                f"'{repo.name}' in the registry with id '{repo.registry_id}'"
            )
        return Preview(row.policy_text, row.status, row.created_at, json.loads(row.results or "[]"))
