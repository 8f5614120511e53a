"""cargobay on an S3 bucket (a real moto server), end to end: skopeo push and pull, blob GETs
redirected to presigned URLs, streamed GETs with Range when redirects are off, and a chunked
upload whose PATCHes land on two different nodes sharing the bucket and the database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from conftest import require_tool
from e2e.ecrhelp import client as ecr_client
from imagebuilder import build_image, layout_blob, layout_manifest_digest, sha256
from s3server import MotoServer
from server import Server

MIB = 1024 * 1024
BUCKET = "cargobay-e2e"


@pytest.fixture(scope="module")
def nodes(
    s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """Two `cargobay serve` processes on one data dir (so one SQLite database) and one bucket.
    The first redirects blob downloads to presigned URLs; the second streams them."""
    s3_server.create_bucket(BUCKET)
    prefix = f"e2e/{uuid.uuid4().hex[:8]}"
    storage = s3_server.storage_url(BUCKET, prefix)  # credentials from the AWS chain (env)
    data_dir = tmp_path_factory.mktemp("s3-registry") / "data"
    args = ["--storage", storage]
    first = Server(data_dir, extra_args=args, env=s3_server.env).start()
    second = Server(
        data_dir,
        extra_args=args,
        env={**s3_server.env, "CARGOBAY_REDIRECT_BLOB_DOWNLOADS": "false"},
    )
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def skopeo(*args: str) -> None:
    proc = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


def push_blob(server: Server, name: str, data: bytes) -> str:
    session = server.session()
    digest = sha256(data)
    response = session.post(
        f"{server.url}/v2/{name}/blobs/uploads/?digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return digest


def test_skopeo_push_pull_roundtrip(nodes, tmp_path: Path, s3_server: MotoServer) -> None:
    """An image with a multi-part layer goes into the bucket and comes back byte-identical,
    pulled from the redirecting node and from the streaming one."""
    first, second = nodes
    image = build_image(tmp_path / "image", [4096, 11 * MIB])
    name = f"s3/roundtrip-{uuid.uuid4().hex[:8]}"
    skopeo(
        "copy", "--dest-creds", first.creds_arg, "--dest-tls-verify=false",
        f"oci:{image.layout}:latest", f"docker://{first.host}/{name}:1.0",
    )  # fmt: skip
    for server, where in ((first, "redirected"), (second, "streamed")):
        back = tmp_path / where
        skopeo(
            "copy", "--src-creds", server.creds_arg, "--src-tls-verify=false",
            f"docker://{server.host}/{name}:1.0", f"oci:{back}:1.0",
        )  # fmt: skip
        assert layout_manifest_digest(back) == image.manifest_digest
        assert layout_blob(back, image.manifest_digest) == image.manifest
        for digest, data in image.blobs.items():
            assert layout_blob(back, digest) == data, (where, digest)

    # The bytes live in the bucket at their content address; no upload is left behind.
    s3 = s3_server.client()
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    for digest in image.blobs:
        hexpart = digest.split(":")[1]
        assert any(k.endswith(f"/blobs/sha256/{hexpart[:2]}/{hexpart}") for k in keys), digest
    assert not [k for k in keys if "/_uploads/" in k]


def test_blob_get_redirects_to_a_working_presigned_url(nodes, s3_server: MotoServer) -> None:
    first, _ = nodes
    name = f"s3/redirect-{uuid.uuid4().hex[:8]}"
    data = os.urandom(3 * MIB + 5)
    digest = push_blob(first, name, data)
    session = first.session()

    response = session.get(f"{first.url}/v2/{name}/blobs/{digest}", allow_redirects=False)
    assert response.status_code == 307, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    location = response.headers["Location"]
    assert location.startswith(s3_server.endpoint)
    fetched = requests.get(location, timeout=60)  # no registry credentials
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == digest.split(":")[1]
    ranged = requests.get(location, headers={"Range": "bytes=100-199"}, timeout=60)
    assert ranged.status_code == 206 and ranged.content == data[100:200]

    # A client that follows redirects simply gets the blob; HEAD is answered directly.
    assert session.get(f"{first.url}/v2/{name}/blobs/{digest}", timeout=60).content == data
    head = session.head(f"{first.url}/v2/{name}/blobs/{digest}", timeout=60)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))

    # ECR's GetDownloadUrlForLayer hands out the object store's presigned URL as well.
    ecr = ecr_client(first)
    out = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=digest)
    assert out["downloadUrl"].startswith(s3_server.endpoint)
    assert requests.get(out["downloadUrl"], timeout=60).content == data


def test_streamed_blob_get_honours_range(nodes) -> None:
    """With redirects off, the registry streams from the bucket: 200, 206 and 416."""
    first, second = nodes
    name = f"s3/stream-{uuid.uuid4().hex[:8]}"
    data = os.urandom(2 * MIB + 11)
    digest = push_blob(first, name, data)
    session = second.session()
    url = f"{second.url}/v2/{name}/blobs/{digest}"

    whole = session.get(url, allow_redirects=False, timeout=60)
    assert whole.status_code == 200
    assert whole.headers["Docker-Content-Digest"] == digest
    assert whole.headers["Content-Length"] == str(len(data))
    assert whole.content == data

    cases = {
        "bytes=0-9": (0, 10),
        "bytes=1048570-1048589": (1048570, 1048590),
        f"bytes={len(data) - 5}-": (len(data) - 5, len(data)),
        "bytes=-7": (len(data) - 7, len(data)),
        f"bytes=10-{len(data) + 100}": (10, len(data)),
    }
    for header, (start, end) in cases.items():
        part = session.get(url, headers={"Range": header}, timeout=60)
        assert part.status_code == 206, header
        assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}", header
        assert part.content == data[start:end], header

    for header in (f"bytes={len(data)}-", "bytes=-0"):
        refused = session.get(url, headers={"Range": header}, timeout=60)
        assert refused.status_code == 416, header
        assert refused.headers["Content-Range"] == f"bytes */{len(data)}"
    # RFC 9110: a Range that is malformed, of another unit or of several ranges may be ignored.
    for header in ("bytes=oops", "items=0-1", "bytes=0-1,5-6"):
        ignored = session.get(url, headers={"Range": header}, timeout=60)
        assert ignored.status_code == 200, header
        assert ignored.content == data, header


def test_chunked_upload_hops_between_nodes(nodes) -> None:
    """PATCHes of 1 MiB, 6 MiB and 2 MiB, each to another node (and so another process), then
    the PUT: the blob is whole, and what was uploaded is what comes back."""
    first, second = nodes
    name = f"s3/chunked-{uuid.uuid4().hex[:8]}"
    chunks = [os.urandom(MIB), os.urandom(6 * MIB), os.urandom(2 * MIB)]
    data = b"".join(chunks)
    digest = sha256(data)

    start = first.session().post(f"{first.url}/v2/{name}/blobs/uploads/", timeout=60)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    offset = 0
    for i, chunk in enumerate(chunks):
        server = (second, first)[i % 2]
        response = server.session().patch(
            urljoin(server.url, location),
            data=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
            timeout=60,
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]

    status = second.session().get(urljoin(second.url, location), timeout=60)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(data) - 1}"
    done = second.session().put(
        urljoin(second.url, location), params={"digest": digest}, timeout=60
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest

    for server in (first, second):
        fetched = server.session().get(f"{server.url}/v2/{name}/blobs/{digest}", timeout=60)
        assert fetched.status_code == 200
        assert fetched.content == data
