"""Layers of archived images against a real `cargobay serve` (both metadata backends): a blob
only archived images use is refused on `/v2/` (GET and HEAD, curl) and by
GetDownloadUrlForLayer (boto3), is ARCHIVED to BatchCheckLayerAvailability, stays pullable
while an active image shares it, and pulls byte-identical (skopeo) once the image is restored."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import require_tool
from e2e.ecrhelp import client, pull, pulled_blob, pulled_manifest, push, raises, unique
from imagebuilder import Image
from server import Server

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


def _curl(registry: Server, method: str, path: str) -> tuple[int, bytes]:
    """(status, body) of an authenticated curl request to the registry (following a redirect
    to the object store)."""
    user, password = registry.credentials
    flag = ["--head"] if method == "HEAD" else []
    out = ["-o", "-", "-w", "\n%{http_code}"]
    proc = subprocess.run(
        [
            require_tool("curl"),
            "-sSL",
            *flag,
            *out,
            "-u",
            f"{user}:{password}",
            registry.url + path,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    body, _, status = proc.stdout.rpartition(b"\n")
    return int(status), body


def _refused(registry: Server, name: str, digest: str) -> None:
    status, body = _curl(registry, "GET", f"/v2/{name}/blobs/{digest}")
    assert status == 404, body
    error = json.loads(body)["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN"
    assert "archived" in error["message"] and "UpdateImageStorageClass" in error["message"]
    status, _ = _curl(registry, "HEAD", f"/v2/{name}/blobs/{digest}")
    assert status == 404


def _served(registry: Server, name: str, digest: str, expected: bytes) -> None:
    status, body = _curl(registry, "GET", f"/v2/{name}/blobs/{digest}")
    assert (status, body) == (200, expected)
    status, _ = _curl(registry, "HEAD", f"/v2/{name}/blobs/{digest}")
    assert status == 200


def _layer_url(ecr, name: str, digest: str) -> str:
    return ecr.get_download_url_for_layer(repositoryName=name, layerDigest=digest)["downloadUrl"]


def test_layers_of_archived_images_are_not_pullable(
    registry: Server, ecr, image: Image, tmp_path: Path
) -> None:
    name = unique("archive/layers")
    push(registry, image, f"{name}:old")
    before = tmp_path / "before"
    pull(registry, f"{name}:old", before)
    manifest = json.loads(image.manifest)
    blobs = image.blobs  # the config and the layers
    layer = manifest["layers"][0]["digest"]
    assert requests.get(_layer_url(ecr, name, layer), timeout=60).content == blobs[layer]

    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "old"}, targetStorageClass="ARCHIVE"
    )
    for digest in blobs:  # layers and config alike
        _refused(registry, name, digest)
    with raises("LayerInaccessibleException") as info:
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest=layer)
    assert "archived" in info.value.response["Error"]["Message"]
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=list(blobs))
    assert {entry["layerAvailability"] for entry in checked["layers"]} == {"ARCHIVED"}

    # An active image sharing the blobs (same config and layers, another manifest) makes them
    # pullable; deleting it makes them archived-only again.
    shared = {**manifest, "annotations": {"org.example.variant": "shared"}}
    put = ecr.put_image(
        repositoryName=name,
        imageManifest=json.dumps(shared),
        imageManifestMediaType=manifest["mediaType"],
        imageTag="new",
    )
    for digest, data in blobs.items():
        _served(registry, name, digest, data)
    assert requests.get(_layer_url(ecr, name, layer), timeout=60).content == blobs[layer]
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=list(blobs))
    assert {entry["layerAvailability"] for entry in checked["layers"]} == {"AVAILABLE"}
    ecr.batch_delete_image(
        repositoryName=name, imageIds=[{"imageDigest": put["image"]["imageId"]["imageDigest"]}]
    )
    for digest in blobs:
        _refused(registry, name, digest)

    # Restored, everything pulls again, byte-identical.
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "old"}, targetStorageClass="STANDARD"
    )
    for digest, data in blobs.items():
        _served(registry, name, digest, data)
    assert requests.get(_layer_url(ecr, name, layer), timeout=60).content == blobs[layer]
    after = tmp_path / "after"
    pull(registry, f"{name}:old", after)
    assert pulled_manifest(after) == pulled_manifest(before)
    for digest in blobs:
        assert pulled_blob(after, digest) == pulled_blob(before, digest)


def test_a_blob_archived_in_one_repository_is_pullable_in_another(
    registry: Server, ecr, image: Image
) -> None:
    """Archiving is per repository: the same blobs in another repository stay pullable."""
    archived, active = unique("archive/here"), unique("archive/there")
    push(registry, image, f"{archived}:v1")
    push(registry, image, f"{active}:v1")
    ecr.update_image_storage_class(
        repositoryName=archived, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
    )
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    _refused(registry, archived, layer)
    _served(registry, active, layer, image.layers[0])
