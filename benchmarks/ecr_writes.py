"""The ECR API's distinct write requests, prepared and signed for `benchmarks.ecr_replay`.

A write cannot be replayed: an upload part lands once at its offset, an upload completes once,
a manifest is put once. So each measured request is distinct and signed beforehand (SigV4 by
botocore, valid for AWS's 15 minutes), then wrk sends each once (`benchmarks.ecr_replay`).
What a request needs first (an upload to append to, a part to complete) is made beforehand,
outside the timed run, by a small asyncio client (`prepare_send`): only the preparation uses it.

InitiateLayerUpload has no such need: its one signed request is replayed by wrk like a read
(each call starts a new upload).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from benchmarks import client as cl
from benchmarks.scenarios import ScenarioError

REGION = "us-east-1"
TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CONNECTIONS = 32
PART_BYTES = 4096  # one small part per upload: the rate of calls is measured, not bandwidth

Signed = tuple[bytes, dict[str, str]]


def sign(url: str, operation: str, body: dict[str, Any], creds: tuple[str, str]) -> Signed:
    """One ECR request, signed: its body and headers."""
    data = json.dumps(body)
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET_PREFIX + operation,
        },
    )
    SigV4Auth(Credentials(*creds), "ecr", REGION).add_auth(request)
    headers = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in request.headers.items()
    }
    return data.encode(), headers


async def _send(url: str, requests: list[Signed]) -> list[Any]:
    """Send every request, CONNECTIONS at a time: their JSON answers, in order."""
    answers: list[Any] = [None] * len(requests)
    pending = iter(range(len(requests)))
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=60)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for i in pending:
                body, headers = requests[i]
                async with session.post(url + "/", data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise ScenarioError(f"HTTP {response.status}: {answer[:300]!r}")
                    answers[i] = json.loads(answer or b"{}")

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return answers


def prepare_send(url: str, requests: list[Signed]) -> list[Any]:
    """Send what a measured request needs first (not timed): the answers."""
    return asyncio.run(_send(url, requests))


def _initiate(url: str, repo: str, count: int, creds: tuple[str, str]) -> list[str]:
    one = sign(url, "InitiateLayerUpload", {"repositoryName": repo}, creds)
    answers = prepare_send(url, [one] * count)
    return [a["uploadId"] for a in answers]


def _part(repo: str, upload_id: str, data: bytes) -> dict[str, Any]:
    return {
        "repositoryName": repo,
        "uploadId": upload_id,
        "partFirstByte": 0,
        "partLastByte": len(data) - 1,
        "layerPartBlob": base64.b64encode(data).decode(),
    }


def upload_layer_part(
    url: str, repo: str, count: int, creds: tuple[str, str], _image: cl.SmallImage
) -> list[Signed]:
    """`count` parts, each the first and only part of an upload of its own."""
    uploads = _initiate(url, repo, count, creds)
    return [
        sign(url, "UploadLayerPart", _part(repo, u, os.urandom(PART_BYTES)), creds) for u in uploads
    ]


def complete_layer_upload(
    url: str, repo: str, count: int, creds: tuple[str, str], _image: cl.SmallImage
) -> list[Signed]:
    """`count` uploads holding a distinct layer each, ready to complete."""
    uploads = _initiate(url, repo, count, creds)
    layers = [os.urandom(PART_BYTES) for _ in uploads]
    parts = zip(uploads, layers, strict=True)
    prepare_send(url, [sign(url, "UploadLayerPart", _part(repo, u, d), creds) for u, d in parts])
    return [
        sign(
            url,
            "CompleteLayerUpload",
            {
                "repositoryName": repo,
                "uploadId": u,
                "layerDigests": ["sha256:" + hashlib.sha256(d).hexdigest()],
            },
            creds,
        )
        for u, d in zip(uploads, layers, strict=True)
    ]


def put_image(
    url: str, repo: str, count: int, creds: tuple[str, str], image: cl.SmallImage
) -> list[Signed]:
    """`count` distinct images (one annotation apart) on the seeded image's config and layer
    (already in `repo`), each under a new tag."""
    return [
        sign(
            url,
            "PutImage",
            {
                "repositoryName": repo,
                "imageTag": f"w{i}",
                "imageManifest": cl.manifest_for(
                    image.config, image.layers, {"bench.n": f"{repo}/{i}"}
                ).decode(),
            },
            creds,
        )
        for i in range(count)
    ]


Prepare = Callable[[str, str, int, tuple[str, str], cl.SmallImage], list[Signed]]


@dataclass(frozen=True)
class Write:
    """How an operation's distinct requests are prepared, and how many a run sends.

    `full` makes cargobay's timed run last ~3 s or more at its rate under wrk (the warm-up
    sends a fifth more first). `per_repository` spreads the requests over fresh repositories
    of that many: moto scans a repository's every image on each PutImage (~0.1 µs an image,
    700 µs a call at 7,200 images), so one repository growing by thousands would measure the
    count chosen here rather than the server.
    """

    prepare: Prepare
    full: int
    quick: int
    per_repository: int | None = None


PREPARE: dict[str, Write] = {
    "UploadLayerPart": Write(upload_layer_part, 5000, 300),
    "CompleteLayerUpload": Write(complete_layer_upload, 2000, 150),
    "PutImage": Write(put_image, 6000, 60, per_repository=500),
}
