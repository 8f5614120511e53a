"""An audit record's JSON, written piece by piece (`record_json`), is the text of encoding its
CloudTrail dict (`cloudtrail_record`), whatever the event holds."""

from __future__ import annotations

import json

import pytest

from cargobay.audit.record import AuditEvent, Resource, cloudtrail_record, record_json
from cargobay.iam.principal import Principal

ADMIN = Principal("123456789012", "root", "AKIAROOT000000000001", is_admin=True)
USER = Principal("123456789012", 'ci:bü"ilder', "AKIAUSER000000000001", is_admin=False)
REPO = Resource("AWS::ECR::Repository", "team/app", "arn:aws:ecr:eu-west-1:123456789012:repo")

EVENTS = [
    AuditEvent("123456789012", "ecr.amazonaws.com", "BatchGetImage", True, "eu-west-1"),
    AuditEvent(
        "123456789012",
        "ecr.amazonaws.com",
        "PutImage",
        False,
        "eu-west-1",
        principal=USER,
        source_ip="10.0.0.1",
        user_agent="aws-cli/2 \u2028 é",
        request_parameters={"repositoryName": "team/app", "imageManifest": "{}", "n": 1.5},
        response_elements={"image": {"imageId": {"imageTag": "v1"}}, "list": [1, None, True]},
        request_id="req-1",
        resources=[REPO, Resource("AWS::ECR::Repository", "other", None)],
        event_time=1_767_225_600.9,
        event_id="ev-1",
    ),
    AuditEvent(
        "210987654321",
        "iam.amazonaws.com",
        "CreateAccessKey",
        False,
        "us-east-1",
        principal=ADMIN,
        request_parameters={"UserName": "x", "SecretAccessKey": "hidden"},
        error_code="AccessDenied",
        error_message='no "way"',
        resources=[Resource("", "", "")],
        event_time=1.0,
        event_id="ev-2",
    ),
    AuditEvent(
        "123456789012",
        "kms.amazonaws.com",
        "Encrypt",
        False,
        "eu-west-1",
        principal=USER,
        request_parameters={"Plaintext": b"\x00\xff", "KeyId": "k"},
        error_code="ValidationException",
        event_time=2.5,
        event_id="ev-3",
    ),
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_record_json_is_the_encoded_cloudtrail_record(event: AuditEvent) -> None:
    if event.event_time is None:
        event.event_time = 1_767_225_600.0
    expected = json.dumps(cloudtrail_record(event), separators=(",", ":"))
    assert record_json(event) == expected
    assert record_json(event) == expected  # the caller's identity, remembered, is the same
