"""The ECR API through boto3: every response body is checked against the botocore service model
(field names, types, enums, epoch-second timestamps) by the client `ecrhelp.client` builds, and
every error path asserts the exact exception name."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import boto3
import botocore.auth
import pytest
import requests

from cargobay.storage.s3 import parse_url
from e2e.ecrhelp import (
    ACCOUNT,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    client,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    raises,
    signed_post,
    unique,
)
from imagebuilder import Image, build_image, random_layer, sha256
from server import storage_backend


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Image, Image, Image]:
    """Three small distinct OCI images."""
    root = tmp_path_factory.mktemp("ecr-images")
    return (
        build_image(root / "a", [2048, 5000]),
        build_image(root / "b", [1024]),
        build_image(root / "c", [3000]),
    )


def docker_manifest(config: bytes, layers: list[bytes]) -> bytes:
    """A Docker schema 2 manifest for the given config and layer blobs."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": len(layer), "digest": sha256(layer)}
                for layer in layers
            ],
        },
        indent=3,
    ).encode()


def docker_config(layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": [sha256(gzip.decompress(layer)) for layer in layers],
            },
        }
    ).encode()


# -- repositories -------------------------------------------------------------------------------


def test_create_repository_settings_and_duplicate(registry, ecr) -> None:
    name = unique("boto/create")
    key, secret = registry.credentials
    kms = boto3.client(
        "kms", endpoint_url=registry.url, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
    ).create_key(Description="boto/create")["KeyMetadata"]["Arn"]  # fmt: skip
    before = time.time()
    repo = ecr.create_repository(
        repositoryName=name,
        tags=[{"Key": "team", "Value": "infra"}, {"Key": "env", "Value": ""}],
        imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms},
    )["repository"]
    raw = ecr.raw.bodies["CreateRepository"]["repository"]
    assert isinstance(raw["createdAt"], int | float)
    assert before - 5 <= raw["createdAt"] <= time.time() + 5
    assert repo["repositoryName"] == name
    assert repo["registryId"] == ACCOUNT
    assert repo["repositoryArn"] == f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{name}"
    # No host_suffix: the URI is the address the client used, which docker can reach as it is.
    assert repo["repositoryUri"] == f"127.0.0.1:{registry.port}/{name}"
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": kms}

    tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert sorted(tags, key=lambda t: t["Key"]) == [
        {"Key": "env", "Value": ""},
        {"Key": "team", "Value": "infra"},
    ]

    described = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert described == [repo]

    with raises("RepositoryAlreadyExistsException") as info:
        ecr.create_repository(repositoryName=name)
    assert name in info.value.response["Error"]["Message"]

    # Defaults: MUTABLE, no scan on push, AES256 without a key; KMS without a key gets the
    # account's aws/ecr alias.
    plain = ecr.create_repository(repositoryName=unique("boto/plain"))["repository"]
    assert plain["imageTagMutability"] == "MUTABLE"
    assert plain["imageScanningConfiguration"] == {"scanOnPush": False}
    assert plain["encryptionConfiguration"] == {"encryptionType": "AES256"}
    aes = ecr.create_repository(
        repositoryName=unique("boto/aes"), encryptionConfiguration={"encryptionType": "AES256"}
    )["repository"]
    assert aes["encryptionConfiguration"] == {"encryptionType": "AES256"}
    default_kms = ecr.create_repository(
        repositoryName=unique("boto/kms"), encryptionConfiguration={"encryptionType": "KMS"}
    )["repository"]
    assert default_kms["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert default_kms["encryptionConfiguration"]["kmsKey"].startswith("arn:aws:kms:us-east-1:")


def test_create_repository_invalid_parameters(ecr) -> None:
    with raises("InvalidParameterException"):
        ecr.create_repository(repositoryName="Upper/Case")
    with raises("InvalidParameterException"):
        ecr.create_repository(repositoryName=unique("boto/bad"), imageTagMutability="SOMETIMES")
    with raises("InvalidParameterException"):
        ecr.create_repository(
            repositoryName=unique("boto/bad"),
            encryptionConfiguration={"encryptionType": "AES256", "kmsKey": "arn:aws:kms:x"},
        )
    with raises("InvalidTagParameterException"):
        ecr.create_repository(
            repositoryName=unique("boto/bad"), tags=[{"Key": "aws:reserved", "Value": "x"}]
        )
    with raises("TooManyTagsException"):
        ecr.create_repository(
            repositoryName=unique("boto/bad"),
            tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)],
        )


def test_describe_repositories_unknown(ecr) -> None:
    name = unique("boto/missing")
    with raises("RepositoryNotFoundException") as info:
        ecr.describe_repositories(repositoryNames=[name])
    assert f"'{name}'" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_describe_repositories_paginator(ecr) -> None:
    prefix = unique("boto/page")
    names = {f"{prefix}/r{i:02d}" for i in range(27)}
    for name in names:
        ecr.create_repository(repositoryName=name)
    pages = list(
        ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 10})
    )
    assert len(pages) >= 3
    seen: list[str] = []
    for i, page in enumerate(pages):
        assert len(page["repositories"]) <= 10
        if i < len(pages) - 1:
            assert len(page["repositories"]) == 10
            assert page["nextToken"]
        else:
            assert "nextToken" not in page
        seen += [r["repositoryName"] for r in page["repositories"]]
    assert len(seen) == len(set(seen)), "a repository appeared on two pages"
    assert names <= set(seen)
    # maxResults straight through the API, and a bad value.
    first = ecr.describe_repositories(maxResults=1)
    assert len(first["repositories"]) == 1 and first["nextToken"]
    with raises("InvalidParameterException"):
        ecr.describe_repositories(nextToken="not a token")


