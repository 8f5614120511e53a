"""DescribeImages' request and answer: the payload read into a `DescribeQuery` (by the
authorization's one statement, `ecr.context`, and by the action alike), the images an
`imageIds` list names picked from the rows, and the rows shaped as ECR's ImageDetail.

The rows come from one statement (`metadata.records.ecrreads.described`) that carries each
image's tags, archive status and latest scan, so the answer is built here without another
query or an object per image between the row and its JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cargobay.ecr import errors
from cargobay.errors import DomainError, ImageNotFound
from cargobay.registry.archive import ACTIVATING, ACTIVE, ARCHIVED
from cargobay.registry.deletes import ImageRef, check_refs, named_digest
from cargobay.registry.ecrreads import TAG_SEPARATOR, DescribeQuery
from cargobay.registry.repositories import Repository
from cargobay.scans.service import COMPLETE

TAG_STATUS = ("TAGGED", "UNTAGGED", "ANY")
IMAGE_STATUS = (ACTIVE, ARCHIVED, ACTIVATING, "ANY")


def tag_status(payload: dict[str, Any]) -> str:
    value = (payload.get("filter") or {}).get("tagStatus", "ANY")
    if value not in TAG_STATUS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'"
        )
    return value


def image_status(payload: dict[str, Any]) -> str:
    """`filter.imageStatus`: ECR lists ACTIVE images unless asked for others."""
    value = (payload.get("filter") or {}).get("imageStatus", ACTIVE)
    if value not in IMAGE_STATUS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'filter.imageStatus' failed to satisfy constraint: "
            "'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]'"
        )
    return value


def image_ids(payload: dict[str, Any], key: str = "imageIds") -> list[dict[str, str]]:
    ids = payload.get(key)
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise errors.InvalidParameter(f"{key} must list 1 to 100 image identifiers")
    if not all(isinstance(i, dict) for i in ids):
        raise errors.InvalidParameter(f"{key} entries must be objects")
    return ids


def ref(image_id: dict[str, Any]) -> ImageRef:
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    return ImageRef(
        digest if isinstance(digest, str) else None, tag if isinstance(tag, str) else None
    )


def _texts(values: list[Any]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if isinstance(v, str) and v}))


def query(payload: dict[str, Any], limit: int, after: str | None) -> DescribeQuery | None:
    """The images a checked payload asks for (`limit` and `after`: its checked maxResults and
    nextToken); None when its `imageIds` name nothing that could exist (every one of them is
    refused by `pick`). InvalidParameter for what is not ECR's shape."""
    if payload.get("imageIds") is None:
        return DescribeQuery(tag_status(payload), image_status(payload), after or "", limit + 1)
    ids = image_ids(payload)
    tags = _texts([i.get("imageTag") for i in ids])
    digests = _texts([i.get("imageDigest") for i in ids if not i.get("imageTag")])
    return DescribeQuery(tags=tags, digests=digests) if tags or digests else None


def pick(repo: Repository, ids: list[dict[str, Any]], rows: Sequence[Any]) -> list[Any]:
    """The rows `ids` name (each once, in digest order), or ImageNotFound for the first id
    that names no image (a malformed one included), as ECR refuses the whole call."""
    by_digest = {row.digest: row for row in rows}
    tagged = {tag: row.digest for row in rows if row.tags for tag in row.tags.split(TAG_SEPARATOR)}
    refs = [ref(i) for i in ids]
    chosen: set[str] = set()
    for image_id, each, error in zip(ids, refs, check_refs(refs), strict=True):
        digest = None
        if error is None:
            try:
                digest = named_digest(each, tagged)
            except DomainError:
                digest = None
        if digest is None or digest not in by_digest:
            raise ImageNotFound(
                f"The image with imageId {image_id} does not exist within the repository "
                f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
            )
        chosen.add(digest)
    return [row for row in rows if row.digest in chosen]


def details(repo: Repository, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """ECR's ImageDetail of each row (`records.ecrreads.described`'s columns)."""
    registry_id, name = repo.registry_id, repo.name
    answer = []
    for row in rows:
        detail: dict[str, Any] = {
            "registryId": registry_id,
            "repositoryName": name,
            "imageDigest": row.digest,
            "imageSizeInBytes": int(row.image_size),
            "imagePushedAt": row.pushed_at,
            "imageManifestMediaType": row.media_type,
            "imageStatus": row.status,
        }
        if row.archived_at is not None:
            detail["lastArchivedAt"] = row.archived_at
        if row.activated_at is not None:
            detail["lastActivatedAt"] = row.activated_at
        if row.tags:
            detail["imageTags"] = sorted(row.tags.split(TAG_SEPARATOR))
        if row.artifact_type:
            detail["artifactMediaType"] = row.artifact_type
        if row.last_pulled_at:
            detail["lastRecordedPullTime"] = row.last_pulled_at
        if row.subject_digest:
            detail["subjectManifestDigest"] = row.subject_digest
        if row.scan_status is not None:
            detail["imageScanStatus"] = _scan_status(row)
            if row.scan_status == COMPLETE:
                detail["imageScanFindingsSummary"] = _findings_summary(row)
        answer.append(detail)
    return answer


def _scan_status(row: Any) -> dict[str, str]:
    status = {"status": row.scan_status}
    if row.scan_description:
        status["description"] = row.scan_description
    return status


def _findings_summary(row: Any) -> dict[str, Any]:
    counts = json.loads(row.severity_counts) if row.severity_counts else {}
    summary: dict[str, Any] = {"findingSeverityCounts": counts}
    if row.scan_completed_at is not None:
        summary["imageScanCompletedAt"] = row.scan_completed_at
    if row.scan_source_updated_at is not None:
        summary["vulnerabilitySourceUpdatedAt"] = row.scan_source_updated_at
    return summary
