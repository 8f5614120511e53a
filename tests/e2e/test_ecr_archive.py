"""The archive storage class against a real `cargobay serve`: UpdateImageStorageClass through
boto3 (every response checked against the botocore model) and the aws CLI, pulls of an archived
image refused on both doors with a clear error (skopeo and BatchGetImage), restore, and the
image pulled back byte-identical."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from e2e.ecrhelp import (
    ACCOUNT,
    aws,
    check_shape,
    cli_error,
    client,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    raises,
    skopeo,
    unique,
)
from imagebuilder import Image, build_image, build_index
from server import Server


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


def _details(ecr, name: str, **kwargs) -> dict[str, dict]:
    pages = ecr.get_paginator("describe_images").paginate(repositoryName=name, **kwargs)
    return {d["imageDigest"]: d for page in pages for d in page["imageDetails"]}


def _listed(ecr, name: str, **kwargs) -> set[str]:
    return {i["imageDigest"] for i in ecr.list_images(repositoryName=name, **kwargs)["imageIds"]}


def test_archive_refuses_pulls_until_restored(
    registry: Server, ecr, image: Image, tmp_path: Path
) -> None:
    name = unique("archive/app")
    push(registry, image, f"{name}:1.0")
    digest = image.manifest_digest
    before = tmp_path / "before"
    pull(registry, f"{name}:1.0", before)

    out = ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "1.0"}, targetStorageClass="ARCHIVE"
    )
    assert ecr.raw.bodies["UpdateImageStorageClass"] == {
        "registryId": ACCOUNT,
        "repositoryName": name,
        "imageId": {"imageDigest": digest, "imageTag": "1.0"},
        "imageStatus": "ARCHIVED",
    }
    assert out["imageStatus"] == "ARCHIVED"

    # Listed only when asked for (ECR lists ACTIVE images by default), with when it moved.
    assert _details(ecr, name) == {}
    assert _listed(ecr, name) == set()
    assert _listed(ecr, name, filter={"imageStatus": "ARCHIVED"}) == {digest}
    archived = _details(ecr, name, filter={"imageStatus": "ARCHIVED"})[digest]
    check_shape("DescribeImages", ecr.raw.bodies["DescribeImages"])
    assert archived["imageStatus"] == "ARCHIVED"
    assert archived["imageTags"] == ["1.0"]
    assert "lastArchivedAt" in archived and "lastActivatedAt" not in archived
    by_id = ecr.describe_images(repositoryName=name, imageIds=[{"imageDigest": digest}])
    assert by_id["imageDetails"][0]["imageStatus"] == "ARCHIVED"
    assert set(_details(ecr, name, filter={"imageStatus": "ANY"})) == {digest}

    # A pull fails, and says why, on both doors.
    refused = pull(registry, f"{name}:1.0", tmp_path / "refused", check=False)
    assert refused.returncode != 0
    assert "archived" in refused.stderr, refused.stderr
    response = registry.session().get(f"{registry.url}/v2/{name}/manifests/{digest}")
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["code"] == "MANIFEST_UNKNOWN"
    assert "archived" in error["message"] and "UpdateImageStorageClass" in error["message"]
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "1.0"}])
    assert got["images"] == []
    assert got["failures"][0]["failureCode"] == "ImageInaccessible"
    assert "archived" in got["failures"][0]["failureReason"]
    check_shape("BatchGetImage", ecr.raw.bodies["BatchGetImage"])

    # Its layers (no active image uses them) are ARCHIVED.
    layer_digests = [layer["digest"] for layer in json.loads(image.manifest)["layers"]]
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=layer_digests)
    check_shape("BatchCheckLayerAvailability", ecr.raw.bodies["BatchCheckLayerAvailability"])
    assert {layer["layerAvailability"] for layer in checked["layers"]} == {"ARCHIVED"}

    # Nor can it be scanned.
    with raises("ImageArchivedException") as info:
        ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": digest})
    assert "archived" in info.value.response["Error"]["Message"]

    # Archiving twice is not a storage class update.
    with raises("ImageStorageClassUpdateNotSupportedException"):
        ecr.update_image_storage_class(
            repositoryName=name, imageId={"imageDigest": digest}, targetStorageClass="ARCHIVE"
        )

    # Restore with the aws CLI; then the pull is byte-identical to the first one.
    restored = aws(
        registry,
        "ecr",
        "update-image-storage-class",
        "--repository-name",
        name,
        "--image-id",
        f"imageDigest={digest}",
        "--target-storage-class",
        "STANDARD",
    ).json
    assert restored["imageStatus"] == "ACTIVE"
    assert restored["imageId"] == {"imageDigest": digest}
    detail = _details(ecr, name)[digest]
    assert detail["imageStatus"] == "ACTIVE"
    assert detail["lastActivatedAt"] >= detail["lastArchivedAt"]
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=layer_digests)
    assert {layer["layerAvailability"] for layer in checked["layers"]} == {"AVAILABLE"}
    after = tmp_path / "after"
    pull(registry, f"{name}:1.0", after)
    assert pulled_manifest(after) == pulled_manifest(before)
    for layer in json.loads(image.manifest)["layers"]:
        assert pulled_blob(after, layer["digest"]) == pulled_blob(before, layer["digest"])
    with raises("ImageStorageClassUpdateNotSupportedException"):
        ecr.update_image_storage_class(
            repositoryName=name, imageId={"imageDigest": digest}, targetStorageClass="STANDARD"
        )


def test_repush_restores_an_archived_image(registry: Server, ecr, image: Image) -> None:
    name = unique("archive/repush")
    push(registry, image, f"{name}:v1")
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
    )
    push(registry, image, f"{name}:v1")
    detail = _details(ecr, name)[image.manifest_digest]
    assert detail["imageStatus"] == "ACTIVE" and "lastActivatedAt" in detail
    response = registry.session().get(f"{registry.url}/v2/{name}/manifests/v1")
    assert response.status_code == 200 and response.content == image.manifest

    # An archived image can be deleted; pushed again, it starts in the standard class.
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
    )
    deleted = ecr.batch_delete_image(
        repositoryName=name, imageIds=[{"imageDigest": image.manifest_digest}]
    )
    assert deleted["failures"] == []
    assert _details(ecr, name, filter={"imageStatus": "ANY"}) == {}
    push(registry, image, f"{name}:v1")
    detail = _details(ecr, name)[image.manifest_digest]
    assert detail["imageStatus"] == "ACTIVE"
    assert "lastArchivedAt" not in detail and "lastActivatedAt" not in detail


def test_an_index_moves_with_its_images(registry: Server, ecr, tmp_path: Path) -> None:
    index = build_index(tmp_path / "index")
    name = unique("archive/multi")
    skopeo(
        "copy",
        "--all",
        "--dest-creds",
        registry.creds_arg,
        "--dest-tls-verify=false",
        f"oci:{index.layout}:latest",
        f"docker://{registry.host}/{name}:multi",
    )
    children = [image.manifest_digest for image in index.images.values()]
    with raises("ImageStorageClassUpdateNotSupportedException") as info:
        ecr.update_image_storage_class(
            repositoryName=name, imageId={"imageDigest": children[0]}, targetStorageClass="ARCHIVE"
        )
    assert index.digest in info.value.response["Error"]["Message"]
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "multi"}, targetStorageClass="ARCHIVE"
    )
    archived = _details(ecr, name, filter={"imageStatus": "ARCHIVED"})
    assert set(archived) == {index.digest, *children}
    for child in children:
        response = registry.session().get(f"{registry.url}/v2/{name}/manifests/{child}")
        assert response.status_code == 404
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "multi"}, targetStorageClass="STANDARD"
    )
    assert set(_details(ecr, name)) == {index.digest, *children}


def test_storage_class_errors(registry: Server, ecr, image: Image) -> None:
    name = unique("archive/errors")
    with raises("RepositoryNotFoundException"):
        ecr.update_image_storage_class(
            repositoryName=name, imageId={"imageTag": "x"}, targetStorageClass="ARCHIVE"
        )
    push(registry, image, f"{name}:x")
    with raises("ImageNotFoundException"):
        ecr.update_image_storage_class(
            repositoryName=name, imageId={"imageTag": "nope"}, targetStorageClass="ARCHIVE"
        )
    proc = aws(
        registry,
        "ecr",
        "update-image-storage-class",
        "--repository-name",
        name,
        "--image-id",
        "imageTag=x",
        "--target-storage-class",
        "STANDARD",
        check=False,
    )
    assert cli_error(proc) == "ImageStorageClassUpdateNotSupportedException"


def test_archived_bytes_are_metered_at_the_archive_price(
    registry: Server, ecr, image: Image, tmp_path: Path
) -> None:
    """`cargobay usage` meters the blobs only archived images reference at
    `price_per_gb_month_archive`; a blob an active image also uses stays standard."""
    name = unique("archive/meter")
    other = build_image(tmp_path / "other", [2048, 70_000])
    push(registry, image, f"{name}:old")
    push(registry, other, f"{name}:new")
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "old"}, targetStorageClass="ARCHIVE"
    )
    env = {**registry.process_env, "CARGOBAY_PRICE_PER_GB_MONTH_ARCHIVE": "2.00"}
    out = subprocess.run(
        [sys.executable, "-m", "cargobay", "usage", "--data-dir", str(registry.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    report = json.loads(out.stdout)
    entry = next(r for r in report["repositories"] if r["repository"] == name)
    old = sum(len(b) for b in image.blobs.values())
    new = sum(len(b) for b in other.blobs.values())
    assert (entry["stored_bytes"], entry["archived_bytes"]) == (new, old)
    expected = Decimal(old) / Decimal(1024**3) * Decimal("2.00")
    assert entry["cost"]["archive_usd_per_month"] == f"{expected:.6f}"
    account = report["accounts"][ACCOUNT]
    assert account["archived_bytes"] >= old and "archive_usd_per_month" in account["cost"]

    # Restored, its bytes are standard again.
    ecr.update_image_storage_class(
        repositoryName=name, imageId={"imageTag": "old"}, targetStorageClass="STANDARD"
    )
    out = subprocess.run(
        [sys.executable, "-m", "cargobay", "usage", "--data-dir", str(registry.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    entry = next(r for r in json.loads(out.stdout)["repositories"] if r["repository"] == name)
    assert (entry["stored_bytes"], entry["archived_bytes"]) == (old + new, 0)