def test_delete_repository(registry, ecr, images) -> None:
    name = unique("boto/delete")
    created = ecr.create_repository(repositoryName=name)["repository"]
    push(registry, images[1], f"{name}:1")
    with raises("RepositoryNotEmptyException"):
        ecr.delete_repository(repositoryName=name)
    deleted = ecr.delete_repository(repositoryName=name, force=True)["repository"]
    assert deleted == created
    with raises("RepositoryNotFoundException"):
        ecr.describe_repositories(repositoryNames=[name])
    with raises("RepositoryNotFoundException"):
        ecr.delete_repository(repositoryName=name)
    # An empty repository goes without force.
    empty = unique("boto/delete-empty")
    ecr.create_repository(repositoryName=empty)
    assert ecr.delete_repository(repositoryName=empty)["repository"]["repositoryName"] == empty


def test_put_image_tag_mutability_and_scanning(ecr) -> None:
    name = unique("boto/settings")
    ecr.create_repository(repositoryName=name)
    out = ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
    assert {k: out[k] for k in ("registryId", "repositoryName", "imageTagMutability")} == {
        "registryId": ACCOUNT,
        "repositoryName": name,
        "imageTagMutability": "IMMUTABLE",
    }
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    out = ecr.put_image_scanning_configuration(
        repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
    )
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    assert out["repositoryName"] == name and out["registryId"] == ACCOUNT
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}

    with raises("InvalidParameterException"):
        ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="NOPE")
    missing = unique("boto/settings-missing")
    with raises("RepositoryNotFoundException"):
        ecr.put_image_tag_mutability(repositoryName=missing, imageTagMutability="MUTABLE")
    with raises("RepositoryNotFoundException"):
        ecr.put_image_scanning_configuration(
            repositoryName=missing, imageScanningConfiguration={"scanOnPush": False}
        )


# -- images ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def populated(registry, images) -> dict:
    """A repository holding image a (tags t1, t2), image c (tag b) and untagged image b
    (tag b moved from it to c)."""
    a, b, c = images
    name = unique("boto/images")
    push(registry, a, f"{name}:t1")
    push(registry, a, f"{name}:t2")
    push(registry, b, f"{name}:b")
    push(registry, c, f"{name}:b")
    return {"name": name, "a": a, "b": b, "c": c}


def test_list_images_filters_and_paginator(ecr, populated) -> None:
    name, a, b, c = (populated[k] for k in ("name", "a", "b", "c"))
    tagged = {
        (a.manifest_digest, "t1"),
        (a.manifest_digest, "t2"),
        (c.manifest_digest, "b"),
    }

    def ids(**kwargs) -> set[tuple[str, str | None]]:
        out = ecr.list_images(repositoryName=name, **kwargs)
        assert "nextToken" not in out
        return {(i["imageDigest"], i.get("imageTag")) for i in out["imageIds"]}

    assert ids(filter={"tagStatus": "TAGGED"}) == tagged
    assert ids(filter={"tagStatus": "UNTAGGED"}) == {(b.manifest_digest, None)}
    assert ids(filter={"tagStatus": "ANY"}) == tagged | {(b.manifest_digest, None)}
    assert ids() == ids(filter={"tagStatus": "ANY"})

    pages = list(
        ecr.get_paginator("list_images").paginate(
            repositoryName=name, PaginationConfig={"PageSize": 1}
        )
    )
    assert all(len(p["imageIds"]) == 1 for p in pages)
    assert len(pages) == 4
    paged = [(i["imageDigest"], i.get("imageTag")) for p in pages for i in p["imageIds"]]
    assert set(paged) == ids() and len(paged) == 4

    with raises("InvalidParameterException"):
        ecr.list_images(repositoryName=name, filter={"tagStatus": "SOME"})
    with raises("RepositoryNotFoundException"):
        ecr.list_images(repositoryName=unique("boto/nothing"))


