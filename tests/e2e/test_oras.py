"""oras (the oras-py SDK) against a real cargobay: artifacts with an artifactType, and
referrers of an image (the OCI 1.1 `subject` field and the referrers API)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import oras.oci
import pytest
import requests
from oras.client import OrasClient

from conftest import require_tool
from imagebuilder import OCI_INDEX, OCI_MANIFEST, Image, sha256

SPDX = "application/spdx+json"
SIGNATURE = "application/vnd.example.signature.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ArtifactClient(OrasClient):
    """oras-py plus what `oras push --artifact-type` does: the manifest's `artifactType`."""

    artifact_type: str | None = None

    def upload_manifest(self, manifest: dict, container) -> requests.Response:
        if self.artifact_type:
            manifest = {**manifest, "artifactType": self.artifact_type}
        return super().upload_manifest(manifest, container)


@pytest.fixture
def client(registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactClient:
    # oras-py reads ~/.docker/config.json: give it an empty home so only our key is used.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    client = ArtifactClient(hostname=registry.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(*registry.credentials)
    return client


def push_image(registry, image: Image, name: str, tag: str) -> None:
    """Push an image with skopeo: the subject the artifacts refer to."""
    subprocess.run(
        [
            require_tool("skopeo"), "copy", "--dest-creds", registry.creds_arg,
            "--dest-tls-verify=false", f"oci:{image.layout}:latest",
            f"docker://{registry.host}/{name}:{tag}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip


def referrers(registry, name: str, digest: str, artifact_type: str | None = None):
    params = {"artifactType": artifact_type} if artifact_type else None
    return registry.session().get(f"{registry.url}/v2/{name}/referrers/{digest}", params=params)


def get_manifest(registry, name: str, reference: str) -> requests.Response:
    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200, response.text
    return response


def test_push_pull_artifact(registry, client: ArtifactClient, tmp_path: Path) -> None:
    """An SPDX document pushed with artifactType application/spdx+json comes back identical,
    and the stored manifest carries the artifact type and the file's title."""
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_bytes(
        json.dumps({"spdxVersion": "SPDX-2.3", "name": uuid.uuid4().hex}).encode()
        + os.urandom(64).hex().encode()
    )
    name = unique("oras/sbom")
    target = f"{registry.host}/{name}:sbom"
    client.artifact_type = SPDX
    response = client.push(
        target, files=[f"{sbom}:{SPDX}"], disable_path_validation=True, quiet=True
    )
    assert response.status_code == 201
    digest = response.headers["Docker-Content-Digest"]

    stored = get_manifest(registry, name, "sbom")
    assert sha256(stored.content) == digest
    manifest = stored.json()
    assert manifest["artifactType"] == SPDX
    assert manifest["layers"][0]["mediaType"] == SPDX
    assert manifest["layers"][0]["annotations"][TITLE] == sbom.name
    assert manifest["layers"][0]["digest"] == sha256(sbom.read_bytes())

    out = tmp_path / "out"
    files = client.pull(target=target, outdir=str(out))
    assert [Path(f).name for f in files] == [sbom.name]
    assert (out / sbom.name).read_bytes() == sbom.read_bytes()
    assert client.get_tags(f"{registry.host}/{name}") == ["sbom"]


def test_push_pull_large_artifact_chunked(registry, client: ArtifactClient, tmp_path) -> None:
    """A 3 MiB file pushed with oras' chunked upload (POST, PATCHes with Content-Range, PUT)
    is pulled back byte-identical, and so is one pushed monolithically next to it."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    small = tmp_path / "small.txt"
    small.write_bytes(b"small file\n")
    name = unique("oras/chunked")
    target = f"{registry.host}/{name}:v1"
    client.push(
        target,
        files=[str(big), str(small)],
        disable_path_validation=True,
        do_chunked=True,
        chunk_size=1024 * 1024,
        quiet=True,
    )
    blob = registry.session().get(f"{registry.url}/v2/{name}/blobs/{sha256(big.read_bytes())}")
    assert blob.content == big.read_bytes()
    out = tmp_path / "out"
    client.pull(target=target, outdir=str(out))
    assert (out / "big.bin").read_bytes() == big.read_bytes()
    assert (out / "small.txt").read_bytes() == small.read_bytes()


def test_referrers_with_oras_subject(registry, client: ArtifactClient, image, tmp_path) -> None:
    """Artifacts pushed with a `subject` (an image pushed by skopeo) are answered with an
    OCI-Subject header and listed by the referrers API, filtered by artifactType on request."""
    name = unique("oras/referrers")
    push_image(registry, image, name, "1.0")
    subject = oras.oci.Subject(OCI_MANIFEST, image.manifest_digest, len(image.manifest))

    pushed: dict[str, str] = {}
    for artifact_type, filename in [(SPDX, "sbom.spdx.json"), (SIGNATURE, "image.sig")]:
        path = tmp_path / filename
        path.write_bytes(os.urandom(200))
        client.artifact_type = artifact_type
        response = client.push(
            f"{registry.host}/{name}:{filename.replace('.', '-')}",
            files=[str(path)],
            subject=subject,
            manifest_annotations={"org.example.kind": artifact_type},
            disable_path_validation=True,
            quiet=True,
        )
        assert response.status_code == 201
        assert response.headers["OCI-Subject"] == image.manifest_digest
        pushed[artifact_type] = response.headers["Docker-Content-Digest"]

    everything = referrers(registry, name, image.manifest_digest)
    assert everything.status_code == 200
    assert everything.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in everything.headers
    index = everything.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_type = {d["artifactType"]: d for d in index["manifests"]}
    assert set(by_type) == {SPDX, SIGNATURE}
    for artifact_type, digest in pushed.items():
        descriptor = by_type[artifact_type]
        content = get_manifest(registry, name, digest).content
        assert descriptor["digest"] == digest == sha256(content)
        assert descriptor["size"] == len(content)
        assert descriptor["mediaType"] == OCI_MANIFEST
        assert descriptor["annotations"] == {"org.example.kind": artifact_type}

    filtered = referrers(registry, name, image.manifest_digest, SPDX)
    assert filtered.status_code == 200
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [pushed[SPDX]]

    none = referrers(registry, name, image.manifest_digest, "application/vnd.example.none")
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert none.json()["manifests"] == []

    # The image itself has no subject, so nothing refers to the artifacts.
    assert referrers(registry, name, pushed[SPDX]).json()["manifests"] == []

    # Deleting a referrer removes it from the list.
    deleted = registry.session().delete(f"{registry.url}/v2/{name}/manifests/{pushed[SIGNATURE]}")
    assert deleted.status_code == 202
    remaining = referrers(registry, name, image.manifest_digest).json()["manifests"]
    assert [d["digest"] for d in remaining] == [pushed[SPDX]]


def test_referrer_pushed_by_hand_before_its_subject(registry, client, image) -> None:
    """An OCI 1.1 artifact manifest (empty config, artifactType) PUT with requests before its
    subject exists is accepted with OCI-Subject and listed once the subject is pushed."""
    name = unique("oras/early")
    session = registry.session()
    empty = b"{}"
    payload = b'{"signed": "' + uuid.uuid4().hex.encode() + b'"}'
    for blob in (empty, payload):
        response = session.post(
            f"{registry.url}/v2/{name}/blobs/uploads/",
            params={"digest": sha256(blob)},
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": {"mediaType": OCI_EMPTY, "digest": sha256(empty), "size": 2},
            "layers": [{"mediaType": SIGNATURE, "digest": sha256(payload), "size": len(payload)}],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest_digest,
                "size": len(image.manifest),
            },
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    response = session.put(
        f"{registry.url}/v2/{name}/manifests/{digest}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == image.manifest_digest
    assert response.headers["Docker-Content-Digest"] == digest

    listed = referrers(registry, name, image.manifest_digest).json()["manifests"]
    assert listed == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": SIGNATURE,
        }
    ]
    push_image(registry, image, name, "late")
    assert referrers(registry, name, image.manifest_digest).json()["manifests"] == listed
    # oras reads the artifact back by digest.
    assert client.get_manifest(f"{registry.host}/{name}@{digest}")["artifactType"] == SIGNATURE


def test_referrers_of_unknown_repository_is_empty(registry) -> None:
    response = referrers(registry, unique("oras/nothing"), sha256(b"nothing"))
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
