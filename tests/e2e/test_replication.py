"""Replication with real deployments and real clients: skopeo pushes to A, the image appears
byte-identical in B (another region's deployment) and in another account of A, statuses move
to COMPLETE, a missing registry-policy grant fails with the reason, templates shape the
replicated repositories, and a destination that is down catches up once it is back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import aws, client, make_user, pull, pulled_blob, pulled_manifest, push, unique
from e2e.replhelp import configure, statuses, wait_statuses
from imagebuilder import build_image
from server import Server

OTHER = "222222222222"


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """A (us-east-1) that knows where eu-west-1 lives, and B (eu-west-1)."""
    b = Server(tmp_path / "b", env={"CARGOBAY_REGION": "eu-west-1"}).start()
    key, secret = b.credentials
    table = {"eu-west-1": {"endpoint": b.url, "access_key_id": key, "secret_access_key": secret}}
    a = Server(
        tmp_path / "a",
        env={
            "CARGOBAY_REGIONS": json.dumps(table),
            "CARGOBAY_TASKS_TICK_SECONDS": "1",
            # A down destination is retried every 2 s (not 2, 4, 8, 16 s ...): B's return is
            # seen at once, whatever its restart took.
            "CARGOBAY_TASK_MAX_BACKOFF_SECONDS": "2",
        },
    ).start()
    try:
        yield a, b
    finally:
        a.discard()
        b.discard()


def test_push_replicates_to_another_region_and_account(
    regions: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = regions
    destinations = [
        {"region": "eu-west-1", "registryId": "000000000000"},
        {"region": "us-east-1", "registryId": OTHER},
    ]
    rules = [{"destinations": destinations, "repositoryFilters": [
        {"filter": "prod/", "filterType": "PREFIX_MATCH"}]}]  # fmt: skip
    assert configure(a, tmp_path, rules)["replicationConfiguration"] == {"rules": rules}
    described = aws(a, "ecr", "describe-registry").json
    assert described["replicationConfiguration"] == {"rules": rules}

    image = build_image(tmp_path / "img", [200_000, 50_000])
    name = unique("prod/app")
    push(a, image, f"{name}:1.0")
    # The other account has not granted ecr:ReplicateImage: FAILED with the reason.
    found = wait_statuses(
        a, name, "1.0", {("eu-west-1", "000000000000"): "COMPLETE", ("us-east-1", OTHER): "FAILED"}
    )
    assert found[("us-east-1", OTHER)]["failureCode"] == "ACCESS_DENIED"

    pull(b, f"{name}:1.0", tmp_path / "from-b")
    digest, manifest = pulled_manifest(tmp_path / "from-b")
    assert (digest, manifest) == (image.manifest_digest, image.manifest)
    for blob_digest, data in image.blobs.items():
        assert pulled_blob(tmp_path / "from-b", blob_digest) == data

    # Grant it in the other account's registry policy, push again: the copy is metadata only.
    other_key = make_user(a, "ops", account=OTHER, is_admin=True)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "replication", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": f"arn:aws:ecr:us-east-1:{OTHER}:repository/*",
        }],
    }  # fmt: skip
    aws(a, "ecr", "put-registry-policy", "--policy-text", json.dumps(policy), creds=other_key)
    # A backfill copies what was pushed before (ECR never retries a failed replica by itself).
    # (boto3: the aws CLI v1 bundles an older botocore without the backfill operations)
    ecr = client(a)
    started = ecr.start_replication_backfill(
        destination={"region": "us-east-1", "registryId": OTHER}
    )
    backfill = started["replicationBackfillId"]
    assert started["status"] in ("PREPARING", "IN_PROGRESS", "COMPLETE")
    deadline = time.monotonic() + 90
    while True:
        results = ecr.describe_replication_backfill_results(replicationBackfillId=backfill)
        if results["status"] == "COMPLETE" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert results["status"] == "COMPLETE", results
    assert results["progress"]["completedReplicationCount"] == 1
    assert results["results"] == [
        {"repositoryName": name, "imageId": {"imageDigest": image.manifest_digest,
                                             "imageTag": "1.0"}, "status": "COMPLETE"}
    ]  # fmt: skip
    listed = ecr.list_replication_backfills()["backfills"]
    assert [b["replicationBackfillId"] for b in listed] == [backfill]
    assert statuses(a, name, "1.0")[("us-east-1", OTHER)]["status"] == "COMPLETE"
    pull(a, f"{name}:1.0", tmp_path / "other", creds=":".join(other_key))
    assert pulled_manifest(tmp_path / "other") == (image.manifest_digest, image.manifest)

    # New pushes replicate to both at once (within this deployment: metadata only).
    push(a, image, f"{name}:1.1")
    wait_statuses(
        a, name, "1.1",
        {("eu-west-1", "000000000000"): "COMPLETE", ("us-east-1", OTHER): "COMPLETE"},
    )  # fmt: skip

    # Repositories outside the filters are not replicated.
    push(a, image, f"{unique('dev/app')}:1.0")
    assert aws(a, "ecr", "describe-image-replication-status", "--repository-name", name,
               "--image-id", "imageTag=1.0").json["replicationStatuses"]  # fmt: skip


def test_templates_shape_replicated_repositories_and_a_down_destination_catches_up(
    regions: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = regions
    # B's REPLICATION template: immutable tags and resource tags on replicated repositories.
    admin_b = b.credentials
    template = aws(
        b, "ecr", "create-repository-creation-template", "--prefix", "rel",
        "--applied-for", "REPLICATION", "--image-tag-mutability", "IMMUTABLE",
        "--resource-tags", "Key=team,Value=platform", creds=admin_b, region="eu-west-1",
    )  # fmt: skip
    assert template.json["repositoryCreationTemplate"]["prefix"] == "rel"
    configure(a, tmp_path, [{"destinations": [{"region": "eu-west-1",
                                                "registryId": "000000000000"}]}])  # fmt: skip
    image = build_image(tmp_path / "img", [100_000])
    name = unique("rel/app")
    b.stop()
    push(a, image, f"{name}:1.0")  # the push never waits for the destination
    time.sleep(3)
    assert statuses(a, name, "1.0")[("eu-west-1", "000000000000")]["status"] == "IN_PROGRESS"
    b.start()
    wait_statuses(a, name, "1.0", {("eu-west-1", "000000000000"): "COMPLETE"})
    pull(b, f"{name}:1.0", tmp_path / "back")
    assert pulled_manifest(tmp_path / "back") == (image.manifest_digest, image.manifest)
    [repo] = aws(
        b, "ecr", "describe-repositories", "--repository-names", name, region="eu-west-1"
    ).json["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    tags = aws(
        b, "ecr", "list-tags-for-resource", "--resource-arn", repo["repositoryArn"],
        region="eu-west-1",
    ).json["tags"]  # fmt: skip
    assert tags == [{"Key": "team", "Value": "platform"}]
    # One hop only: B does not replicate the replica onwards (it has no configuration, and
    # replicas never trigger replication), and the push to A was replicated exactly once.
    assert (
        aws(
            b,
            "ecr",
            "describe-image-replication-status",
            "--repository-name",
            name,
            "--image-id",
            "imageTag=1.0",
            region="eu-west-1",
        ).json["replicationStatuses"]
        == []
    )