def test_describe_images(registry, ecr, populated, tmp_path: Path) -> None:
    name, a, b = populated["name"], populated["a"], populated["b"]
    detail = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "t1"}])["imageDetails"]
    assert len(detail) == 1
    detail = detail[0]
    raw = ecr.raw.bodies["DescribeImages"]["imageDetails"][0]
    assert isinstance(raw["imagePushedAt"], int | float)
    assert detail["registryId"] == ACCOUNT
    assert detail["repositoryName"] == name
    assert detail["imageDigest"] == a.manifest_digest
    assert sorted(detail["imageTags"]) == ["t1", "t2"]
    assert detail["imageSizeInBytes"] == len(a.config) + sum(len(x) for x in a.layers)
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert abs(raw["imagePushedAt"] - time.time()) < 600
    assert "lastRecordedPullTime" not in detail

    # By digest, an untagged image has no imageTags.
    untagged = ecr.describe_images(
        repositoryName=name, imageIds=[{"imageDigest": b.manifest_digest}]
    )["imageDetails"][0]
    assert "imageTags" not in untagged
    assert untagged["imageSizeInBytes"] == len(b.config) + sum(len(x) for x in b.layers)

    # A pull records lastRecordedPullTime (written off the request path: poll briefly).
    pull(registry, f"{name}:t1", tmp_path / "pulled")
    recorded = None
    for _ in range(50):
        got = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "t2"}])
        raw = ecr.raw.bodies["DescribeImages"]["imageDetails"][0]
        if "lastRecordedPullTime" in raw:
            recorded = raw["lastRecordedPullTime"]
            break
        time.sleep(0.1)
    assert recorded is not None, got
    assert isinstance(recorded, int | float)
    assert recorded >= raw["imagePushedAt"]

    # Listing with the tag filter, and the paginator.
    all_details = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert len(all_details) == 3
    only_untagged = ecr.describe_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})
    assert [d["imageDigest"] for d in only_untagged["imageDetails"]] == [b.manifest_digest]
    pages = list(
        ecr.get_paginator("describe_images").paginate(
            repositoryName=name, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["imageDetails"]) for p in pages] == [2, 1]

    with raises("ImageNotFoundException"):
        ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "nope"}])
    with raises("ImageNotFoundException"):
        ecr.describe_images(repositoryName=name, imageIds=[{"imageDigest": sha256(b"nothing")}])
    with raises("RepositoryNotFoundException"):
        ecr.describe_images(repositoryName=unique("boto/nothing"))


def test_batch_get_image_returns_pushed_bytes(ecr, populated) -> None:
    name, a = populated["name"], populated["a"]
    missing_digest = sha256(b"missing")
    out = ecr.batch_get_image(
        repositoryName=name,
        imageIds=[
            {"imageTag": "t1"},
            {"imageDigest": a.manifest_digest},
            {"imageTag": "nope"},
            {"imageDigest": missing_digest},
            {"imageTag": "t1", "imageDigest": missing_digest},
        ],
    )
    images = out["images"]
    assert len(images) == 2
    for got in images:
        assert got["registryId"] == ACCOUNT and got["repositoryName"] == name
        assert got["imageId"]["imageDigest"] == a.manifest_digest
        # The exact bytes skopeo pushed, not a re-serialisation.
        assert got["imageManifest"].encode() == a.manifest
        assert got["imageManifestMediaType"] == OCI_MANIFEST
    assert images[0]["imageId"] == {"imageDigest": a.manifest_digest, "imageTag": "t1"}
    failures = {
        (f["imageId"].get("imageTag"), f["imageId"].get("imageDigest")): f for f in out["failures"]
    }
    assert failures[("nope", None)]["failureCode"] == "ImageNotFound"
    assert failures[(None, missing_digest)]["failureCode"] == "ImageNotFound"
    assert failures[("t1", missing_digest)]["failureCode"] == "ImageTagDoesNotMatchDigest"
    assert all(f["failureReason"] for f in out["failures"])

    # acceptedMediaTypes that admit the stored type return it; an OCI image asked for as
    # Docker schema 2 by tag is converted, as ECR converts it; by digest it is not found.
    accepted = ecr.batch_get_image(
        repositoryName=name, imageIds=[{"imageTag": "t1"}], acceptedMediaTypes=[OCI_MANIFEST]
    )
    assert accepted["failures"] == []
    assert accepted["images"][0]["imageManifest"].encode() == a.manifest
    other = ecr.batch_get_image(
        repositoryName=name,
        imageIds=[{"imageTag": "t1"}, {"imageDigest": a.manifest_digest}],
        acceptedMediaTypes=[DOCKER_MANIFEST],
    )
    assert [i["imageManifestMediaType"] for i in other["images"]] == [DOCKER_MANIFEST]
    converted = json.loads(other["images"][0]["imageManifest"])
    stored = json.loads(a.manifest)
    assert converted["mediaType"] == DOCKER_MANIFEST
    assert converted["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert converted["config"]["digest"] == stored["config"]["digest"]
    assert [layer["digest"] for layer in converted["layers"]] == [
        layer["digest"] for layer in stored["layers"]
    ]
    assert other["images"][0]["imageId"]["imageDigest"] == a.manifest_digest
    assert [(f["imageId"], f["failureCode"]) for f in other["failures"]] == [
        ({"imageDigest": a.manifest_digest}, "ImageNotFound")
    ]

    with raises("RepositoryNotFoundException"):
        ecr.batch_get_image(repositoryName=unique("boto/nothing"), imageIds=[{"imageTag": "x"}])


def test_batch_delete_image_partial_failures(registry, ecr, images) -> None:
    a, b, c = images
    name = unique("boto/batch-delete")
    push(registry, a, f"{name}:one")
    push(registry, a, f"{name}:two")
    push(registry, b, f"{name}:bee")
    push(registry, c, f"{name}:sea")
    missing = sha256(b"never pushed")
    out = ecr.batch_delete_image(
        repositoryName=name,
        imageIds=[
            {"imageTag": "one"},  # untags only: image a keeps tag two
            {"imageDigest": b.manifest_digest},  # deletes image b and its tag
            {"imageTag": "nope"},
            {"imageDigest": missing},
            {"imageDigest": "sha256:short"},
            {},
        ],
    )
    deleted = {(i.get("imageDigest"), i.get("imageTag")) for i in out["imageIds"]}
    assert (a.manifest_digest, "one") in deleted
    assert any(d == b.manifest_digest for d, _ in deleted)
    codes = {
        (f["imageId"].get("imageTag"), f["imageId"].get("imageDigest")): f["failureCode"]
        for f in out["failures"]
    }
    assert codes == {
        ("nope", None): "ImageNotFound",
        (None, missing): "ImageNotFound",
        (None, "sha256:short"): "InvalidImageDigest",
        (None, None): "MissingDigestAndTag",
    }
    left = ecr.list_images(repositoryName=name)["imageIds"]
    assert {(i["imageDigest"], i.get("imageTag")) for i in left} == {
        (a.manifest_digest, "two"),
        (c.manifest_digest, "sea"),
    }
    # Removing an image's last tag deletes the image.
    out = ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "two"}])
    assert out["imageIds"] == [{"imageDigest": a.manifest_digest, "imageTag": "two"}]
    assert out["failures"] == []
    with raises("ImageNotFoundException"):
        ecr.describe_images(repositoryName=name, imageIds=[{"imageDigest": a.manifest_digest}])
    # By digest removes every tag of the image.
    out = ecr.batch_delete_image(
        repositoryName=name, imageIds=[{"imageDigest": c.manifest_digest, "imageTag": "sea"}]
    )
    assert out["failures"] == []
    assert ecr.list_images(repositoryName=name)["imageIds"] == []


