"""EventBridge envelopes for the events ECR sends (`source: aws.ecr`), with ECR's detail field
names. A builder returns a plain dict: it is what a pattern is matched against and, serialised
once, the body a webhook receives (and signs).

Field names follow "Amazon ECR events and EventBridge" (ECR User Guide). ECR documents no
lifecycle event on EventBridge (it records expiries in CloudTrail as `PolicyExecutionEvent`);
`ECR Lifecycle Policy Action` uses the same kebab-case naming for the facts a lifecycle expiry has.
"""

from __future__ import annotations

import time
from typing import Any

from cargobay.audit.cloudtrail import new_event_id

SOURCE = "aws.ecr"

IMAGE_ACTION = "ECR Image Action"
IMAGE_SCAN = "ECR Image Scan"
REPLICATION_ACTION = "ECR Replication Action"
PULL_THROUGH_CACHE_ACTION = "ECR Pull Through Cache Action"
LIFECYCLE_POLICY_ACTION = "ECR Lifecycle Policy Action"

DETAIL_TYPES = (
    IMAGE_ACTION,
    IMAGE_SCAN,
    REPLICATION_ACTION,
    PULL_THROUGH_CACHE_ACTION,
    LIFECYCLE_POLICY_ACTION,
)

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


# The last second `iso_time` wrote, and its text: a push's event mostly shares the previous one's.
_last_second: tuple[float, str] = (-1.0, "")


def iso_time(epoch: float) -> str:
    """EventBridge's `time`: ISO-8601 in UTC, whole seconds, with a Z."""
    global _last_second
    second = epoch // 1
    last = _last_second  # one read: a thread that writes meanwhile swaps the whole pair
    if last[0] != second:
        last = _last_second = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return last[1]


def repository_arn(region: str, account: str, repository: str) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{repository}"


def envelope(
    detail_type: str,
    *,
    account: str,
    region: str,
    detail: dict[str, Any],
    resources: list[str] | None = None,
    at: float | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The EventBridge envelope around a detail, with a fresh id (receivers de-duplicate on it).

    The id is a UUID version 7 of the event's time (as the audit records' event ids): made in
    time order, it goes in at the end of the outbox's primary key, where a random one's entry
    landed on a random page of that index, which each push's commit then wrote out whole."""
    epoch = time.time() if at is None else at
    return {
        "version": "0",
        "id": event_id or new_event_id(epoch),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": account,
        "time": iso_time(epoch),
        "region": region,
        "resources": list(resources or []),
        "detail": detail,
    }


def _repository_event(
    detail_type: str, account: str, region: str, repository: str, detail: dict, at: float | None
) -> dict[str, Any]:
    """An event about one repository: its ARN is the event's one resource."""
    resources = [repository_arn(region, account, repository)]
    return envelope(
        detail_type, account=account, region=region, detail=detail, resources=resources, at=at
    )


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def image_action(
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    action: str,
    tag: str | None = None,
    manifest_media_type: str | None = None,
    artifact_media_type: str | None = None,
    result: str = "SUCCESS",
    at: float | None = None,
) -> dict[str, Any]:
    """`ECR Image Action`: one completed push (PUSH) or deletion (DELETE) of an image.
    As in ECR, `resources` is empty; a push by digest has no `image-tag`."""
    if action not in ("PUSH", "DELETE"):
        raise ValueError(f"action-type must be PUSH or DELETE, not {action!r}")
    # Built in ECR's field order, the absent ones left out (every push writes one).
    detail = {
        "result": result,
        "repository-name": repository,
        "image-digest": digest,
        "action-type": action,
    }
    if tag is not None:
        detail["image-tag"] = tag
    if manifest_media_type is not None:
        detail["manifest-media-type"] = manifest_media_type
    if artifact_media_type is not None:
        detail["artifact-media-type"] = artifact_media_type
    return envelope(IMAGE_ACTION, account=account, region=region, detail=detail, at=at)


def image_scan(
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tags: list[str],
    severity_counts: dict[str, int],
    status: str = "COMPLETE",
    at: float | None = None,
) -> dict[str, Any]:
    """`ECR Image Scan` (basic scanning): only severities with findings are counted."""
    unknown = set(severity_counts) - set(SEVERITIES)
    if unknown:
        raise ValueError(f"unknown severities: {sorted(unknown)}")
    detail = {
        "scan-status": status,
        "repository-name": repository,
        "finding-severity-counts": {k: v for k, v in severity_counts.items() if v},
        "image-digest": digest,
        "image-tags": list(tags),
    }
    return _repository_event(IMAGE_SCAN, account, region, repository, detail, at)


def replication_action(
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    source_account: str,
    source_region: str,
    tag: str | None = None,
    action: str = "REPLICATE",
    result: str = "SUCCESS",
    at: float | None = None,
) -> dict[str, Any]:
    """`ECR Replication Action`, sent in the destination account and region."""
    detail = _without_none(
        {
            "result": result,
            "repository-name": repository,
            "image-digest": digest,
            "source-account": source_account,
            "action-type": action,
            "source-region": source_region,
            "image-tag": tag,
        }
    )
    return _repository_event(REPLICATION_ACTION, account, region, repository, detail, at)


def pull_through_cache_action(
    *,
    account: str,
    region: str,
    repository: str,
    repository_prefix: str,
    upstream_registry_url: str,
    sync_status: str,
    rule_version: str = "1",
    tag: str | None = None,
    digest: str | None = None,
    failure_code: str | None = None,
    failure_reason: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """`ECR Pull Through Cache Action`: one attempt to fill the cache from upstream
    (`sync-status` SUCCESS or FAILED, with `failure-code`/`failure-reason` on failure)."""
    detail = _without_none(
        {
            "rule-version": rule_version,
            "sync-status": sync_status,
            "ecr-repository-prefix": repository_prefix,
            "repository-name": repository,
            "upstream-registry-url": upstream_registry_url,
            "image-tag": tag,
            "image-digest": digest,
            "failure-code": failure_code,
            "failure-reason": failure_reason,
        }
    )
    return _repository_event(PULL_THROUGH_CACHE_ACTION, account, region, repository, detail, at)


def lifecycle_policy_action(
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tags: list[str],
    rule_priority: int,
    action: str = "EXPIRE",
    result: str = "SUCCESS",
    at: float | None = None,
) -> dict[str, Any]:
    """`ECR Lifecycle Policy Action`: one image a lifecycle rule expired."""
    detail = {
        "result": result,
        "repository-name": repository,
        "image-digest": digest,
        "action-type": action,
        "image-tags": list(tags),
        "rule-priority": rule_priority,
    }
    return _repository_event(LIFECYCLE_POLICY_ACTION, account, region, repository, detail, at)
