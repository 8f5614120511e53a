"""Repository creation templates carry their encryptionConfiguration into the repositories
they create, with boto3, the KMS API and skopeo against real `cargobay serve` deployments:

- REPLICATION templates, both for a destination in another deployment (the replica arrives
  over `/v2/`) and for another account of the same deployment (a metadata copy, its blobs
  re-encrypted under the destination's key); a template whose key cannot be used fails the
  replication with the reason;
- PULL_THROUGH_CACHE templates, with Debian's docker-registry as the upstream.

The replicas are proved encrypted under the template's key: the repository names the key,
nothing of the image is in plaintext in the destination's data directory, and disabling the
key refuses the pull."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import make_user, pull, push
from e2e.kmshelp import MARKER, grep_data_dir, marker_image
from e2e.replhelp import (
    SOURCE_ACCOUNT,
    boto,
    configure,
    replication_grant,
    source_for,
    wait_statuses,
)
from server import Server
from upstream.distribution import Distribution

pytestmark = pytest.mark.backend  # templates, keys and statuses live in the metadata database

OTHER = "222222222222"
EU, US = "eu-west-1", "us-east-1"


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """A (us-east-1), replicating to B (eu-west-1, another deployment)."""
    b = Server(tmp_path / "b", env={"CARGOBAY_REGION": EU}).start(timeout=120)
    a = source_for(tmp_path / "a", {EU: (b, b.credentials)})
    try:
        a.start(timeout=120)
        yield a, b
    finally:
        a.discard()
        b.discard()


def _kms_template(ecr, prefix: str, applied_for: str, kms_key: str) -> dict:
    return ecr.create_repository_creation_template(
        prefix=prefix,
        appliedFor=[applied_for],
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms_key},
    )["repositoryCreationTemplate"]


def _pulled(server: Server, ref: str, dest: Path, creds: str | None = None) -> dict[str, bytes]:
    """Every file of a skopeo `dir:` pull (the manifest as served, and each blob)."""
    pull(server, ref, dest, creds=creds)
    return {p.name: p.read_bytes() for p in dest.iterdir() if p.name != "version"}


def test_replication_templates_encrypt_replicas_with_their_key(
    regions: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = regions
    # B (another deployment): a REPLICATION template naming its key (by ARN, as the model's
    # pattern for templates requires).
    kms_b, ecr_b = boto(b, "kms", EU), boto(b, "ecr", EU)
    key_b = kms_b.create_key(Description="replicas")["KeyMetadata"]
    made = _kms_template(ecr_b, "secure", "REPLICATION", key_b["Arn"])
    assert made["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key_b["Arn"]}

    # Another account of A: a REPLICATION template under its own key, and the registry policy
    # a cross-account destination needs.
    other = make_user(a, "ops", account=OTHER, is_admin=True)
    kms_o, ecr_o = boto(a, "kms", US, other), boto(a, "ecr", US, other)
    key_o = kms_o.create_key(Description="replicas")["KeyMetadata"]
    _kms_template(ecr_o, "secure", "REPLICATION", key_o["Arn"])
    ecr_o.put_registry_policy(policyText=replication_grant(OTHER, US))

    destinations = [
        {"region": EU, "registryId": SOURCE_ACCOUNT},
        {"region": US, "registryId": OTHER},
    ]
    configure(a, tmp_path, [{"destinations": destinations}])
    image = marker_image(tmp_path / "img")
    push(a, image, "secure/app:1.0")
    done = {(EU, SOURCE_ACCOUNT): "COMPLETE", (US, OTHER): "COMPLETE"}
    wait_statuses(a, "secure/app", "1.0", done)

    # Each replica's repository is under its template's key (stored as the key's ARN).
    [in_b] = ecr_b.describe_repositories(repositoryNames=["secure/app"])["repositories"]
    assert in_b["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key_b["Arn"]}
    [in_o] = ecr_o.describe_repositories(repositoryNames=["secure/app"])["repositories"]
    assert in_o["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key_o["Arn"]}
    # ... and the source's stays as it was created (on push, no template: AES256).
    [in_a] = boto(a, "ecr", US).describe_repositories(repositoryNames=["secure/app"])[
        "repositories"
    ]
    assert in_a["encryptionConfiguration"] == {"encryptionType": "AES256"}

    pushed = _pulled(a, "secure/app:1.0", tmp_path / "source")
    assert len(pushed) == 3  # manifest, config, layer
    assert _pulled(b, "secure/app:1.0", tmp_path / "from-b") == pushed
    assert _pulled(a, "secure/app:1.0", tmp_path / "from-o", ":".join(other)) == pushed
    assert grep_data_dir(b, MARKER) == ""  # nothing of the image in plaintext at B

    # Disabling a template's key refuses that replica's pull, and only that one.
    kms_b.disable_key(KeyId=key_b["KeyId"])
    kms_o.disable_key(KeyId=key_o["KeyId"])
    refused = pull(b, "secure/app:1.0", tmp_path / "refused-b", check=False)
    assert refused.returncode != 0 and "Disabled" in refused.stderr, refused.stderr
    refused = pull(a, "secure/app:1.0", tmp_path / "refused-o", ":".join(other), check=False)
    assert refused.returncode != 0 and "Disabled" in refused.stderr, refused.stderr
    assert _pulled(a, "secure/app:1.0", tmp_path / "source-again") == pushed
    kms_b.enable_key(KeyId=key_b["KeyId"])
    assert _pulled(b, "secure/app:1.0", tmp_path / "again-b") == pushed

    # A template whose key cannot be used: FAILED with the reason, no repository made.
    _kms_template(ecr_o, "broken", "REPLICATION", key_o["Arn"])
    push(a, image, "broken/app:1.0")
    failed = wait_statuses(
        a, "broken/app", "1.0", {(EU, SOURCE_ACCOUNT): "COMPLETE", (US, OTHER): "FAILED"}
    )
    assert failed[(US, OTHER)]["failureCode"] == "KMS_KEY_ERROR"
    assert ecr_o.describe_repositories()["repositories"] == [in_o]


def test_a_pull_through_cache_template_encrypts_the_cache(tmp_path: Path) -> None:
    image = marker_image(tmp_path / "img")
    upstream = Distribution(tmp_path / "upstream", "anonymous").start()
    server = Server(tmp_path / "data")
    try:
        upstream.push(f"oci:{image.layout}:latest", "lib/app:v1")
        server.start(timeout=120)
        ecr, kms = boto(server, "ecr", US), boto(server, "kms", US)
        key = kms.create_key(Description="cache")["KeyMetadata"]
        _kms_template(ecr, "hub", "PULL_THROUGH_CACHE", key["Arn"])
        ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="hub", upstreamRegistryUrl=upstream.url
        )
        # The first pull fills the cache (each blob teed to the client and the store); the
        # second is served from it.
        first = _pulled(server, "hub/lib/app:v1", tmp_path / "first")
        assert first == _pulled(upstream, "lib/app:v1", tmp_path / "from-upstream")
        assert _pulled(server, "hub/lib/app:v1", tmp_path / "second") == first
        [repo] = ecr.describe_repositories(repositoryNames=["hub/lib/app"])["repositories"]
        assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key["Arn"]}
        assert grep_data_dir(server, MARKER) == ""

        upstream.stop()  # from here on only the cache can answer
        kms.disable_key(KeyId=key["KeyId"])
        refused = pull(server, "hub/lib/app:v1", tmp_path / "refused", check=False)
        assert refused.returncode != 0 and "Disabled" in refused.stderr, refused.stderr
        kms.enable_key(KeyId=key["KeyId"])
        assert _pulled(server, "hub/lib/app:v1", tmp_path / "cached") == first
    finally:
        server.discard()
        upstream.discard()