def test_put_image_and_skopeo_share_one_path(registry, ecr, images, tmp_path: Path) -> None:
    """An image put with PutImage pulls byte-identical with skopeo, by tag and by digest."""
    a = images[0]
    name = unique("boto/put")
    push(registry, a, f"{name}:pushed")
    # The manifest skopeo pushed, re-tagged through the API.
    manifest = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "pushed"}])[
        "images"
    ][0]["imageManifest"]
    out = ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="via-api")["image"]
    assert out["imageId"] == {"imageDigest": a.manifest_digest, "imageTag": "via-api"}
    assert out["registryId"] == ACCOUNT and out["repositoryName"] == name
    assert out["imageManifest"] == manifest
    assert out["imageManifestMediaType"] == OCI_MANIFEST
    pull(registry, f"{name}:via-api", tmp_path / "via-api")
    digest, content = pulled_manifest(tmp_path / "via-api")
    assert (digest, content) == (a.manifest_digest, a.manifest)

    # A new Docker schema 2 manifest over the same blobs, put by digest only (untagged), with
    # its media type; its bytes (odd indentation included) come back exactly.
    docker = docker_manifest(a.config, a.layers)
    docker_digest = sha256(docker)
    out = ecr.put_image(
        repositoryName=name,
        imageManifest=docker.decode(),
        imageDigest=docker_digest,
        imageManifestMediaType=DOCKER_MANIFEST,
    )["image"]
    assert out["imageId"] == {"imageDigest": docker_digest}
    assert out["imageManifestMediaType"] == DOCKER_MANIFEST
    untagged = ecr.list_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})
    assert untagged["imageIds"] == [{"imageDigest": docker_digest}]
    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/{docker_digest}",
        headers={"Accept": DOCKER_MANIFEST},
    )
    assert response.status_code == 200
    assert response.content == docker
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == docker_digest
    pull(registry, f"{name}@{docker_digest}", tmp_path / "docker")
    assert pulled_manifest(tmp_path / "docker") == (docker_digest, docker)

    # Tag and digest together.
    out = ecr.put_image(
        repositoryName=name, imageManifest=docker.decode(), imageDigest=docker_digest, imageTag="d"
    )["image"]
    assert out["imageId"] == {"imageDigest": docker_digest, "imageTag": "d"}
    described = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "d"}])
    assert described["imageDetails"][0]["imageManifestMediaType"] == DOCKER_MANIFEST

    # The same manifest under a tag it already has.
    with raises("ImageAlreadyExistsException"):
        ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="via-api")
    # A digest that is not the manifest's.
    with raises("ImageDigestDoesNotMatchException"):
        ecr.put_image(
            repositoryName=name, imageManifest=manifest, imageDigest=sha256(b"other"), imageTag="x"
        )
    # Blobs the repository does not hold.
    ghost_layer = random_layer(100)
    ghost = docker_manifest(a.config, [ghost_layer])
    with raises("LayersNotFoundException") as info:
        ecr.put_image(repositoryName=name, imageManifest=ghost.decode(), imageTag="ghost")
    assert sha256(ghost_layer) in info.value.response["Error"]["Message"]
    with raises("InvalidParameterException"):
        ecr.put_image(repositoryName=name, imageManifest="{not json", imageTag="broken")
    # A manifest without a mediaType field needs imageManifestMediaType, as in ECR.
    bare = {k: v for k, v in json.loads(a.manifest).items() if k != "mediaType"}
    bare_text = json.dumps(bare)
    with raises("InvalidParameterException") as info:
        ecr.put_image(repositoryName=name, imageManifest=bare_text, imageTag="bare")
    assert "imageManifestMediaType" in info.value.response["Error"]["Message"]
    out = ecr.put_image(
        repositoryName=name,
        imageManifest=bare_text,
        imageTag="bare",
        imageManifestMediaType=OCI_MANIFEST,
    )["image"]
    assert out["imageId"]["imageDigest"] == sha256(bare_text.encode())
    # A declared type that contradicts the manifest's own.
    with raises("InvalidParameterException"):
        ecr.put_image(
            repositoryName=name,
            imageManifest=manifest,
            imageTag="contradiction",
            imageManifestMediaType=DOCKER_MANIFEST,
        )
    with raises("RepositoryNotFoundException"):
        ecr.put_image(repositoryName=unique("boto/nothing"), imageManifest=manifest, imageTag="x")


