"""Issue 16's user journeys against a real `cargobay serve`: skopeo pushes reach a webhook
receiver as ECR's `ECR Image Action` events with valid signatures, event patterns filter them,
a receiver that is down for a while still gets every event once, as does one whose server was
SIGKILLed after the push committed; and the audit trail, read with the real `aws cloudtrail
lookup-events` and with `cargobay audit`, shows who created, pushed and was denied, and holds
no secret."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError
from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from e2e.ecrhelp import ACCOUNT, OCI_MANIFEST, REGION, admin, aws, aws_client, cli_error, push
from e2e.webhookhelp import Receiver
from imagebuilder import Image, build_image
from server import Server

pytestmark = pytest.mark.backend

PUSH_SECRET = "push-webhook-secret-" + uuid.uuid4().hex
OTHER_SECRET = "other-webhook-secret-" + uuid.uuid4().hex
PUSHES = {
    "source": ["aws.ecr"],
    "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"]},
}
OTHERS = {"detail": {"repository-name": [{"prefix": "other/"}]}}
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class Deployment:
    def __init__(self, server: Server, receiver: Receiver, image: Image) -> None:
        self.server, self.receiver, self.image = server, receiver, image

    def pushed(self, repository: str, path: str = "/pushes") -> list[dict]:
        with self.receiver.lock:
            events = list(self.receiver.events[path])
        return [e for e in events if e["detail"].get("repository-name") == repository]

    def digest(self, repository: str, tag: str) -> str:
        reply = self.server.session().head(
            f"{self.server.url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": OCI_MANIFEST},
            timeout=10,
        )
        assert reply.status_code == 200
        return reply.headers["Docker-Content-Digest"]

    def webhook_id(self, path: str) -> int:
        for hook in admin(self.server, "webhooks", "list")["Webhooks"]:
            if hook["url"] == self.receiver.url(path):
                return hook["id"]
        raise AssertionError(f"no webhook for {path}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("events-audit")
    receiver = Receiver({"/pushes": PUSH_SECRET, "/others": OTHER_SECRET})
    webhooks = [
        {
            "url": receiver.url("/pushes"),
            "secret": PUSH_SECRET,
            "event_pattern": json.dumps(PUSHES),
        },
        {
            "url": receiver.url("/others"),
            "secret": OTHER_SECRET,
            "event_pattern": json.dumps(OTHERS),
        },
    ]
    server = Server(
        tmp / "data",
        env={
            "CARGOBAY_WEBHOOKS": json.dumps(webhooks),
            "CARGOBAY_WEBHOOK_POLL_SECONDS": "1",
            "CARGOBAY_WEBHOOK_BACKOFF_SECONDS": "1",
            "CARGOBAY_WEBHOOK_RETRY_SECONDS": "600",
        },
    )
    try:
        server.start()
        yield Deployment(server, receiver, build_image(tmp / "image"))
    finally:
        server.discard()
        receiver.close()


def test_a_skopeo_push_is_one_signed_image_action_event(deployment: Deployment) -> None:
    server, receiver = deployment.server, deployment.receiver
    push(server, deployment.image, "evt/app:v1")
    receiver.wait_for(lambda: bool(deployment.pushed("evt/app")))
    (event,) = deployment.pushed("evt/app")  # signature checked by the receiver
    assert receiver.bad == 0
    uuid.UUID(event.pop("id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event.pop("time"))
    assert event == {
        "version": "0",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": "evt/app",
            "image-digest": deployment.digest("evt/app", "v1"),
            "action-type": "PUSH",
            "image-tag": "v1",
            "manifest-media-type": OCI_MANIFEST,
            "artifact-media-type": OCI_CONFIG,
        },
    }
    # The second webhook's pattern wants `other/...` repositories only.
    assert deployment.pushed("evt/app", "/others") == []
    push(server, deployment.image, "other/app:v1")
    receiver.wait_for(lambda: bool(deployment.pushed("other/app", "/others")))
    assert [e["detail"]["image-tag"] for e in deployment.pushed("other/app", "/others")] == ["v1"]
    assert len(deployment.pushed("other/app")) == 1
    assert receiver.bad == 0


def test_a_receiver_down_for_a_while_gets_every_event_once(deployment: Deployment) -> None:
    server, receiver = deployment.server, deployment.receiver
    refused = receiver.refused
    receiver.down = True
    try:
        for tag in ("v1", "v2", "v3"):
            push(server, deployment.image, f"evt/down:{tag}")
        deadline = time.monotonic() + 60
        # Every event tried at least once, and some retried (backoff 1 s, then 2 s, ...).
        while receiver.refused < refused + 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.refused >= refused + 5
        assert deployment.pushed("evt/down") == []
    finally:
        receiver.down = False
    receiver.wait_for(lambda: len(deployment.pushed("evt/down")) >= 3)
    events = deployment.pushed("evt/down")
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 3
    assert sorted(e["detail"]["image-tag"] for e in events) == ["v1", "v2", "v3"]
    history = admin(server, "webhooks", "deliveries", str(deployment.webhook_id("/pushes")))
    mine = [d for d in history["Deliveries"] if d["event_id"] in ids]
    assert [d["status"] for d in mine] == ["delivered"] * 3
    assert max(d["attempts"] for d in mine) >= 2


def _audit_rows(server: Server) -> str:
    """Everything the audit store holds, as one text to search."""

    async def read() -> str:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                rows = [
                    *(await conn.execute(select(schema.audit_records))).all(),
                    *(await conn.execute(select(schema.audit_resources))).all(),
                ]
        finally:
            await db.dispose()
        return "\n".join(repr(tuple(row)) for row in rows)

    return asyncio.run(read())


def _cargobay_audit(server: Server, *args: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "cargobay", "audit", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        env=server.process_env,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _lookup(server: Server, name: str, creds=None) -> list[dict]:
    found = aws(
        server,
        "cloudtrail",
        "lookup-events",
        "--lookup-attributes",
        f"AttributeKey=EventName,AttributeValue={name}",
        creds=creds,
    ).json
    return found["Events"]


def test_the_audit_trail_shows_who_did_what_and_no_secret(
    deployment: Deployment, tmp_path: Path
) -> None:
    server = deployment.server
    marker = "PolicyMarker" + uuid.uuid4().hex
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": marker,
                "Effect": "Allow",
                "Action": [
                    "ecr:CreateRepository",
                    "ecr:PutImage",
                    "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": "*",
            }
        ],
    }
    aws(server, "iam", "create-user", "--user-name", "alice")
    aws(server, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "push",
        "--policy-document", json.dumps(policy))  # fmt: skip
    key = aws(server, "iam", "create-access-key", "--user-name", "alice").json["AccessKey"]
    alice = (key["AccessKeyId"], key["SecretAccessKey"])

    aws(server, "ecr", "create-repository", "--repository-name", "evt/alice", creds=alice)
    push(server, deployment.image, "evt/alice:v1", creds=":".join(alice))
    manifest = deployment.image.manifest.decode()
    aws(server, "ecr", "put-image", "--repository-name", "evt/alice", "--image-tag", "v2",
        "--image-manifest", manifest, "--image-manifest-media-type", OCI_MANIFEST,
        creds=alice)  # fmt: skip
    denied = aws(server, "ecr", "delete-repository", "--repository-name", "evt/alice",
                 "--force", creds=alice, check=False)  # fmt: skip
    assert cli_error(denied) == "AccessDeniedException"
    # Reading the trail takes an administrator or cloudtrail:LookupEvents.
    proc = aws(server, "cloudtrail", "lookup-events", creds=alice, check=False)
    assert cli_error(proc) == "AccessDeniedException"

    # Records are buffered for audit_flush_ms per worker: wait for the last one.
    deadline = time.monotonic() + 30
    while not _lookup(server, "DeleteRepository") and time.monotonic() < deadline:
        time.sleep(0.3)
    (put,) = _lookup(server, "PutImage")
    assert put["Username"] == "alice" and put["AccessKeyId"] == alice[0]
    assert put["Resources"] == [
        {"ResourceType": "AWS::ECR::Repository", "ResourceName": "evt/alice"}
    ]
    record = json.loads(put["CloudTrailEvent"])
    assert record["eventSource"] == "ecr.amazonaws.com" and record["eventName"] == "PutImage"
    assert record["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert record["requestParameters"]["imageManifest"].startswith("sha256:")
    assert "errorCode" not in record and record["sourceIPAddress"] == "127.0.0.1"
    (deny,) = _lookup(server, "DeleteRepository")
    record = json.loads(deny["CloudTrailEvent"])
    assert (deny["Username"], record["errorCode"]) == ("alice", "AccessDenied")
    assert "ecr:DeleteRepository" in record["errorMessage"]
    created = {e["Username"]: e for e in _lookup(server, "CreateRepository")}
    assert "alice" in created  # and the administrator's IAM calls, by the administrator:
    (create_user,) = _lookup(server, "CreateUser")
    assert create_user["Username"] == "admin"
    assert create_user["AccessKeyId"] == server.credentials[0]

    # The same from the command line, as JSON lines for a SIEM.
    lines = _cargobay_audit(server, "--since", "1h", "--principal", "alice", "--json")
    assert {line["userIdentity"]["userName"] for line in lines} == {"alice"}
    outcomes = {(line["eventName"], line.get("errorCode")) for line in lines}
    assert {
        ("CreateRepository", None),
        ("PutImage", None),
        ("PutManifest", None),
        ("CompleteBlobUpload", None),
        ("DeleteRepository", "AccessDenied"),
        ("LookupEvents", "AccessDenied"),
    } <= outcomes

    # Allowed cloudtrail:LookupEvents, alice reads her account's trail (and nothing else).
    reader = {**policy, "Statement": [
        {"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}
    ]}  # fmt: skip
    aws(server, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "read",
        "--policy-document", json.dumps(reader))  # fmt: skip
    assert [e["Username"] for e in _lookup(server, "PutImage", creds=alice)] == ["alice"]

    # No secret anywhere in the audit store: keys, webhook secrets, policy bodies.
    stored = _audit_rows(server)
    assert "CreateAccessKey" in stored and "PutUserPolicy" in stored
    for secret in (alice[1], server.credentials[1], PUSH_SECRET, OTHER_SECRET, marker):
        assert secret not in stored


def _records(server: Server, name: str, count: int) -> list[dict]:
    """The CloudTrail records of `name`, once at least `count` are written (buffered)."""
    deadline = time.monotonic() + 30
    found = _lookup(server, name)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.3)
        found = _lookup(server, name)
    return [json.loads(event["CloudTrailEvent"]) for event in found]


def test_secrets_manager_calls_are_audited_without_their_values(deployment: Deployment) -> None:
    server = deployment.server
    value = "SecretValueMarker" + uuid.uuid4().hex
    binary = ("BinaryMarker" + uuid.uuid4().hex).encode()
    admin_sm = aws_client(server, "secretsmanager")
    arn = admin_sm.create_secret(Name="evt/db", SecretString=value)["ARN"]
    admin_sm.put_secret_value(SecretId=arn, SecretBinary=binary)
    assert admin_sm.get_secret_value(SecretId=arn)["SecretBinary"] == binary
    aws(server, "iam", "create-user", "--user-name", "mallory")
    key = aws(server, "iam", "create-access-key", "--user-name", "mallory").json["AccessKey"]
    mallory = aws_client(server, "secretsmanager", (key["AccessKeyId"], key["SecretAccessKey"]))
    with pytest.raises(ClientError) as denied:
        mallory.get_secret_value(SecretId=arn)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    # A request that breaks the input shape is refused before authorization, and audited.
    with pytest.raises(ClientError) as invalid:
        admin_sm.describe_secret(SecretId="x" * 2049)
    assert invalid.value.response["Error"]["Code"] == "ValidationException"

    reads = _records(server, "GetSecretValue", 2)
    assert {r["eventSource"] for r in reads} == {"secretsmanager.amazonaws.com"}
    outcomes = {(r["userIdentity"].get("userName"), r.get("errorCode")) for r in reads}
    assert outcomes == {("admin", None), ("mallory", "AccessDenied")}
    assert all(r["requestParameters"]["SecretId"] == arn for r in reads)
    (created,) = _records(server, "CreateSecret", 1)
    assert created["requestParameters"]["SecretString"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert created["responseElements"]["ARN"] == arn
    (put,) = _records(server, "PutSecretValue", 1)
    assert put["requestParameters"]["SecretBinary"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    described = _records(server, "DescribeSecret", 1)
    assert [r["errorCode"] for r in described] == ["ValidationException"]

    # Neither value anywhere in the audit store nor in the server's log.
    encoded = base64.b64encode(binary).decode()
    stored = _audit_rows(server)
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "SecretString" in stored and "secretsmanager.amazonaws.com" in stored
    for secret in (value, binary.decode(), encoded):
        assert secret not in stored and secret not in log


def test_a_push_committed_before_a_sigkill_is_delivered_after_restart(
    deployment: Deployment,
) -> None:
    server, receiver = deployment.server, deployment.receiver
    receiver.down = True
    try:
        refused = receiver.refused
        push(server, deployment.image, "evt/crash:v1")
        deadline = time.monotonic() + 30
        while receiver.refused <= refused and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.refused > refused  # committed: its delivery is being tried
        server.kill()
    finally:
        receiver.down = False
    assert deployment.pushed("evt/crash") == []
    server.start()
    receiver.wait_for(lambda: bool(deployment.pushed("evt/crash")))
    (event,) = deployment.pushed("evt/crash")
    assert event["detail"]["image-tag"] == "v1"
    reply = requests.get(f"{server.url}/healthz", timeout=5)
    assert reply.ok
