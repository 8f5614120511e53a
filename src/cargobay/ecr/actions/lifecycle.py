"""Lifecycle policies and their previews (Put/Get/DeleteLifecyclePolicy,
Start/GetLifecyclePolicyPreview).

The policy text is stored verbatim in `repositories.lifecycle_policy`; the periodic
`lifecycle` job applies it (cargobay.lifecycle.job). A preview is computed at once with the same
`plan()` the job uses and stored COMPLETE in `lifecycle_previews`, one per repository.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import select

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.lifecycle.job import last_evaluated, plan
from cargobay.lifecycle.policy import LifecyclePolicyError, parse_policy
from cargobay.metadata import schema
from cargobay.metadata.sql import upsert
from cargobay.registry.repositories import Repository

log = logging.getLogger("cargobay.ecr.lifecycle")

MIN_TEXT, MAX_TEXT = 100, 30_720
PREVIEW_PAGE_MAX = 100
# A preview left IN_PROGRESS longer than this (its worker died) no longer blocks a new one.
PREVIEW_STALE_SECONDS = 300.0
TAG_STATUS = ("TAGGED", "UNTAGGED", "ANY")


def _policy_text(payload: dict[str, Any], *, required: bool = True) -> str | None:
    text = payload.get("lifecyclePolicyText")
    if text is None and not required:
        return None
    if not isinstance(text, str) or not text:
        raise errors.InvalidParameter("lifecyclePolicyText is required")
    if not MIN_TEXT <= len(text) <= MAX_TEXT:
        raise errors.InvalidParameter(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            f"'Member must have length between {MIN_TEXT} and {MAX_TEXT}'"
        )
    try:
        parse_policy(text)
    except LifecyclePolicyError as exc:
        raise errors.InvalidParameter(exc.message) from None
    return text


def _not_found(repo: Repository) -> errors.EcrError:
    return errors.LifecyclePolicyNotFound(
        f"Lifecycle policy does not exist for the repository with name '{repo.name}' in the "
        f"registry with id '{repo.registry_id}'"
    )


def _ids(repo: Repository) -> dict[str, Any]:
    return {"registryId": repo.registry_id, "repositoryName": repo.name}


async def _stored(call: EcrCall, payload: dict[str, Any]) -> tuple[Repository, str]:
    repo = await call.repository(payload)
    text = await call.services.repositories.get_field(repo, "lifecycle_policy")
    if not text:
        raise _not_found(repo)
    return repo, text


@action("PutLifecyclePolicy")
async def put_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text = _policy_text(payload)
    await call.services.repositories.update(repo, lifecycle_policy=text)
    return {**_ids(repo), "lifecyclePolicyText": text}


async def _with_last_evaluated(call: EcrCall, repo: Repository, text: str) -> dict[str, Any]:
    result = {**_ids(repo), "lifecyclePolicyText": text}
    when = await last_evaluated(call.services, repo)
    if when is not None:
        result["lastEvaluatedAt"] = when
    return result


@action("GetLifecyclePolicy")
async def get_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, text = await _stored(call, payload)
    return await _with_last_evaluated(call, repo, text)


@action("DeleteLifecyclePolicy")
async def delete_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, text = await _stored(call, payload)
    result = await _with_last_evaluated(call, repo, text)
    await call.services.repositories.update(repo, lifecycle_policy=None)
    return result


# -- previews ---------------------------------------------------------------------------------


@action("StartLifecyclePolicyPreview")
async def start_lifecycle_policy_preview(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    services = call.services
    text = _policy_text(payload, required=False)
    if text is None:
        text = await services.repositories.get_field(repo, "lifecycle_policy")
        if not text:
            raise _not_found(repo)
    policy = parse_policy(text)
    p = schema.lifecycle_previews
    now = time.time()
    async with services.db.write() as conn:
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
            raise errors.LifecyclePolicyPreviewInProgress(
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
        planned = await plan(services, repo, policy, now)
        results: str | None = json.dumps(
            [
                {
                    "imageDigest": image.digest,
                    "imageTags": image.tags,
                    "imagePushedAt": image.pushed_at,
                    "appliedRulePriority": rule.priority,
                }
                for image, rule in planned
            ]
        )
        status = "COMPLETE"
    except Exception:
        log.exception("lifecycle policy preview of %s failed", repo.name)
        results, status = None, "FAILED"
    async with services.db.write() as conn:
        await conn.execute(
            p.update()
            .where(p.c.repository_id == repo.id, p.c.created_at == now)
            .values(status=status, results=results)
        )
    return {**_ids(repo), "lifecyclePolicyText": text, "status": status}


def _preview_filter(payload: dict[str, Any]):
    """A predicate over stored preview entries from `filter.tagStatus` and `imageIds`."""
    status = (payload.get("filter") or {}).get("tagStatus", "ANY")
    if status not in TAG_STATUS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'"
        )
    ids = payload.get("imageIds")
    if ids is not None:
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise errors.InvalidParameter("imageIds must list 1 to 100 image identifiers")
        if not all(isinstance(i, dict) for i in ids):
            raise errors.InvalidParameter("imageIds entries must be objects")
        if payload.get("maxResults") is not None or payload.get("nextToken") is not None:
            raise errors.InvalidParameter(
                "maxResults and nextToken cannot be used together with imageIds"
            )
    digests = {i["imageDigest"] for i in ids or () if isinstance(i.get("imageDigest"), str)}
    tags = {i["imageTag"] for i in ids or () if isinstance(i.get("imageTag"), str)}

    def keep(entry: dict[str, Any]) -> bool:
        if status == "TAGGED" and not entry["imageTags"]:
            return False
        if status == "UNTAGGED" and entry["imageTags"]:
            return False
        if ids is not None:
            return entry["imageDigest"] in digests or bool(tags & set(entry["imageTags"]))
        return True

    return keep


def _render(entry: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "imageDigest": entry["imageDigest"],
        "imagePushedAt": entry["imagePushedAt"],
        "action": {"type": "EXPIRE"},
        "appliedRulePriority": entry["appliedRulePriority"],
        "storageClass": "STANDARD",
    }
    if entry["imageTags"]:
        result["imageTags"] = entry["imageTags"]
    return result


@action("GetLifecyclePolicyPreview")
async def get_lifecycle_policy_preview(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    keep = _preview_filter(payload)
    limit = call.page_size(payload, maximum=PREVIEW_PAGE_MAX, default=PREVIEW_PAGE_MAX)
    token = call.decode_token(payload)
    p = schema.lifecycle_previews
    async with call.services.db.read() as conn:
        row = (await conn.execute(select(p).where(p.c.repository_id == repo.id))).first()
    if row is None:
        raise errors.LifecyclePolicyPreviewNotFound(
            "There is no dry run for the repository with name "
            f"'{repo.name}' in the registry with id '{repo.registry_id}'"
        )
    result: dict[str, Any] = {
        **_ids(repo),
        "lifecyclePolicyText": row.policy_text,
        "status": row.status,
    }
    if row.status != "COMPLETE":
        return result
    offset = 0
    if token is not None:
        # Tokens belong to one preview: a newer preview makes older tokens invalid.
        if (
            not isinstance(token, dict)
            or token.get("preview") != row.created_at
            or not isinstance(token.get("offset"), int)
            or token["offset"] < 0
        ):
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
        offset = token["offset"]
    entries = json.loads(row.results or "[]")
    selected = [entry for entry in entries if keep(entry)]
    page = selected[offset : offset + limit]
    result["previewResults"] = [_render(entry) for entry in page]
    if offset + limit < len(selected):
        result["nextToken"] = call.encode_token(
            {"preview": row.created_at, "offset": offset + limit}
        )
    result["summary"] = {"expiringImageTotalCount": len(entries)}
    return result