def test_put_image_immutable_tag(registry, ecr, images) -> None:
    a, b, c = images
    name = unique("boto/immutable")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    push(registry, a, f"{name}:src-a")
    push(registry, b, f"{name}:src-b")
    manifests = {img.manifest_digest: img.manifest.decode() for img in (a, b)}
    ecr.put_image(repositoryName=name, imageManifest=manifests[a.manifest_digest], imageTag="v1")
    with raises("ImageTagAlreadyExistsException") as info:
        ecr.put_image(
            repositoryName=name, imageManifest=manifests[b.manifest_digest], imageTag="v1"
        )
    assert "v1" in info.value.response["Error"]["Message"]
    tagged = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert tagged["imageDetails"][0]["imageDigest"] == a.manifest_digest
    # The data plane refuses the same overwrite.
    with raises("ImageTagAlreadyExistsException"):
        ecr.put_image(
            repositoryName=name, imageManifest=manifests[b.manifest_digest], imageTag="src-a"
        )
    failed = push(registry, b, f"{name}:v1", check=False)
    assert failed.returncode != 0
    # Named by digest and tag, the refused push leaves nothing behind (it once stored the
    # manifest untagged, in a first transaction, before the tag check failed). The image's
    # blobs are in the repository; the image itself is not.
    push(registry, c, f"{name}:src-c")
    ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "src-c"}])
    with raises("ImageTagAlreadyExistsException"):
        ecr.put_image(
            repositoryName=name,
            imageManifest=c.manifest.decode(),
            imageDigest=c.manifest_digest,
            imageTag="v1",
        )
    untagged = ecr.list_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})
    assert untagged["imageIds"] == []


def test_put_image_with_a_sha512_digest(registry, ecr, images) -> None:
    """One image, under the digest given, not a second one under its sha256."""
    a, _, _ = images
    name = unique("boto/sha512")
    ecr.create_repository(repositoryName=name)
    push(registry, a, f"{name}:src")
    ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "src"}])
    digest = "sha512:" + hashlib.sha512(a.manifest).hexdigest()
    out = ecr.put_image(
        repositoryName=name, imageManifest=a.manifest.decode(), imageDigest=digest, imageTag="t"
    )["image"]
    assert out["imageId"] == {"imageDigest": digest, "imageTag": "t"}
    assert ecr.list_images(repositoryName=name)["imageIds"] == [
        {"imageDigest": digest, "imageTag": "t"}
    ]
    response = registry.session().get(f"{registry.url}/v2/{name}/manifests/t")
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == a.manifest


# -- layers -----------------------------------------------------------------------------------


def _parts(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(i, data[i : i + size]) for i in range(0, len(data), size)]


def upload_blob(ecr, name: str, data: bytes, part: int = 1 << 20) -> str:
    upload = ecr.initiate_layer_upload(repositoryName=name)
    for first, chunk in _parts(data, part):
        ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    done = ecr.complete_layer_upload(
        repositoryName=name, uploadId=upload["uploadId"], layerDigests=[sha256(data)]
    )
    return done["layerDigest"]


