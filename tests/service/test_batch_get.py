"""BatchGetImage answers a batch as it answers each of its image ids alone (it now reads the
whole batch in two queries instead of two per image): the same images, and the same failures,
in the order asked, whatever each id's trouble."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service.harness import index_of, running, sha256

pytestmark = pytest.mark.backend

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def test_a_batch_answers_as_its_images_one_by_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            one = await registry.image("app")
            two = await registry.image("app")
            archived = await registry.image("app")
            index = index_of(one, two)
            for manifest, tag in ((one, "one"), (two, "two"), (archived, "old"), (index, "all")):
                media_type = OCI_MANIFEST if manifest is not index else None
                reply = await registry.ecr(
                    "PutImage",
                    {
                        "repositoryName": "app",
                        "imageManifest": manifest.decode(),
                        "imageTag": tag,
                        **({"imageManifestMediaType": media_type} if media_type else {}),
                    },
                )
                assert reply.status == 200, reply
            reply = await registry.ecr(
                "UpdateImageStorageClass",
                {
                    "repositoryName": "app",
                    "imageId": {"imageDigest": sha256(archived)},
                    "targetStorageClass": "ARCHIVE",
                },
            )
            assert reply.status == 200, reply
            ids: list[dict[str, Any]] = [
                {"imageTag": "one"},
                {"imageDigest": sha256(two)},
                {"imageTag": "one", "imageDigest": sha256(one)},
                {"imageTag": "one", "imageDigest": sha256(two)},  # the tag names another
                {"imageTag": "missing"},
                {"imageDigest": "sha256:" + "0" * 64},  # well-formed, absent
                {"imageDigest": "sha256:nothex"},  # malformed
                {},  # neither
                {"imageTag": "old"},  # archived
                {"imageDigest": sha256(archived)},
                {"imageTag": "all"},
                {"imageTag": "one"},  # again
            ]
            for accepted in (None, [OCI_MANIFEST], [DOCKER_MANIFEST]):
                extra = {} if accepted is None else {"acceptedMediaTypes": accepted}
                batch = await registry.ecr(
                    "BatchGetImage", {"repositoryName": "app", "imageIds": ids, **extra}
                )
                assert batch.status == 200, batch
                got = batch.json()
                images, failures = [], []
                for image_id in ids:
                    alone = await registry.ecr(
                        "BatchGetImage",
                        {"repositoryName": "app", "imageIds": [image_id], **extra},
                    )
                    assert alone.status == 200, alone
                    images += alone.json()["images"]
                    failures += alone.json()["failures"]
                assert got["images"] == images
                assert got["failures"] == failures
                if accepted is None:
                    assert [(i["imageId"], i["imageManifest"]) for i in images] == [
                        ({"imageDigest": sha256(one), "imageTag": "one"}, one.decode()),
                        ({"imageDigest": sha256(two)}, two.decode()),
                        ({"imageDigest": sha256(one), "imageTag": "one"}, one.decode()),
                        ({"imageDigest": sha256(index), "imageTag": "all"}, index.decode()),
                        ({"imageDigest": sha256(one), "imageTag": "one"}, one.decode()),
                    ]
                    assert [f["failureCode"] for f in failures] == [
                        "ImageTagDoesNotMatchDigest",
                        "ImageNotFound",
                        "ImageNotFound",
                        "InvalidImageDigest",
                        "MissingDigestAndTag",
                        "ImageInaccessible",
                        "ImageInaccessible",
                    ]
                    assert "archived" in failures[-1]["failureReason"]

    asyncio.run(scenario())
