"""Event envelopes: EventBridge's envelope and ECR's documented detail fields."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from cargobay.events import model
from cargobay.events.pattern import compile_pattern

ENVELOPE_KEYS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


def _check_envelope(event: dict, detail_type: str) -> None:
    assert set(event) == ENVELOPE_KEYS
    assert event["version"] == "0"
    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == detail_type
    assert str(uuid.UUID(event["id"])) == event["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    json.dumps(event)  # serialisable as is


def test_image_push_matches_ecr_sample_layout() -> None:
    event = model.image_action(
        account="123456789012",
        region="us-west-2",
        repository="my-repository-name",
        digest="sha256:7f5b",
        action="PUSH",
        tag="latest",
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        artifact_media_type="application/vnd.oci.image.config.v1+json",
        at=1573869274,
    )
    _check_envelope(event, "ECR Image Action")
    assert event["time"] == "2019-11-16T01:54:34Z"
    assert event["resources"] == []
    assert event["detail"] == {
        "result": "SUCCESS",
        "repository-name": "my-repository-name",
        "image-digest": "sha256:7f5b",
        "action-type": "PUSH",
        "image-tag": "latest",
        "manifest-media-type": "application/vnd.oci.image.manifest.v1+json",
        "artifact-media-type": "application/vnd.oci.image.config.v1+json",
    }


def test_push_by_digest_has_no_tag_and_ids_differ() -> None:
    first = model.image_action(
        account="1" * 12, region="us-east-1", repository="r", digest="sha256:a", action="DELETE"
    )
    second = model.image_action(
        account="1" * 12, region="us-east-1", repository="r", digest="sha256:a", action="DELETE"
    )
    assert "image-tag" not in first["detail"]
    assert first["detail"]["action-type"] == "DELETE"
    assert first["id"] != second["id"]


def test_image_action_refuses_other_actions() -> None:
    with pytest.raises(ValueError, match="PUSH or DELETE"):
        model.image_action(
            account="1" * 12, region="us-east-1", repository="r", digest="d", action="PULL"
        )


def test_image_scan_counts_only_present_severities() -> None:
    event = model.image_scan(
        account="123456789012",
        region="us-east-1",
        repository="my-repository-name",
        digest="sha256:7f5b",
        tags=[],
        severity_counts={"CRITICAL": 10, "MEDIUM": 9, "LOW": 0},
    )
    _check_envelope(event, "ECR Image Scan")
    assert event["resources"] == [
        "arn:aws:ecr:us-east-1:123456789012:repository/my-repository-name"
    ]
    assert event["detail"] == {
        "scan-status": "COMPLETE",
        "repository-name": "my-repository-name",
        "finding-severity-counts": {"CRITICAL": 10, "MEDIUM": 9},
        "image-digest": "sha256:7f5b",
        "image-tags": [],
    }
    with pytest.raises(ValueError, match="severities"):
        model.image_scan(
            account="1" * 12,
            region="us-east-1",
            repository="r",
            digest="d",
            tags=[],
            severity_counts={"SCARY": 1},
        )


def test_replication_action_fields() -> None:
    event = model.replication_action(
        account="222222222222",
        region="eu-west-1",
        repository="team/app",
        digest="sha256:ab",
        tag="v1",
        source_account="111111111111",
        source_region="us-east-1",
    )
    _check_envelope(event, "ECR Replication Action")
    assert set(event["detail"]) == {
        "result",
        "repository-name",
        "image-digest",
        "source-account",
        "action-type",
        "source-region",
        "image-tag",
    }
    assert event["detail"]["source-account"] == "111111111111"


def test_pull_through_cache_action_failure_fields() -> None:
    event = model.pull_through_cache_action(
        account="123456789012",
        region="us-west-2",
        repository="docker-hub/alpine",
        repository_prefix="docker-hub",
        upstream_registry_url="registry-1.docker.io",
        sync_status="FAILED",
        tag="3.18",
        failure_code="UPSTREAM_UNAVAILABLE",
        failure_reason="connection refused",
    )
    _check_envelope(event, "ECR Pull Through Cache Action")
    assert event["resources"] == ["arn:aws:ecr:us-west-2:123456789012:repository/docker-hub/alpine"]
    assert event["detail"]["rule-version"] == "1"
    assert event["detail"]["ecr-repository-prefix"] == "docker-hub"
    assert event["detail"]["failure-code"] == "UPSTREAM_UNAVAILABLE"
    assert "image-digest" not in event["detail"]


def test_lifecycle_policy_action_fields() -> None:
    event = model.lifecycle_policy_action(
        account="123456789012",
        region="us-east-1",
        repository="r",
        digest="sha256:cd",
        tags=["old"],
        rule_priority=1,
    )
    _check_envelope(event, "ECR Lifecycle Policy Action")
    assert event["detail"]["action-type"] == "EXPIRE"
    assert event["detail"]["image-tags"] == ["old"]


def test_issue_pattern_selects_pushes_among_all_kinds() -> None:
    pattern = compile_pattern(
        '{"source":["aws.ecr"],"detail-type":["ECR Image Action"],'
        '"detail":{"action-type":["PUSH"]}}'
    )
    common = {"account": "1" * 12, "region": "us-east-1", "repository": "r"}
    push = model.image_action(**common, digest="d", action="PUSH")
    others = [
        model.image_action(**common, digest="d", action="DELETE"),
        model.image_scan(**common, digest="d", tags=[], severity_counts={}),
        model.lifecycle_policy_action(**common, digest="d", tags=[], rule_priority=1),
    ]
    assert pattern.matches(push)
    assert not any(pattern.matches(e) for e in others)


def test_event_ids_are_uuid7_of_the_event_time_in_time_order() -> None:
    """Made in time order, an event's id goes in at the end of the outbox's primary key."""
    first = model.image_action(
        account="1", region="r", repository="x", digest="d", action="PUSH", at=1573869274.25
    )
    later = model.image_action(
        account="1", region="r", repository="x", digest="d", action="PUSH", at=1573869275.5
    )
    parsed = uuid.UUID(first["id"])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert int(first["id"].replace("-", "")[:12], 16) == 1573869274250
    assert first["id"] < later["id"]
    assert first["time"] == "2019-11-16T01:54:34Z" and later["time"] == "2019-11-16T01:54:35Z"


def test_image_action_detail_keeps_ecr_field_order_without_absent_fields() -> None:
    by_digest = model.image_action(
        account="1", region="r", repository="x", digest="d", action="PUSH", at=0
    )
    assert list(by_digest["detail"]) == ["result", "repository-name", "image-digest", "action-type"]
    tagged = model.image_action(
        account="1",
        region="r",
        repository="x",
        digest="d",
        action="PUSH",
        tag="t",
        manifest_media_type="m",
        artifact_media_type="a",
        at=0,
    )
    assert list(tagged["detail"]) == [
        "result",
        "repository-name",
        "image-digest",
        "action-type",
        "image-tag",
        "manifest-media-type",
        "artifact-media-type",
    ]
    assert tagged["time"] == "1970-01-01T00:00:00Z"