def test_layer_upload_then_put_image_then_skopeo_pull(registry, ecr, tmp_path: Path) -> None:
    name = unique("boto/layers")
    ecr.create_repository(repositoryName=name)
    layer = random_layer(2_500_000)
    config = docker_config([layer])
    digest = sha256(layer)

    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[digest])
    assert checked["layers"] == [{"layerDigest": digest, "layerAvailability": "UNAVAILABLE"}]

    upload = ecr.initiate_layer_upload(repositoryName=name)
    assert upload["partSize"] > 0
    upload_id = upload["uploadId"]
    parts = _parts(layer, 1 << 20)
    assert len(parts) == 3
    first, chunk = parts[0]
    out = ecr.upload_layer_part(
        repositoryName=name,
        uploadId=upload_id,
        partFirstByte=first,
        partLastByte=len(chunk) - 1,
        layerPartBlob=chunk,
    )
    assert out == {
        **out,
        "registryId": ACCOUNT,
        "repositoryName": name,
        "uploadId": upload_id,
        "lastByteReceived": len(chunk) - 1,
    }
    # Skipping ahead (part 3 before part 2) is refused and says where the upload stands.
    skip_first, skip_chunk = parts[2]
    with raises("InvalidLayerPartException"):
        ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=skip_first,
            partLastByte=skip_first + len(skip_chunk) - 1,
            layerPartBlob=skip_chunk,
        )
    error = ecr.raw.errors["UploadLayerPart"]
    assert error["lastValidByteReceived"] == len(chunk) - 1
    assert error["uploadId"] == upload_id and error["repositoryName"] == name
    # A range that does not match the part's length is refused too.
    with raises("InvalidLayerPartException"):
        ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=parts[1][0],
            partLastByte=parts[1][0] + 10,
            layerPartBlob=parts[1][1],
        )
    for first, chunk in parts[1:]:
        out = ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    assert out["lastByteReceived"] == len(layer) - 1
    done = ecr.complete_layer_upload(repositoryName=name, uploadId=upload_id, layerDigests=[digest])
    assert done == {
        **done,
        "registryId": ACCOUNT,
        "repositoryName": name,
        "uploadId": upload_id,
        "layerDigest": digest,
    }
    config_digest = upload_blob(ecr, name, config)
    assert config_digest == sha256(config)
    # Uploading a layer the repository already holds: LayerAlreadyExistsException.
    with raises("LayerAlreadyExistsException"):
        upload_blob(ecr, name, config)
    # One large part (ECR allows up to 20 MiB per part; the JSON body is a third bigger).
    big = random_layer(7_000_000)
    assert upload_blob(ecr, name, big, part=len(big)) == sha256(big)

    checked = ecr.batch_check_layer_availability(
        repositoryName=name, layerDigests=[digest, config_digest, "sha256:zz"]
    )
    available = {entry["layerDigest"]: entry for entry in checked["layers"]}
    assert available[digest]["layerAvailability"] == "AVAILABLE"
    assert available[digest]["layerSize"] == len(layer)
    assert available[config_digest]["layerSize"] == len(config)
    assert [f["failureCode"] for f in checked["failures"]] == ["InvalidLayerDigest"]

    manifest = docker_manifest(config, [layer])
    ecr.put_image(repositoryName=name, imageManifest=manifest.decode(), imageTag="api")
    pull(registry, f"{name}:api", tmp_path / "pulled")
    pulled_digest, pulled = pulled_manifest(tmp_path / "pulled")
    assert (pulled_digest, pulled) == (sha256(manifest), manifest)
    assert pulled_blob(tmp_path / "pulled", digest) == layer
    assert pulled_blob(tmp_path / "pulled", config_digest) == config
    detail = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "api"}])
    assert detail["imageDetails"][0]["imageSizeInBytes"] == len(layer) + len(config)


def test_layer_upload_errors(ecr) -> None:
    name = unique("boto/layer-errors")
    ecr.create_repository(repositoryName=name)
    data = b"some layer bytes" * 100
    bogus = "a1b2c3d4-0000-4000-8000-000000000000"

    # A digest that is not the content's.
    upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=name,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    with raises("InvalidLayerException"):
        ecr.complete_layer_upload(
            repositoryName=name, uploadId=upload_id, layerDigests=[sha256(b"other")]
        )
    # An upload with no parts.
    empty_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    with raises("EmptyUploadException"):
        ecr.complete_layer_upload(
            repositoryName=name, uploadId=empty_id, layerDigests=[sha256(b"")]
        )
    # Unknown uploads.
    with raises("UploadNotFoundException"):
        ecr.complete_layer_upload(repositoryName=name, uploadId=bogus, layerDigests=[sha256(data)])
    with raises("UploadNotFoundException"):
        ecr.upload_layer_part(
            repositoryName=name,
            uploadId=bogus,
            partFirstByte=0,
            partLastByte=len(data) - 1,
            layerPartBlob=data,
        )
    # An upload belongs to its repository.
    other = unique("boto/layer-other")
    ecr.create_repository(repositoryName=other)
    mine = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    with raises("UploadNotFoundException"):
        ecr.upload_layer_part(
            repositoryName=other,
            uploadId=mine,
            partFirstByte=0,
            partLastByte=len(data) - 1,
            layerPartBlob=data,
        )
    with raises("RepositoryNotFoundException"):
        ecr.initiate_layer_upload(repositoryName=unique("boto/nothing"))
    with raises("RepositoryNotFoundException"):
        ecr.batch_check_layer_availability(
            repositoryName=unique("boto/nothing"), layerDigests=[sha256(data)]
        )


def test_get_download_url_for_layer(registry, ecr, populated) -> None:
    name, a = populated["name"], populated["a"]
    for blob in (a.config, *a.layers):
        digest = sha256(blob)
        out = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=digest)
        assert out["layerDigest"] == digest
        url = out["downloadUrl"]
        if storage_backend() == "s3":
            # As on ECR: the bucket's presigned GET of that blob's own key, for 20 minutes.
            endpoint = parse_url(registry.settings.storage_url).endpoint
            hexpart = digest.split(":")[1]
            assert url.startswith(f"{endpoint}/"), url
            assert urlsplit(url).path.endswith(f"/blobs/sha256/{hexpart[:2]}/{hexpart}"), url
            query = parse_qs(urlsplit(url).query)
            assert query["X-Amz-Signature"] and query["X-Amz-Credential"], url
            assert 0 < int(query["X-Amz-Expires"][0]) <= 20 * 60, url
        else:
            assert url.startswith(registry.url)
        fetched = requests.get(url, timeout=30)  # no credentials
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == blob
        assert hashlib.sha256(fetched.content).hexdigest() == digest.split(":")[1]

    with raises("LayersNotFoundException"):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest=sha256(b"no such layer"))
    with raises("InvalidParameterException"):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest="sha256:nothex")
    with raises("RepositoryNotFoundException"):
        ecr.get_download_url_for_layer(
            repositoryName=unique("boto/nothing"), layerDigest=sha256(a.config)
        )


