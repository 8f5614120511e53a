"""Redaction: secrets never reach the audit store, policy bodies are kept only as hashes."""

from __future__ import annotations

import hashlib
import json

from cargobay.audit.record import AuditEvent, Resource, cloudtrail_record
from cargobay.audit.redact import HIDDEN, redact
from cargobay.iam.principal import Principal

POLICY = '{"Version":"2012-10-17","Statement":[]}'


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_secrets_are_hidden_and_policies_hashed_at_any_depth() -> None:
    params = {
        "repositoryName": "team/app",
        "policyText": POLICY,
        "nested": [{"SecretString": "hunter2"}, {"Password": "pw", "keep": 1}],
        "AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "s3cr3t"},
    }
    out = redact("ecr", params)
    assert out["repositoryName"] == "team/app"
    assert out["policyText"] == _sha(POLICY)
    assert out["nested"] == [{"SecretString": HIDDEN}, {"Password": HIDDEN, "keep": 1}]
    assert out["AccessKey"] == {"AccessKeyId": "AKIA1", "SecretAccessKey": HIDDEN}
    assert params["policyText"] == POLICY  # the caller's dict is untouched


def test_service_specific_keys() -> None:
    assert redact("kms", {"Plaintext": "x", "Policy": POLICY}) == {
        "Plaintext": HIDDEN,
        "Policy": _sha(POLICY),
    }
    assert redact("secretsmanager", {"SecretBinary": "eA==", "ResourcePolicy": POLICY}) == {
        "SecretBinary": HIDDEN,
        "ResourcePolicy": _sha(POLICY),
    }
    assert redact("iam", {"PolicyDocument": POLICY, "UserName": "alice"}) == {
        "PolicyDocument": _sha(POLICY),
        "UserName": "alice",
    }
    # A policy given as an object hashes its canonical JSON.
    assert redact("ecr", {"lifecyclePolicyText": {"rules": []}})["lifecyclePolicyText"] == _sha(
        '{"rules": []}'
    )
    # ECR's authorization token, in a response.
    token = {"authorizationData": [{"authorizationToken": "QVdTOnh4", "proxyEndpoint": "x"}]}
    assert redact("ecr", token)["authorizationData"][0]["authorizationToken"] == HIDDEN


def test_record_shape_has_no_secret() -> None:
    event = AuditEvent(
        account_id="123456789012",
        event_source="iam.amazonaws.com",
        event_name="CreateAccessKey",
        read_only=False,
        region="us-east-1",
        principal=Principal("123456789012", "alice", "AKIAALICE"),
        source_ip="10.1.2.3",
        user_agent="aws-cli/2",
        request_parameters={"UserName": "bob"},
        response_elements={"AccessKey": {"AccessKeyId": "AKIABOB", "SecretAccessKey": "topsecret"}},
        request_id="req-1",
        resources=[Resource("AWS::IAM::User", "bob", "arn:aws:iam::123456789012:user/bob")],
        event_time=1700000000.5,
        event_id="e-1",
    )
    record = cloudtrail_record(event)
    assert "topsecret" not in json.dumps(record)
    assert record["userIdentity"] == {
        "type": "IAMUser",
        "arn": "arn:aws:iam::123456789012:user/alice",
        "accountId": "123456789012",
        "accessKeyId": "AKIAALICE",
        "userName": "alice",
    }
    assert record["eventTime"] == "2023-11-14T22:13:20Z"
    assert record["readOnly"] is False
    assert "errorCode" not in record
    assert record["resources"] == [
        {
            "ARN": "arn:aws:iam::123456789012:user/bob",
            "accountId": "123456789012",
            "type": "AWS::IAM::User",
        }
    ]


def test_denied_call_records_error_and_root_identity() -> None:
    record = cloudtrail_record(
        AuditEvent(
            account_id="123456789012",
            event_source="ecr.amazonaws.com",
            event_name="DeleteRepository",
            read_only=False,
            region="us-east-1",
            principal=Principal("123456789012", "root", "AKIAROOT", is_admin=True),
            error_code="AccessDenied",
            error_message="not allowed",
        )
    )
    assert record["errorCode"] == "AccessDenied"
    assert record["errorMessage"] == "not allowed"
    assert record["userIdentity"]["type"] == "Root"
    assert record["userIdentity"]["arn"] == "arn:aws:iam::123456789012:root"
