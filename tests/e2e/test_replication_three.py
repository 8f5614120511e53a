"""Three real `cargobay serve` deployments: A (us-east-1) replicates to B (eu-west-1, the same
account) and to C (ap-south-1, another account, which must allow it in its registry policy).
skopeo pushes to A and pulls byte-identical copies from B and C."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import allow, make_user, pull, push
from e2e.replhelp import (
    SOURCE_ACCOUNT,
    boto,
    configure,
    replication_grant,
    source_for,
    wait_statuses,
)
from imagebuilder import build_image
from server import Server

pytestmark = pytest.mark.backend  # statuses, policies and tasks live in the metadata database

EU, AP = "eu-west-1", "ap-south-1"
C_ACCOUNT = "333333333333"


@pytest.fixture
def deployments(tmp_path: Path) -> Iterator[tuple[Server, Server, Server, tuple[str, str]]]:
    """A, B and C started; A presents to C the key of a plain (not administrator) user of
    A's account in C, so that C's policies decide. Also returns C's other account's admin."""
    started: list[Server] = []
    try:
        b = Server(tmp_path / "b", env={"CARGOBAY_REGION": EU}).start(timeout=120)
        started.append(b)
        c = Server(tmp_path / "c", env={"CARGOBAY_REGION": AP}).start(timeout=120)
        started.append(c)
        replicator = make_user(c, "replicator", allow("ecr:*"), tmp=tmp_path)
        c_admin = make_user(c, "ops", account=C_ACCOUNT, is_admin=True)
        a = source_for(tmp_path / "a", {EU: (b, b.credentials), AP: (c, replicator)})
        started.append(a.start(timeout=120))
        yield a, b, c, c_admin
    finally:
        for server in started:
            server.discard()


def _pulled(server: Server, ref: str, dest: Path, creds: str | None = None) -> dict[str, bytes]:
    """Every file of a skopeo `dir:` pull (the manifest as served, and each blob)."""
    pull(server, ref, dest, creds=creds)
    return {p.name: p.read_bytes() for p in dest.iterdir() if p.name != "version"}


def test_one_source_two_destination_deployments(
    deployments: tuple[Server, Server, Server, tuple[str, str]], tmp_path: Path
) -> None:
    a, b, c, c_admin = deployments
    destinations = [
        {"region": EU, "registryId": SOURCE_ACCOUNT},
        {"region": AP, "registryId": C_ACCOUNT},
    ]
    configure(a, tmp_path, [{"destinations": destinations}])
    image = build_image(tmp_path / "img", [300_000, 200_000, 10_000])

    # C's other account has not allowed replication yet: FAILED there, COMPLETE at B.
    push(a, image, "svc/api:1.0")
    failed = wait_statuses(
        a, "svc/api", "1.0", {(EU, SOURCE_ACCOUNT): "COMPLETE", (AP, C_ACCOUNT): "FAILED"}
    )
    assert failed[(AP, C_ACCOUNT)]["failureCode"] == "ACCESS_DENIED"
    ecr_c = boto(c, "ecr", AP, c_admin)
    assert ecr_c.describe_repositories()["repositories"] == []

    # With the registry policy ECR requires, the next push replicates to both.
    ecr_c.put_registry_policy(policyText=replication_grant(C_ACCOUNT, AP))
    push(a, image, "svc/api:1.1")
    wait_statuses(
        a, "svc/api", "1.1", {(EU, SOURCE_ACCOUNT): "COMPLETE", (AP, C_ACCOUNT): "COMPLETE"}
    )
    pushed = _pulled(a, "svc/api:1.1", tmp_path / "from-a")
    assert len(pushed) == 5  # the manifest, the config and three layers
    assert _pulled(b, "svc/api:1.1", tmp_path / "from-b") == pushed
    assert _pulled(c, "svc/api:1.1", tmp_path / "from-c", ":".join(c_admin)) == pushed
    [repo] = ecr_c.describe_repositories()["repositories"]
    assert repo["repositoryArn"] == f"arn:aws:ecr:{AP}:{C_ACCOUNT}:repository/svc/api"
    digests = {
        d["imageDigest"]
        for d in ecr_c.describe_images(repositoryName="svc/api")["imageDetails"]
        if "1.1" in d.get("imageTags", [])
    }
    described_b = boto(b, "ecr", EU).describe_images(repositoryName="svc/api")["imageDetails"]
    assert digests == {d["imageDigest"] for d in described_b}