def test_download_url_token_is_for_one_blob_only(registry, ecr, populated) -> None:
    if storage_backend() == "s3":
        pytest.skip(
            "on S3 the download URL is the bucket's presigned GET (as on ECR), not a registry "
            "URL: it carries no registry token to tamper with or reuse, and checking its "
            "signature is the object store's job (moto does not)"
        )
    name, a = populated["name"], populated["a"]
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=sha256(a.layers[-1]))[
        "downloadUrl"
    ]
    assert requests.get(url, timeout=30).content == a.layers[-1]
    # A tampered URL is refused.
    tampered = url[:-2] + ("A" if url[-2] != "A" else "B") + url[-1]
    assert requests.get(tampered, timeout=30).status_code == 401
    # The URL's token is for that blob only: not for another blob, not for a manifest, not
    # for another registry, and not a login (it would otherwise push and delete for 20 min).
    token = unquote(url.split("token=", 1)[1])
    other_blob = f"{registry.url}/v2/{name}/blobs/{sha256(a.config)}?token={quote(token)}"
    assert requests.get(other_blob, timeout=30).status_code == 401
    manifest_url = f"{registry.url}/v2/{name}/manifests/t1?token={quote(token)}"
    assert requests.get(manifest_url, timeout=30).status_code == 401
    moved = url.replace(f"registryId={ACCOUNT}", "registryId=111111111111")
    assert moved != url and requests.get(moved, timeout=30).status_code == 401
    as_login = requests.delete(
        f"{registry.url}/v2/{name}/manifests/{a.manifest_digest}", auth=("AWS", token)
    )
    assert as_login.status_code == 401
    assert requests.get(f"{registry.url}/v2/", auth=("AWS", token)).status_code == 401


# -- authorization tokens and SigV4 ---------------------------------------------------------------


def test_get_authorization_token(registry, ecr) -> None:
    before = time.time()
    data = ecr.get_authorization_token()["authorizationData"]
    assert len(data) == 1
    raw = ecr.raw.bodies["GetAuthorizationToken"]["authorizationData"][0]
    decoded = base64.b64decode(raw["authorizationToken"]).decode()
    user, _, token = decoded.partition(":")
    assert user == "AWS"
    assert ":" not in token
    assert isinstance(raw["expiresAt"], int | float)
    assert abs(raw["expiresAt"] - (before + 12 * 3600)) < 300
    assert raw["proxyEndpoint"] == registry.url
    # The token authenticates on /v2/ as user AWS, also passed through as the raw Basic value.
    assert requests.get(f"{registry.url}/v2/", auth=("AWS", token), timeout=30).ok
    headers = {"Authorization": f"Basic {raw['authorizationToken']}"}
    assert requests.get(f"{registry.url}/v2/", headers=headers, timeout=30).ok
    # Forged and tampered tokens are refused.
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", "1.x.y.z", ""):
        response = requests.get(f"{registry.url}/v2/", auth=("AWS", bad), timeout=30)
        assert response.status_code == 401, bad
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    # One entry per registry asked for.
    two = ecr.get_authorization_token(registryIds=[ACCOUNT, "111111111111"])
    endpoints = [d["proxyEndpoint"] for d in two["authorizationData"]]
    assert endpoints == [
        registry.url,
        f"http://111111111111.dkr.ecr.us-east-1.localhost:{registry.port}",
    ]
    with raises("InvalidParameterException"):
        ecr.get_authorization_token(registryIds=["12"])


def test_token_survives_restart(fresh_registry) -> None:
    ecr = client(fresh_registry)
    raw = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    token = base64.b64decode(raw).decode().split(":", 1)[1]
    url = f"{fresh_registry.url}/v2/"
    assert requests.get(url, auth=("AWS", token), timeout=30).status_code == 200
    fresh_registry.stop()
    fresh_registry.start()
    assert requests.get(url, auth=("AWS", token), timeout=30).status_code == 200
    # The restarted server still signs with the same keys: a new token verifies everywhere.
    again = client(fresh_registry).get_authorization_token()["authorizationData"][0]
    assert again["authorizationToken"]


