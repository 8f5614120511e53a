"""Door parity: the same inputs through `/v2/` and through the ECR API give the same stored
state and equivalent errors (the same domain error, as each door's table renders it).

Each case runs twice, once per door, on its own repository holding identical content, then
compares what the services hold. Pairs: PUT manifest / PutImage, DELETE / BatchDeleteImage,
GET manifest / BatchGetImage, blob upload / the layer-upload API.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cargobay import errors
from cargobay.distribution.errors import OCI_ERRORS
from cargobay.ecr.errors import ECR_ERRORS, IMAGE_FAILURES
from service.harness import OCI_INDEX, OCI_MANIFEST, Registry, Reply, index_of, running, sha256
from service.harness import sha512 as sha512_of

pytestmark = pytest.mark.backend
ACCOUNT = "000000000000"
SEED = b"parity"


async def stored(registry: Registry, name: str) -> list[tuple[Any, ...]]:
    """What a repository holds: each image with its tags, type and sizes."""
    repo = await registry.services.repositories.get(ACCOUNT, name)
    rows = await registry.services.images.describe(repo)
    return [(r.digest, r.tags, r.media_type, r.size, r.image_size) for r in rows]


def same_error(v2: Reply, ecr: Reply, expected: type[errors.DomainError]) -> None:
    """Both doors answered with `expected`, each in its own words."""
    code, status = OCI_ERRORS[expected]
    assert (v2.status, v2.oci_code) == (status, code), v2
    assert ecr.status == 400 and ecr.aws_type == ECR_ERRORS[expected], ecr


def same_failure(v2: Reply, ecr: Reply, expected: type[errors.DomainError]) -> None:
    """A batch ECR call reports per image; `/v2/` answers the error itself."""
    code, status = OCI_ERRORS[expected]
    assert (v2.status, v2.oci_code) == (status, code), v2
    failures = ecr.json()["failures"]
    assert [f["failureCode"] for f in failures] == [IMAGE_FAILURES[expected][0]], ecr


async def v2_put(registry: Registry, repo: str, ref: str, manifest: bytes, media=OCI_MANIFEST):
    return await registry.v2("PUT", f"{repo}/manifests/{ref}", manifest, {"Content-Type": media})


async def ecr_put(registry: Registry, repo: str, manifest: bytes, **ids: str) -> Reply:
    return await registry.ecr(
        "PutImage", {"repositoryName": repo, "imageManifest": manifest.decode(), **ids}
    )


Case = Callable[[Registry], Awaitable[None]]


def _run(tmp_path: Path, case: Case) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            for name in ("v2", "ecr"):
                created = await registry.ecr("CreateRepository", {"repositoryName": name})
                assert created.status == 200, created
            await case(registry)

    asyncio.run(scenario())


# -- PUT manifest / PutImage --------------------------------------------------------------------


def test_push_by_tag(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        for repo in ("v2", "ecr"):
            manifest = await registry.image(repo, SEED)
        assert (await v2_put(registry, "v2", "t", manifest)).status == 201
        assert (await ecr_put(registry, "ecr", manifest, imageTag="t")).status == 200
        assert await stored(registry, "v2") == await stored(registry, "ecr")

    _run(tmp_path, case)


def test_push_by_sha512_digest_and_tag(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        for repo in ("v2", "ecr"):
            manifest = await registry.image(repo, SEED)
        digest = sha512_of(manifest)
        v2 = await v2_put(registry, "v2", digest, manifest)
        assert v2.status == 201 and v2.headers["Docker-Content-Digest"] == digest
        assert (await v2_put(registry, "v2", "t", manifest)).status == 201
        ecr = await ecr_put(registry, "ecr", manifest, imageDigest=digest, imageTag="t")
        assert ecr.json()["image"]["imageId"]["imageDigest"] == digest
        # `/v2/` stored it under both digests (sha512 by digest, sha256 by tag); ECR, given
        # both, stores one image under the digest it was given.
        v2_state, ecr_state = await stored(registry, "v2"), await stored(registry, "ecr")
        assert [row for row in v2_state if row[0] == digest] == [
            (digest, [], OCI_MANIFEST, len(manifest), ecr_state[0][4])
        ]
        assert ecr_state == [(digest, ["t"], OCI_MANIFEST, len(manifest), ecr_state[0][4])]

    _run(tmp_path, case)


def test_push_over_an_immutable_tag(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        for repo in ("v2", "ecr"):
            await registry.ecr(
                "PutImageTagMutability",
                {"repositoryName": repo, "imageTagMutability": "IMMUTABLE"},
            )
            first = await registry.image(repo, SEED)
            second = await registry.image(repo, SEED + b"2")
        assert (await v2_put(registry, "v2", "v1", first)).status == 201
        assert (await ecr_put(registry, "ecr", first, imageTag="v1")).status == 200
        v2 = await v2_put(registry, "v2", "v1", second)
        ecr = await ecr_put(registry, "ecr", second, imageTag="v1")
        same_error(v2, ecr, errors.ImageTagAlreadyExists)
        assert await stored(registry, "v2") == await stored(registry, "ecr")

    _run(tmp_path, case)


def test_push_with_missing_layers(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        body = json.loads(await registry.image("v2", SEED))
        body["layers"].append({"mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 6})
        manifest = json.dumps(body).encode()
        await registry.image("ecr", SEED)
        v2 = await v2_put(registry, "v2", "t", manifest)
        ecr = await ecr_put(registry, "ecr", manifest, imageTag="t")
        same_error(v2, ecr, errors.LayersNotFound)
        assert await stored(registry, "v2") == await stored(registry, "ecr") == []

    _run(tmp_path, case)


def test_push_an_index_with_a_missing_child(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        index = index_of(b'{"not": "pushed"}')
        v2 = await v2_put(registry, "v2", "idx", index, OCI_INDEX)
        ecr = await ecr_put(registry, "ecr", index, imageTag="idx")
        same_error(v2, ecr, errors.ReferencedImagesNotFound)

    _run(tmp_path, case)


def test_push_under_a_digest_that_is_not_the_content_s(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        for repo in ("v2", "ecr"):
            manifest = await registry.image(repo, SEED)
        wrong = sha256(manifest + b"\n")
        v2 = await v2_put(registry, "v2", wrong, manifest)
        ecr = await ecr_put(registry, "ecr", manifest, imageDigest=wrong)
        same_error(v2, ecr, errors.ImageDigestDoesNotMatch)
        assert await stored(registry, "v2") == await stored(registry, "ecr") == []

    _run(tmp_path, case)


# -- DELETE / BatchDeleteImage, GET / BatchGetImage ---------------------------------------------


async def _index_with_child(registry: Registry) -> tuple[bytes, bytes]:
    for repo in ("v2", "ecr"):
        child = await registry.image(repo, SEED)
        assert (await v2_put(registry, repo, sha256(child), child)).status == 201
        index = index_of(child)
        assert (await v2_put(registry, repo, "all", index, OCI_INDEX)).status == 201
    return child, index


def test_delete_an_index_child_then_the_index(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        child, index = await _index_with_child(registry)
        v2 = await registry.v2("DELETE", f"v2/manifests/{sha256(child)}")
        ecr = await registry.ecr(
            "BatchDeleteImage",
            {"repositoryName": "ecr", "imageIds": [{"imageDigest": sha256(child)}]},
        )
        same_failure(v2, ecr, errors.ImageReferencedByManifestList)
        assert await stored(registry, "v2") == await stored(registry, "ecr")
        for digest in (sha256(index), sha256(child)):
            assert (await registry.v2("DELETE", f"v2/manifests/{digest}")).status == 202
            ecr = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "ecr", "imageIds": [{"imageDigest": digest}]},
            )
            assert ecr.json()["imageIds"] == [{"imageDigest": digest}]
        assert await stored(registry, "v2") == await stored(registry, "ecr") == []
        v2 = await registry.v2("DELETE", f"v2/manifests/{sha256(child)}")
        ecr = await registry.ecr(
            "BatchDeleteImage",
            {"repositoryName": "ecr", "imageIds": [{"imageDigest": sha256(child)}]},
        )
        same_failure(v2, ecr, errors.ImageNotFound)

    _run(tmp_path, case)


def test_get_by_tag_by_digest_and_missing(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        child, _ = await _index_with_child(registry)
        for reference, key in ((sha256(child), "imageDigest"), ("all", "imageTag")):
            v2 = await registry.v2("GET", f"v2/manifests/{reference}")
            ecr = await registry.ecr(
                "BatchGetImage", {"repositoryName": "ecr", "imageIds": [{key: reference}]}
            )
            image = ecr.json()["images"][0]
            assert v2.body == image["imageManifest"].encode()
            assert v2.headers["Content-Type"] == image["imageManifestMediaType"]
            assert v2.headers["Docker-Content-Digest"] == image["imageId"]["imageDigest"]
        missing = sha256(b"nothing")
        v2 = await registry.v2("GET", f"v2/manifests/{missing}")
        ecr = await registry.ecr(
            "BatchGetImage", {"repositoryName": "ecr", "imageIds": [{"imageDigest": missing}]}
        )
        same_failure(v2, ecr, errors.ImageNotFound)

    _run(tmp_path, case)


# -- blob upload / layer-upload API -------------------------------------------------------------


async def _v2_upload(registry: Registry, data: bytes, digest: str) -> Reply:
    start = await registry.v2("POST", "v2/blobs/uploads/")
    location = start.headers["Location"].removeprefix("/v2/")
    patched = await registry.v2("PATCH", location, data, {"Content-Range": f"0-{len(data) - 1}"})
    assert patched.status == 202, patched
    return await registry.v2("PUT", location, params={"digest": digest})


async def _ecr_upload(registry: Registry, data: bytes, digest: str) -> Reply:
    upload_id = (await registry.ecr("InitiateLayerUpload", {"repositoryName": "ecr"})).json()[
        "uploadId"
    ]
    part = {
        "repositoryName": "ecr",
        "uploadId": upload_id,
        "partFirstByte": 0,
        "partLastByte": len(data) - 1,
        "layerPartBlob": base64.b64encode(data).decode(),
    }
    assert (await registry.ecr("UploadLayerPart", part)).status == 200
    return await registry.ecr(
        "CompleteLayerUpload",
        {"repositoryName": "ecr", "uploadId": upload_id, "layerDigests": [digest]},
    )


async def _blob_state(registry: Registry, repo: str, digest: str) -> int | None:
    service = registry.services
    try:
        info = await service.blobs.stat(await service.repositories.get(ACCOUNT, repo), digest)
    except errors.BlobUnknown:
        return None
    return info.size


def test_upload_a_layer(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        data = b"layer bytes " * 100
        assert (await _v2_upload(registry, data, sha256(data))).status == 201
        ecr = await _ecr_upload(registry, data, sha256(data))
        assert ecr.json()["layerDigest"] == sha256(data)
        assert await _blob_state(registry, "v2", sha256(data)) == len(data)
        assert await _blob_state(registry, "ecr", sha256(data)) == len(data)

    _run(tmp_path, case)


def test_upload_under_the_wrong_digest(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        data, wrong = b"some layer", sha256(b"another layer")
        v2 = await _v2_upload(registry, data, wrong)
        ecr = await _ecr_upload(registry, data, wrong)
        assert (v2.status, v2.oci_code) == OCI_ERRORS[errors.LayerDigestMismatch][::-1]
        assert ecr.aws_type == ECR_ERRORS[errors.LayerDigestMismatch]
        assert await _blob_state(registry, "v2", wrong) is None
        assert await _blob_state(registry, "ecr", wrong) is None

    _run(tmp_path, case)


def test_upload_a_part_at_the_wrong_offset_and_to_an_unknown_upload(tmp_path: Path) -> None:
    async def case(registry: Registry) -> None:
        start = await registry.v2("POST", "v2/blobs/uploads/")
        location = start.headers["Location"].removeprefix("/v2/")
        v2 = await registry.v2("PATCH", location, b"abc", {"Content-Range": "5-7"})
        upload_id = (await registry.ecr("InitiateLayerUpload", {"repositoryName": "ecr"})).json()[
            "uploadId"
        ]
        part = {
            "repositoryName": "ecr",
            "uploadId": upload_id,
            "partFirstByte": 5,
            "partLastByte": 7,
            "layerPartBlob": base64.b64encode(b"abc").decode(),
        }
        ecr = await registry.ecr("UploadLayerPart", part)
        same_error(v2, ecr, errors.RangeInvalid)
        unknown = "a1b2c3d4-0000-4000-8000-000000000000"
        v2 = await registry.v2("PATCH", f"v2/blobs/uploads/{unknown}", b"abc")
        ecr = await registry.ecr("UploadLayerPart", {**part, "uploadId": unknown})
        same_error(v2, ecr, errors.UploadNotFound)

    _run(tmp_path, case)
