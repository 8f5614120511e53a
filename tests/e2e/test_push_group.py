"""Concurrent pushes against a real server (two workers), whose pushes share write
transactions on SQLite (`registry.pushgroup`): boto3's PutImage from many threads at once,
some refused by an immutable tag. Every push that was answered is stored and pullable, and
every refused one left nothing and got ECR's error (its statements rolled back to its
savepoint, the others of its transaction committed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import client, unique
from e2e.ocihttp import Client
from server import Server

pytestmark = pytest.mark.backend

PUSHES = 40
REFUSED = {7, 19, 31}  # these push under the immutable tag already taken


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("push-group") / "data", workers=2).start()
    yield started
    started.discard()


def _manifest(base: bytes, n: int) -> str:
    manifest = json.loads(base)
    manifest["annotations"] = {"push": str(n)}
    return json.dumps(manifest)


def test_concurrent_put_images_each_answered_as_stored(server: Server) -> None:
    name = unique("group/app")
    ecr = client(server)
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    base = Client(server).push_image(name, "taken", layer_sizes=(64,))

    def put(n: int) -> Any:
        tag = "taken" if n in REFUSED else f"t{n}"
        try:
            return client(server).put_image(
                repositoryName=name, imageTag=tag, imageManifest=_manifest(base.manifest, n)
            )["image"]
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(put, range(PUSHES)))

    for n, answer in enumerate(answers):
        if n in REFUSED:
            assert answer == "ImageTagAlreadyExistsException"
        else:
            assert answer["imageId"]["imageTag"] == f"t{n}", answer
    details = ecr.describe_images(repositoryName=name)["imageDetails"]
    tags = {tag for detail in details for tag in detail.get("imageTags", [])}
    assert tags == {"taken"} | {f"t{n}" for n in range(PUSHES) if n not in REFUSED}
    # The refused pushes left no manifest (untagged) behind.
    assert len(details) == 1 + PUSHES - len(REFUSED)
    found = ecr.batch_get_image(
        repositoryName=name,
        imageIds=[{"imageTag": f"t{n}"} for n in range(PUSHES) if n not in REFUSED],
    )
    assert not found["failures"]
    for image in found["images"]:
        pushed = json.loads(image["imageManifest"])["annotations"]["push"]
        assert image["imageId"]["imageTag"] == f"t{pushed}"