def test_sigv4_errors(registry, monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = registry.credentials
    with raises("UnrecognizedClientException"):
        client(registry, "AKIAUNKNOWNKEY000000", secret).describe_registry()
    with raises("InvalidSignatureException") as info:
        client(registry, key, secret[:-1] + ("x" if secret[-1] != "x" else "y")).describe_registry()
    assert "signature" in info.value.response["Error"]["Message"].lower()

    # No Authorization header at all.
    response = requests.post(
        registry.url + "/",
        data="{}",
        headers={
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRegistry",
            "Content-Type": "application/x-amz-json-1.1",
        },
        timeout=30,
    )
    assert response.status_code in (400, 403)
    assert response.json()["__type"] == "MissingAuthenticationTokenException"
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"

    # Signed 20 minutes in the past, then 20 minutes in the future.
    for skew in (timedelta(minutes=-20), timedelta(minutes=20)):
        fake = datetime.now(UTC) + skew
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda fake=fake: fake)
        with raises("InvalidSignatureException") as info:
            client(registry).describe_registry()
        message = info.value.response["Error"]["Message"]
        assert "Signature expired" in message or "Signature not yet current" in message
    # Within 15 minutes is fine.
    fake = datetime.now(UTC) - timedelta(minutes=5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fake)
    assert client(registry).describe_registry()["registryId"] == ACCOUNT

    # An unknown operation, correctly signed.
    monkeypatch.undo()
    response = signed_post(registry, "DescribeNothing", {})
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"


# -- policies, tags, registry ---------------------------------------------------------------------


def test_repository_policy_lifecycle(ecr) -> None:
    name = unique("boto/policy")
    ecr.create_repository(repositoryName=name)
    with raises("RepositoryPolicyNotFoundException"):
        ecr.get_repository_policy(repositoryName=name)
    with raises("RepositoryPolicyNotFoundException"):
        ecr.delete_repository_policy(repositoryName=name)
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "pull",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                }
            ],
        }
    )
    out = ecr.set_repository_policy(repositoryName=name, policyText=policy)
    assert out == {**out, "registryId": ACCOUNT, "repositoryName": name, "policyText": policy}
    got = ecr.get_repository_policy(repositoryName=name)
    assert got["policyText"] == policy and got["repositoryName"] == name
    assert got["registryId"] == ACCOUNT
    gone = ecr.delete_repository_policy(repositoryName=name)
    assert gone["policyText"] == policy
    with raises("RepositoryPolicyNotFoundException"):
        ecr.get_repository_policy(repositoryName=name)

    # Invalid documents are refused with ECR's message (the reason is logged, not returned).
    cases = [
        "{not json",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}),
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "ecr:*"}],
            }
        ),
    ]
    for text in cases:
        with raises("InvalidParameterException") as info:
            ecr.set_repository_policy(repositoryName=name, policyText=text)
        assert info.value.response["Error"]["Message"] == (
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            "'Invalid repository policy provided'"
        )
    with raises("RepositoryNotFoundException"):
        ecr.set_repository_policy(repositoryName=unique("boto/nothing"), policyText=policy)


def test_registry_policy_lifecycle(fresh_registry) -> None:
    ecr = client(fresh_registry)
    with raises("RegistryPolicyNotFoundException"):
        ecr.get_registry_policy()
    with raises("RegistryPolicyNotFoundException"):
        ecr.delete_registry_policy()
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "replicate",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                    "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                    "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
                }
            ],
        }
    )
    out = ecr.put_registry_policy(policyText=policy)
    assert out == {
        "registryId": ACCOUNT,
        "policyText": policy,
        "ResponseMetadata": out["ResponseMetadata"],
    }
    assert ecr.get_registry_policy()["policyText"] == policy
    assert ecr.delete_registry_policy()["policyText"] == policy
    with raises("RegistryPolicyNotFoundException"):
        ecr.get_registry_policy()
    with raises("InvalidParameterException"):
        ecr.put_registry_policy(policyText="[]")


def test_tagging(ecr) -> None:
    name = unique("boto/tagging")
    arn = ecr.create_repository(repositoryName=name, tags=[{"Key": "a", "Value": "1"}])[
        "repository"
    ]["repositoryArn"]
    out = ecr.tag_resource(
        resourceArn=arn, tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "one"}]
    )
    assert set(out) == {"ResponseMetadata"}
    tags = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted(tags, key=lambda t: t["Key"]) == [
        {"Key": "a", "Value": "one"},
        {"Key": "b", "Value": "2"},
    ]
    ecr.untag_resource(resourceArn=arn, tagKeys=["a", "not-there"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]

    with raises("InvalidTagParameterException"):
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "aws:x", "Value": "y"}])
    with raises("TooManyTagsException"):
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": f"k{i}", "Value": ""} for i in range(50)])
    missing = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{unique('boto/nothing')}"
    with raises("RepositoryNotFoundException"):
        ecr.list_tags_for_resource(resourceArn=missing)
    with raises("RepositoryNotFoundException"):
        ecr.tag_resource(resourceArn=missing, tags=[{"Key": "k", "Value": "v"}])
    with raises("RepositoryNotFoundException"):
        ecr.untag_resource(resourceArn=missing, tagKeys=["k"])
    with raises("InvalidParameterException"):
        ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")


def test_describe_registry_and_scanning_configuration(ecr) -> None:
    out = ecr.describe_registry()
    assert out["registryId"] == ACCOUNT
    assert out["replicationConfiguration"] == {"rules": []}
    scanning = ecr.get_registry_scanning_configuration()
    assert scanning["registryId"] == ACCOUNT
    assert scanning["scanningConfiguration"]["scanType"] in ("BASIC", "ENHANCED")
    assert isinstance(scanning["scanningConfiguration"]["rules"], list)
