"""`ECR Replication Action` where the replica lands, with two real `cargobay serve`
deployments, skopeo and a webhook receiver (tests/e2e/webhookhelp.py): a replica arriving
from another deployment emits the event there, once per image (not per child of an index,
not per manifest PUT), in the shape a copy within one deployment emits it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import make_user, push, skopeo
from e2e.replhelp import (
    SOURCE_ACCOUNT,
    boto,
    configure,
    replication_grant,
    source_for,
    wait_statuses,
)
from e2e.webhookhelp import Receiver
from imagebuilder import build_image, build_index
from server import Server

pytestmark = pytest.mark.backend  # events go through the metadata database's outbox

SECRET = "a-long-enough-webhook-secret"
OTHER = "222222222222"
EU, US = "eu-west-1", "us-east-1"
REPLICATIONS = json.dumps({"source": ["aws.ecr"], "detail-type": ["ECR Replication Action"]})


def _webhook(receiver: Receiver, path: str) -> dict[str, str]:
    hooks = [{"url": receiver.url(path), "secret": SECRET, "event_pattern": REPLICATIONS}]
    return {"CARGOBAY_WEBHOOKS": json.dumps(hooks), "CARGOBAY_WEBHOOK_POLL_SECONDS": "1"}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Server, Server, Receiver]]:
    """A (us-east-1) replicating to B (eu-west-1) and to another account of A; each
    deployment sends its Replication Actions to the receiver (B to /b, A to /a)."""
    receiver = Receiver({"/a": SECRET, "/b": SECRET})
    b = Server(tmp_path / "b", env={"CARGOBAY_REGION": EU, **_webhook(receiver, "/b")})
    try:
        b.start(timeout=120)
        a = source_for(tmp_path / "a", {EU: (b, b.credentials)})
        a.env.update(_webhook(receiver, "/a"))
        a.start(timeout=120)
        yield a, b, receiver
    finally:
        if "a" in locals():
            a.discard()
        b.discard()
        receiver.close()


def test_a_replica_from_another_deployment_emits_replication_action_there(
    setup: tuple[Server, Server, Receiver], tmp_path: Path
) -> None:
    a, _, receiver = setup
    other = make_user(a, "ops", account=OTHER, is_admin=True)
    boto(a, "ecr", US, other).put_registry_policy(policyText=replication_grant(OTHER, US))
    destinations = [
        {"region": EU, "registryId": SOURCE_ACCOUNT},
        {"region": US, "registryId": OTHER},
    ]
    configure(a, tmp_path, [{"destinations": destinations}])
    done = {(EU, SOURCE_ACCOUNT): "COMPLETE", (US, OTHER): "COMPLETE"}

    image = build_image(tmp_path / "img", [100_000, 20_000])
    push(a, image, "team/app:1.0")
    wait_statuses(a, "team/app", "1.0", done)
    receiver.wait_for(lambda: receiver.events["/b"] and receiver.events["/a"])
    [remote] = receiver.events["/b"]
    [local] = receiver.events["/a"]
    assert remote["detail-type"] == "ECR Replication Action"
    assert (remote["account"], remote["region"]) == (SOURCE_ACCOUNT, EU)
    assert remote["resources"] == [f"arn:aws:ecr:{EU}:{SOURCE_ACCOUNT}:repository/team/app"]
    assert remote["detail"] == {
        "result": "SUCCESS",
        "repository-name": "team/app",
        "image-digest": image.manifest_digest,
        "source-account": SOURCE_ACCOUNT,
        "action-type": "REPLICATE",
        "source-region": US,
        "image-tag": "1.0",
    }
    # The same shape as the event of a copy within one deployment (A's other account).
    assert set(remote) == set(local) and set(remote["detail"]) == set(local["detail"])
    assert (local["account"], local["region"]) == (OTHER, US)
    assert local["detail"] == {**remote["detail"]}
    assert remote["source"] == local["source"] == "aws.ecr"

    # A multi-arch index: skopeo pushes each child, then the index; each push replicates
    # as its own image, and both emitters send one event per replicated push (the replica's
    # other manifest PUTs at B, by digest before the tag, emit nothing).
    index = build_index(tmp_path / "multi", ["amd64", "arm64"], [30_000])
    skopeo(
        "copy", "--all", "--dest-tls-verify=false", "--dest-creds", a.creds_arg,
        f"oci:{index.layout}:latest", f"docker://{a.host}/team/app:multi",
    )  # fmt: skip
    wait_statuses(a, "team/app", "multi", done)
    expected = {
        (image.manifest_digest, "1.0"),
        (index.digest, "multi"),
        *((child.manifest_digest, None) for child in index.images.values()),
    }
    receiver.wait_for(lambda: len(receiver.events["/b"]) >= 4 and len(receiver.events["/a"]) >= 4)
    for path in ("/b", "/a"):
        got = [
            (e["detail"]["image-digest"], e["detail"].get("image-tag"))
            for e in receiver.events[path]
        ]
        assert sorted(got, key=str) == sorted(expected, key=str), path
    assert receiver.bad == 0
