"""UpdateImageStorageClass (the archive storage class) and ListImageReferrers: request and
response shapes over `ArchiveService` and the referrers index both doors share."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.actions.images import resolve_image
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text
from cargobay.oci.digest import is_digest
from cargobay.registry.archive import ACTIVATING, ACTIVE, ARCHIVED, STORAGE_CLASSES

REFERRERS_PAGE_MAX = 50  # the model's FiftyMaxResults
ARTIFACT_STATUS = (ACTIVE, ARCHIVED, ACTIVATING, "ANY")
MAX_ARTIFACT_TYPES = 5


@action("UpdateImageStorageClass")
async def update_image_storage_class(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    image_id = payload.get("imageId")
    if not isinstance(image_id, dict):
        raise errors.InvalidParameter("imageId is required")
    target = payload.get("targetStorageClass")
    if target not in STORAGE_CLASSES:
        raise errors.InvalidParameter(
            "Invalid parameter at 'targetStorageClass' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [STANDARD, ARCHIVE]'"
        )
    digest = await resolve_image(call, repo, image_id)
    status = await call.services.archive.update(repo, digest, target)
    resolved = {"imageDigest": digest}
    if isinstance(image_id.get("imageTag"), str):
        resolved["imageTag"] = image_id["imageTag"]
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageId": resolved,
        "imageStatus": status,
    }


def _referrer_filter(payload: dict[str, Any]) -> tuple[list[str], list[str] | None]:
    """(artifact types, image statuses or None for any) from `filter`."""
    given = payload.get("filter") or {}
    if not isinstance(given, dict):
        raise errors.InvalidParameter("filter must be an object")
    types = given.get("artifactTypes") or []
    if (
        not isinstance(types, list)
        or len(types) > MAX_ARTIFACT_TYPES
        or not all(isinstance(t, str) and 1 <= len(t) <= 255 for t in types)
    ):
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.artifactTypes' failed to satisfy constraint: "
            f"'Member must have at most {MAX_ARTIFACT_TYPES} artifact types of 1 to 255 "
            "characters'"
        )
    status = given.get("artifactStatus", ACTIVE)
    if status not in ARTIFACT_STATUS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.artifactStatus' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]'"
        )
    return types, None if status == "ANY" else [status]


@action("ListImageReferrers")
async def list_image_referrers(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    subject = payload.get("subjectId")
    digest = subject.get("imageDigest") if isinstance(subject, dict) else None
    if not isinstance(digest, str) or not is_digest(digest):
        raise errors.InvalidParameter(
            "Invalid parameter at 'subjectId.imageDigest' failed to satisfy constraint: "
            "'must be an image digest (algorithm:hex)'"
        )
    types, statuses = _referrer_filter(payload)
    limit = call.page_size(payload, maximum=REFERRERS_PAGE_MAX, default=REFERRERS_PAGE_MAX)
    after = call.decode_token(payload, token_text)
    found = await call.services.manifests.referrer_list(
        repo, digest, types, statuses, after=after, limit=limit + 1
    )
    referrers = []
    for referrer in found[:limit]:
        entry: dict[str, Any] = {
            "digest": referrer.digest,
            "mediaType": referrer.media_type,
            "size": referrer.size,
            "artifactStatus": referrer.status,
        }
        if referrer.artifact_type:
            entry["artifactType"] = referrer.artifact_type
        if referrer.annotations:
            entry["annotations"] = referrer.annotations
        referrers.append(entry)
    result: dict[str, Any] = {"referrers": referrers}
    if len(found) > limit:
        result["nextToken"] = call.encode_token(found[limit - 1].digest)
    return result
