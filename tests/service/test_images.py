"""The image services, in-process: one put_image and one delete path, whatever door calls them.

Each test here failed before the services were unified (two transactions in PutImage, a
delete on `/v2/` that ignored the parent index, a size setting that changed nothing)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cargobay.errors import (
    ImageAlreadyExists,
    ImageDigestDoesNotMatch,
    ImageReferencedByManifestList,
    ImageTagAlreadyExists,
    PayloadTooLarge,
)
from cargobay.registry.deletes import ImageRef
from service.harness import OCI_MANIFEST, index_of, running, sha256, sha512

pytestmark = pytest.mark.backend


def test_put_image_with_a_sha512_digest_and_a_tag_stores_one_image(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            manifest = await registry.image("app")
            reply = await registry.ecr(
                "PutImage",
                {
                    "repositoryName": "app",
                    "imageManifest": manifest.decode(),
                    "imageDigest": sha512(manifest),
                    "imageTag": "t",
                },
            )
            assert reply.status == 200, reply
            assert reply.json()["image"]["imageId"] == {
                "imageDigest": sha512(manifest),
                "imageTag": "t",
            }
            listed = (await registry.ecr("ListImages", {"repositoryName": "app"})).json()
            assert listed["imageIds"] == [{"imageDigest": sha512(manifest), "imageTag": "t"}]

    asyncio.run(scenario())


def test_a_refused_immutable_push_leaves_no_untagged_manifest(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            created = await registry.ecr(
                "CreateRepository",
                {"repositoryName": "frozen", "imageTagMutability": "IMMUTABLE"},
            )
            assert created.status == 200, created
            first, second = await registry.image("frozen"), await registry.image("frozen")
            put = {"repositoryName": "frozen", "imageTag": "v1"}
            ok = await registry.ecr("PutImage", {**put, "imageManifest": first.decode()})
            assert ok.status == 200, ok
            # With a digest and a tag: once two transactions, the first of which stayed.
            refused = await registry.ecr(
                "PutImage",
                {**put, "imageManifest": second.decode(), "imageDigest": sha256(second)},
            )
            assert refused.aws_type == "ImageTagAlreadyExistsException"
            # The same through `/v2/`: refused, and nothing half-stored.
            v2 = await registry.v2(
                "PUT", "frozen/manifests/v1", second, {"Content-Type": OCI_MANIFEST}
            )
            assert (v2.status, v2.oci_code) == (400, "TAG_INVALID")
            listed = (await registry.ecr("ListImages", {"repositoryName": "frozen"})).json()
            assert listed["imageIds"] == [{"imageDigest": sha256(first), "imageTag": "v1"}]

    asyncio.run(scenario())


def test_put_image_rules_live_in_the_service(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            manifest = await registry.image("svc")
            repo = await services.repositories.get("000000000000", "svc")
            put = services.manifests.put_image
            result = await put(repo, manifest, None, sha256(manifest), "a")
            assert (result.digest, result.created) == (sha256(manifest), True)
            with pytest.raises(ImageAlreadyExists):
                await put(repo, manifest, None, tag="a", refuse_existing=True)
            # The `/v2/` PUT is idempotent: the same call without refuse_existing is fine.
            assert (await put(repo, manifest, None, tag="a")).created is False
            with pytest.raises(ImageDigestDoesNotMatch):
                await put(repo, manifest, None, sha256(manifest + b" "))
            await services.repositories.update(repo, tag_mutability="IMMUTABLE")
            repo = await services.repositories.get("000000000000", "svc")
            other = await registry.image("svc")
            with pytest.raises(ImageTagAlreadyExists):
                await put(repo, other, None, tag="a")
            assert await services.manifests.count(repo) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("door", ["v2", "ecr"])
def test_max_manifest_bytes_is_the_limit_on_both_doors(tmp_path: Path, door: str) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_manifest_bytes=2048) as registry:
            manifest = json.loads(await registry.image("small"))
            manifest["annotations"] = {"pad": "p" * 1500}
            fits = json.dumps(manifest).encode()
            manifest["annotations"] = {"pad": "p" * 2500}
            too_big = json.dumps(manifest).encode()
            assert len(fits) <= 2048 < len(too_big)
            if door == "v2":
                ok = await registry.v2(
                    "PUT", "small/manifests/fits", fits, {"Content-Type": OCI_MANIFEST}
                )
                assert ok.status == 201, ok
                big = await registry.v2(
                    "PUT", "small/manifests/big", too_big, {"Content-Type": OCI_MANIFEST}
                )
                assert (big.status, big.oci_code) == (413, "SIZE_INVALID")
            else:
                put = {"repositoryName": "small", "imageTag": "fits"}
                ok = await registry.ecr("PutImage", {**put, "imageManifest": fits.decode()})
                assert ok.status == 200, ok
                put["imageTag"] = "big"
                big = await registry.ecr("PutImage", {**put, "imageManifest": too_big.decode()})
                assert (big.status, big.aws_type) == (400, "InvalidParameterException")
            repo = await registry.services.repositories.get("000000000000", "small")
            assert await registry.services.manifests.count(repo) == 1
            with pytest.raises(PayloadTooLarge):
                await registry.services.manifests.put_image(repo, too_big, None)

    asyncio.run(scenario())


def test_an_index_child_cannot_be_deleted_through_v2(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            child = await registry.image("multi")
            put = await registry.v2(
                "PUT", f"multi/manifests/{sha256(child)}", child, {"Content-Type": OCI_MANIFEST}
            )
            assert put.status == 201, put
            index = index_of(child)
            put = await registry.v2(
                "PUT",
                "multi/manifests/all",
                index,
                {"Content-Type": "application/vnd.oci.image.index.v1+json"},
            )
            assert put.status == 201, put
            refused = await registry.v2("DELETE", f"multi/manifests/{sha256(child)}")
            assert (refused.status, refused.oci_code) == (409, "MANIFEST_REFERENCED")
            assert (await registry.v2("GET", f"multi/manifests/{sha256(child)}")).status == 200
            # Once the index is gone, the child can go.
            assert (await registry.v2("DELETE", f"multi/manifests/{sha256(index)}")).status == 202
            assert (await registry.v2("DELETE", f"multi/manifests/{sha256(child)}")).status == 202
            repo = await registry.services.repositories.get("000000000000", "multi")
            assert await registry.services.manifests.count(repo) == 0

    asyncio.run(scenario())


def test_delete_service_untag_rule(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            manifest = await registry.image("tags")
            repo = await services.repositories.get("000000000000", "tags")
            await services.manifests.put_image(repo, manifest, None, tag="a")
            await services.manifests.put_image(repo, manifest, None, tag="b")
            deletes = services.deletes
            # Naming one of two tags removes only that tag; the last tag takes the image.
            assert await deletes.delete_image(repo, ImageRef(tag="a")) == ImageRef(
                sha256(manifest), "a"
            )
            assert await services.manifests.count(repo) == 1
            await deletes.delete_image(repo, ImageRef(tag="b"))
            assert await services.manifests.count(repo) == 0
            outcomes = await deletes.delete_images(repo, [ImageRef(tag="b"), ImageRef()])
            assert [type(o.error).__name__ for o in outcomes] == [
                "ImageNotFound",
                "MissingDigestAndTag",
            ]
            child = await registry.image("tags")
            await services.manifests.put_image(repo, child, None)
            await services.manifests.put_image(repo, index_of(child), None, tag="idx")
            with pytest.raises(ImageReferencedByManifestList):
                await deletes.delete_image(repo, ImageRef(digest=sha256(child)))

    asyncio.run(scenario())
