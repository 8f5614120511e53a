"""Lifecycle policies and their previews (Put/Get/DeleteLifecyclePolicy,
Start/GetLifecyclePolicyPreview): request and response shapes over `LifecycleService`, which
owns the rules and the rows (cargobay.lifecycle.service)."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.lifecycle.policy import EXPIRE, TRANSITION
from cargobay.registry.repositories import Repository

PREVIEW_PAGE_MAX = 100
TAG_STATUS = ("TAGGED", "UNTAGGED", "ANY")


def _ids(repo: Repository) -> dict[str, Any]:
    return {"registryId": repo.registry_id, "repositoryName": repo.name}


@action("PutLifecyclePolicy")
async def put_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text = await call.services.lifecycle.put_policy(repo, payload.get("lifecyclePolicyText"))
    return {**_ids(repo), "lifecyclePolicyText": text}


async def _with_last_evaluated(call: EcrCall, repo: Repository, text: str) -> dict[str, Any]:
    """The policy with `lastEvaluatedAt`, which ECR always returns: before the policy's first
    evaluation it is the epoch (0)."""
    when = await call.services.lifecycle.last_evaluated(repo)
    return {**_ids(repo), "lifecyclePolicyText": text, "lastEvaluatedAt": when or 0.0}


@action("GetLifecyclePolicy")
async def get_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text = await call.services.lifecycle.policy(repo)
    return await _with_last_evaluated(call, repo, text)


@action("DeleteLifecyclePolicy")
async def delete_lifecycle_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text = await call.services.lifecycle.policy(repo)
    result = await _with_last_evaluated(call, repo, text)
    await call.services.lifecycle.delete_policy(repo)
    return result


# -- previews ---------------------------------------------------------------------------------


@action("StartLifecyclePolicyPreview")
async def start_lifecycle_policy_preview(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text, status = await call.services.lifecycle.start_preview(
        repo, payload.get("lifecyclePolicyText")
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


def _transitions(entry: dict[str, Any]) -> bool:
    return entry.get("action", EXPIRE) == TRANSITION


def _render(entry: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "EXPIRE"}
    if _transitions(entry):
        action = {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}
    result: dict[str, Any] = {
        "imageDigest": entry["imageDigest"],
        "imagePushedAt": entry["imagePushedAt"],
        "action": action,
        "appliedRulePriority": entry["appliedRulePriority"],
        "storageClass": entry.get("storageClass", "STANDARD"),
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
    preview = await call.services.lifecycle.preview(repo)
    result: dict[str, Any] = {
        **_ids(repo),
        "lifecyclePolicyText": preview.policy_text,
        "status": preview.status,
    }
    if preview.status != "COMPLETE":
        return result
    offset = 0
    if token is not None:
        # Tokens belong to one preview: a newer preview makes older tokens invalid.
        if (
            not isinstance(token, dict)
            or token.get("preview") != preview.created_at
            or not isinstance(token.get("offset"), int)
            or token["offset"] < 0
        ):
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
        offset = token["offset"]
    selected = [entry for entry in preview.results if keep(entry)]
    page = selected[offset : offset + limit]
    result["previewResults"] = [_render(entry) for entry in page]
    if offset + limit < len(selected):
        result["nextToken"] = call.encode_token(
            {"preview": preview.created_at, "offset": offset + limit}
        )
    transitioning = sum(1 for entry in preview.results if _transitions(entry))
    summary: dict[str, Any] = {"expiringImageTotalCount": len(preview.results) - transitioning}
    if transitioning:
        # Present only when some image transitions (the model's documentation).
        summary["transitioningImageTotalCounts"] = [
            {"targetStorageClass": "ARCHIVE", "imageTotalCount": transitioning}
        ]
    result["summary"] = summary
    return result
