"""ListImageReferrers against a real `cargobay serve`: artifacts attached with oras (the OCI 1.1
`subject`) are listed through boto3 and the aws CLI as the `/v2/<name>/referrers/<digest>` API
lists them, filtered by artifact type and status, and paginated with maxResults/nextToken."""

from __future__ import annotations

import os
from pathlib import Path

import oras.oci
import pytest

from e2e.ecrhelp import aws, check_shape, cli_error, client, raises, unique
from e2e.test_oras import ArtifactClient, push_image, referrers
from imagebuilder import OCI_MANIFEST, Image

SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.example.signature.v1+json"
ATTESTATION = "application/vnd.example.attestation.v1+json"


@pytest.fixture
def oras_client(registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactClient:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.docker/config.json of ours
    artifacts = ArtifactClient(hostname=registry.host, insecure=True, auth_backend="basic")
    artifacts.auth.set_basic_auth(*registry.credentials)
    return artifacts


def _attach(registry, artifacts: ArtifactClient, name: str, image: Image, tmp_path: Path):
    """Two SBOMs, a signature and an attestation referring to `image`: {digest: type}."""
    subject = oras.oci.Subject(OCI_MANIFEST, image.manifest_digest, len(image.manifest))
    pushed = {}
    for i, artifact_type in enumerate([SBOM, SBOM, SIGNATURE, ATTESTATION]):
        path = tmp_path / f"artifact-{i}"
        path.write_bytes(os.urandom(100 + i))
        artifacts.artifact_type = artifact_type
        response = artifacts.push(
            f"{registry.host}/{name}:artifact-{i}",
            files=[str(path)],
            subject=subject,
            manifest_annotations={"org.example.index": str(i)},
            disable_path_validation=True,
            quiet=True,
        )
        assert response.status_code == 201
        pushed[response.headers["Docker-Content-Digest"]] = artifact_type
    return pushed


def test_list_image_referrers(registry, oras_client, image: Image, tmp_path: Path) -> None:
    ecr = client(registry)
    name = unique("referrers/app")
    push_image(registry, image, name, "1.0")
    pushed = _attach(registry, oras_client, name, image, tmp_path)
    subject = {"imageDigest": image.manifest_digest}

    # Everything, as the /v2/ referrers API lists it.
    listed = ecr.list_image_referrers(repositoryName=name, subjectId=subject)
    check_shape("ListImageReferrers", ecr.raw.bodies["ListImageReferrers"])
    assert "nextToken" not in listed
    index = referrers(registry, name, image.manifest_digest).json()["manifests"]
    assert [r["digest"] for r in listed["referrers"]] == [d["digest"] for d in index]
    assert {r["digest"]: r["artifactType"] for r in listed["referrers"]} == pushed
    for entry, descriptor in zip(listed["referrers"], index, strict=True):
        assert entry["mediaType"] == descriptor["mediaType"] == OCI_MANIFEST
        assert entry["size"] == descriptor["size"]
        assert entry["annotations"] == descriptor["annotations"]
        assert entry["artifactStatus"] == "ACTIVE"

    # Filtered by artifact type (any of the listed ones).
    sboms = ecr.list_image_referrers(
        repositoryName=name, subjectId=subject, filter={"artifactTypes": [SBOM]}
    )["referrers"]
    assert {r["digest"] for r in sboms} == {d for d, t in pushed.items() if t == SBOM}
    two_types = ecr.list_image_referrers(
        repositoryName=name, subjectId=subject, filter={"artifactTypes": [SIGNATURE, ATTESTATION]}
    )["referrers"]
    assert {r["artifactType"] for r in two_types} == {SIGNATURE, ATTESTATION}

    # Paginated one at a time: every referrer once, in the same order.
    pages = []
    token = None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = ecr.list_image_referrers(
            repositoryName=name, subjectId=subject, maxResults=1, **kwargs
        )
        pages.append(page["referrers"])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [1, 1, 1, 1]
    assert [p[0]["digest"] for p in pages] == [r["digest"] for r in listed["referrers"]]

    # The aws CLI, filtered and paginated (the model has no paginator for it: the caller
    # passes nextToken back).
    found, token = [], None
    while True:
        args = ["--next-token", token] if token else []
        page = aws(
            registry,
            "ecr",
            "list-image-referrers",
            "--repository-name",
            name,
            "--subject-id",
            f"imageDigest={image.manifest_digest}",
            "--filter",
            f"artifactTypes={SBOM}",
            "--max-results",
            "1",
            *args,
        ).json
        found += [r["digest"] for r in page["referrers"]]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(found) == sorted(d for d, t in pushed.items() if t == SBOM)
    assert len(found) == 2

    # An archived referrer is listed only when asked for.
    signature = next(d for d, t in pushed.items() if t == SIGNATURE)
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageDigest": signature}, targetStorageClass="ARCHIVE"
    )
    active = ecr.list_image_referrers(repositoryName=name, subjectId=subject)["referrers"]
    assert signature not in {r["digest"] for r in active} and len(active) == 3
    archived = ecr.list_image_referrers(
        repositoryName=name, subjectId=subject, filter={"artifactStatus": "ARCHIVED"}
    )["referrers"]
    assert [(r["digest"], r["artifactStatus"]) for r in archived] == [(signature, "ARCHIVED")]
    anything = ecr.list_image_referrers(
        repositoryName=name, subjectId=subject, filter={"artifactStatus": "ANY"}
    )["referrers"]
    assert len(anything) == 4


def test_list_image_referrers_errors(registry, image: Image) -> None:
    ecr = client(registry)
    name = unique("referrers/errors")
    digest = image.manifest_digest
    with raises("RepositoryNotFoundException"):
        ecr.list_image_referrers(repositoryName=name, subjectId={"imageDigest": digest})
    push_image(registry, image, name, "1.0")
    # A subject nothing refers to has no referrers.
    empty = ecr.list_image_referrers(repositoryName=name, subjectId={"imageDigest": digest})
    assert empty["referrers"] == []
    with raises("InvalidParameterException"):
        ecr.list_image_referrers(repositoryName=name, subjectId={"imageDigest": "sha256:nope"})
    with raises("InvalidParameterException"):
        ecr.list_image_referrers(
            repositoryName=name, subjectId={"imageDigest": digest}, nextToken="garbage!"
        )
    proc = aws(
        registry,
        "ecr",
        "list-image-referrers",
        "--repository-name",
        unique("referrers/missing"),
        "--subject-id",
        f"imageDigest={digest}",
        check=False,
    )
    assert cli_error(proc) == "RepositoryNotFoundException"
