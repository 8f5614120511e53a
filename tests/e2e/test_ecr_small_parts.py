"""Layer uploads in small parts (each at most the filesystem store's SMALL_BODY, written on the
event loop with no thread hand-off and no lease renewal task), through boto3 against a real
`cargobay serve` with its worker processes: resumed after a refused part, raced by concurrent
parts to one upload, completed, then pulled by skopeo byte for byte. The `/v2/` chunked upload
shares the path and is checked the same way."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import client, pull, pulled_blob, raises, unique
from imagebuilder import random_layer, sha256

pytestmark = pytest.mark.backend

PART = 40_000  # well under SMALL_BODY (128 KiB): every part takes the small-body path


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


def _part(ecr, name: str, upload_id: str, first: int, data: bytes) -> dict:
    return ecr.upload_layer_part(
        repositoryName=name,
        uploadId=upload_id,
        partFirstByte=first,
        partLastByte=first + len(data) - 1,
        layerPartBlob=data,
    )


def _manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": sha256(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": sha256(layer),
                }
            ],
        }
    ).encode()


def _config(layer: bytes) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()


def _upload(ecr, name: str, data: bytes) -> str:
    upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    for first in range(0, len(data), PART):
        _part(ecr, name, upload_id, first, data[first : first + PART])
    return ecr.complete_layer_upload(
        repositoryName=name, uploadId=upload_id, layerDigests=[sha256(data)]
    )["layerDigest"]


def test_small_parts_resume_after_a_refused_part_and_pull_back(
    registry, ecr, tmp_path: Path
) -> None:
    name = unique("parts/small")
    ecr.create_repository(repositoryName=name)
    layer = random_layer(5 * PART + 1234)
    upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    chunks = [(i, layer[i : i + PART]) for i in range(0, len(layer), PART)]
    for first, chunk in chunks[:2]:
        out = _part(ecr, name, upload_id, first, chunk)
        assert out["lastByteReceived"] == first + len(chunk) - 1
    # A part that repeats the last one: refused, saying where the upload stands.
    with raises("InvalidLayerPartException"):
        _part(ecr, name, upload_id, chunks[1][0], chunks[1][1])
    error = ecr.raw.errors["UploadLayerPart"]
    assert error["lastValidByteReceived"] == 2 * PART - 1
    assert error["uploadId"] == upload_id
    for first, chunk in chunks[2:]:
        _part(ecr, name, upload_id, first, chunk)
    done = ecr.complete_layer_upload(
        repositoryName=name, uploadId=upload_id, layerDigests=[sha256(layer)]
    )
    assert done["layerDigest"] == sha256(layer)
    # The completed upload is gone: a second completion finds nothing.
    with raises("UploadNotFoundException"):
        ecr.complete_layer_upload(
            repositoryName=name, uploadId=upload_id, layerDigests=[sha256(layer)]
        )

    config = _config(layer)
    assert _upload(ecr, name, config) == sha256(config)
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[sha256(layer)])
    assert checked["layers"][0]["layerSize"] == len(layer)
    manifest = _manifest(config, layer)
    ecr.put_image(repositoryName=name, imageManifest=manifest.decode(), imageTag="small")
    pull(registry, f"{name}:small", tmp_path / "pulled")
    assert pulled_blob(tmp_path / "pulled", sha256(layer)) == layer
    assert pulled_blob(tmp_path / "pulled", sha256(config)) == config


def test_concurrent_parts_to_one_upload_land_once(registry, ecr) -> None:
    """Parts racing for the same offset of one upload (on any of the server's workers): one
    lands, every other is refused, and the layer completes from the bytes that landed, never
    from a mix (read back from the registry, not from any worker's hash state)."""
    name = unique("parts/race")
    ecr.create_repository(repositoryName=name)
    session = registry.session()
    for _ in range(3):
        upload_id = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
        candidates = [os.urandom(PART) for _ in range(8)]

        def send(data: bytes, upload_id: str = upload_id) -> bytes | None:
            try:
                _part(ecr, name, upload_id, 0, data)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "InvalidLayerPartException"
                return None
            return data

        with ThreadPoolExecutor(len(candidates)) as pool:
            landed = [d for d in pool.map(send, candidates) if d is not None]
        assert len(landed) == 1
        digest = sha256(landed[0])
        done = ecr.complete_layer_upload(
            repositoryName=name, uploadId=upload_id, layerDigests=[digest]
        )
        assert done["layerDigest"] == digest
        fetched = session.get(f"{registry.url}/v2/{name}/blobs/{digest}")
        assert fetched.status_code == 200
        assert fetched.content == landed[0]


def test_v2_chunked_upload_in_small_chunks(registry) -> None:
    """The `/v2/` chunked upload shares the store's small-body path: PATCHes of small chunks,
    a repeated one refused with 416 and the Range, then the PUT; the blob reads back."""
    name = unique("parts/v2")
    session = registry.session()
    base = f"{registry.url}/v2/{name}/blobs/uploads/"
    started = session.post(base)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    url = location if location.startswith("http") else registry.url + location
    data = os.urandom(3 * PART + 77)
    sent = 0
    for first in range(0, len(data), PART):
        chunk = data[first : first + PART]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{first}-{first + len(chunk) - 1}",
        }
        answer = session.patch(url, data=chunk, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.headers["Range"] == f"0-{first + len(chunk) - 1}"
        sent = first + len(chunk)
        location = answer.headers["Location"]
        url = location if location.startswith("http") else registry.url + location
        if first == PART:
            again = session.patch(url, data=chunk, headers=headers)
            assert again.status_code == 416
            assert again.headers["Range"] == f"0-{sent - 1}"
    digest = sha256(data)
    joiner = "&" if "?" in url else "?"
    put = session.put(f"{url}{joiner}digest={digest}")
    assert put.status_code == 201, put.text
    fetched = session.get(f"{registry.url}/v2/{name}/blobs/{digest}")
    assert fetched.status_code == 200
    assert fetched.content == data
