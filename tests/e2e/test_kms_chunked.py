"""Chunked and resumable pushes into a KMS repository (issue 13), staged in the blob's final
encrypted layout: skopeo, oras (chunked, chunks not aligned to segments) and a raw chunked
`/v2/` client push, and every pull is byte-identical; Range reads across segment boundaries
of a chunk-pushed blob equal the plaintext slices; an interrupted or abandoned chunked upload
leaves nothing visible and no plaintext at rest."""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import oras.oci
import pytest
from oras.client import OrasClient

from cargobay.crypto import layout
from cargobay.storage.encrypted import stored_address
from e2e.ecrhelp import aws, pull, pulled_blob, pulled_manifest, push, unique
from e2e.kmshelp import MARKER, SEGMENT, create_key, grep_data_dir
from e2e.ocihttp import Client, assert_error, sha256
from imagebuilder import build_image
from server import Server

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("kmschunked") / "data"
    registry = Server(data, workers=1, env={"CARGOBAY_JOBS_ENABLED": "false"}).start()
    yield registry
    registry.discard()


@pytest.fixture(scope="module")
def key_id(server: Server) -> str:
    return create_key(server)["KeyId"]


def kms_repo(server: Server, key_id: str, prefix: str = "secure/chunk") -> str:
    name = unique(prefix)
    aws(
        server,
        "ecr",
        "create-repository",
        "--repository-name",
        name,
        "--encryption-configuration",
        f"encryptionType=KMS,kmsKey={key_id}",
    )
    return name


def layer(size: int) -> bytes:
    """Random bytes with the marker at the start, across a segment boundary and at the end."""
    data = bytearray(os.urandom(size))
    for at in (0, SEGMENT - 7, size - len(MARKER)):
        data[at : at + len(MARKER)] = MARKER
    return bytes(data)


def test_skopeo_chunked_push_pulls_byte_identical(
    server: Server, key_id: str, tmp_path: Path
) -> None:
    """skopeo pushes with POST, PATCH, PUT ?digest=: staged encrypted, committed as is.
    (Gzipped layers, which skopeo sends unchanged, of sizes around segment multiples.)"""
    repo = kms_repo(server, key_id)
    image = build_image(tmp_path / "img", [3 * SEGMENT + 100, 2 * SEGMENT - 200, 10])
    push(server, image, f"{repo}:1")
    pull(server, f"{repo}:1", tmp_path / "out")
    assert pulled_manifest(tmp_path / "out") == (image.manifest_digest, image.manifest)
    for blob in (*image.layers, image.config):
        assert pulled_blob(tmp_path / "out", sha256(blob)) == blob


def test_oras_chunked_push_and_ranges_across_segments(
    server: Server, key_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oras-py's chunked upload, in chunks that end inside segments, then Range reads of the
    blob that span segment boundaries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    repo = kms_repo(server, key_id, "secure/oras")
    data = layer(5 * SEGMENT + 12_345)
    artifact = tmp_path / "payload.bin"
    artifact.write_bytes(data)
    client = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(*server.credentials)
    target = f"{server.host}/{repo}:v1"
    monkeypatch.chdir(tmp_path)
    pushed = client.push(files=["payload.bin"], target=target, do_chunked=True, chunk_size=100_003)
    assert pushed.status_code == 201, pushed.text
    assert grep_data_dir(server, MARKER) == ""

    out = tmp_path / "pulled"
    files = client.pull(target=target, outdir=str(out))
    assert [Path(f).read_bytes() for f in files] == [data]

    http = Client(server)
    digest = sha256(data)
    for start, end in [
        (SEGMENT - 10, SEGMENT + 10),
        (0, 3 * SEGMENT + 1),
        (2 * SEGMENT, 2 * SEGMENT),
        (4 * SEGMENT + 5, len(data) - 1),
    ]:
        answer, response = http.get_blob(repo, digest, {"Range": f"bytes={start}-{end}"})
        assert answer.status_code == 206, answer.text
        assert response.content == data[start : end + 1]
    assert oras.oci  # the SDK module the push used


def test_raw_chunked_resumable_push(server: Server, key_id: str) -> None:
    """PATCHes of odd sizes (one byte, exactly a segment, across boundaries), the upload's
    status between them, an out-of-order chunk refused with the current Range and then sent
    again, and the last chunk in the closing PUT."""
    repo = kms_repo(server, key_id, "secure/raw")
    http = Client(server)
    data = layer(4 * SEGMENT + 999)
    cuts = [0, 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT + 5, 3 * SEGMENT + 5, 4 * SEGMENT]
    location = http.start_upload(repo)
    for start, end in itertools.pairwise(cuts):
        patched = http.patch(
            location,
            data=data[start:end],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}",
            },
        )
        assert patched.status_code == 202, patched.text
        assert patched.headers["Range"] == f"0-{end - 1}"
        location = patched.headers["Location"]
        status = http.get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{end - 1}"

    # A chunk that does not start where the upload ends: 416 with the current Range.
    wrong = http.patch(
        location,
        data=data[cuts[-1] + 10 :],
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{cuts[-1] + 10}-{len(data) - 1}",
        },
    )
    assert wrong.status_code == 416
    assert wrong.headers["Range"] == f"0-{cuts[-1] - 1}"
    digest = sha256(data)
    done = http.put(
        location,
        params={"digest": digest},
        data=data[cuts[-1] :],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    assert http.pull_blob(repo, digest) == data
    answer, response = http.get_blob(
        repo, digest, {"Range": f"bytes={SEGMENT - 1}-{3 * SEGMENT + 2}"}
    )
    assert answer.status_code == 206
    assert response.content == data[SEGMENT - 1 : 3 * SEGMENT + 3]
    assert grep_data_dir(server, MARKER) == ""


def _cut_patch(server: Server, location: str, offset: int, body: bytes, claimed: int) -> None:
    """A PATCH whose client goes away after sending `body` of the `claimed` bytes."""
    url = urlsplit(location if location.startswith("http") else server.url + location)
    path = url.path + (f"?{url.query}" if url.query else "")
    token = base64.b64encode(":".join(server.credentials).encode()).decode()
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {claimed}\r\n"
        f"Content-Range: {offset}-{offset + claimed - 1}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_RDWR)


def test_interrupted_and_abandoned_chunked_uploads_leave_nothing_visible(
    server: Server, key_id: str
) -> None:
    repo = kms_repo(server, key_id, "secure/cut")
    http = Client(server)
    data = layer(3 * SEGMENT + 77)
    digest = sha256(data)
    location = http.start_upload(repo)
    first = 2 * SEGMENT + 3
    patched = http.patch(
        location,
        data=data[:first],
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{first - 1}"},
    )
    assert patched.status_code == 202
    location = patched.headers["Location"]
    # The client goes away halfway through the next chunk.
    _cut_patch(server, location, first, data[first : first + SEGMENT // 2], len(data) - first)

    assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    status = http.get(location)
    assert status.status_code == 204
    acknowledged = int(status.headers["Range"].split("-")[1]) + 1
    assert acknowledged == first  # the half-sent chunk was never counted
    assert grep_data_dir(server, MARKER) == ""

    # A wrong digest at completion: nothing is committed, the session ends. (The cut
    # request may hold the upload for a moment: 416 until it is released.)
    deadline = time.monotonic() + 60
    while True:
        wrong = http.put(
            location,
            params={"digest": "sha256:" + hashlib.sha256(b"other").hexdigest()},
            data=data[first:],
            headers={"Content-Type": "application/octet-stream"},
        )
        if wrong.status_code != 416 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert_error(wrong, 400, "DIGEST_INVALID")
    assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404

    # An abandoned upload, cancelled: gone, and still nothing visible.
    location = http.start_upload(repo)
    patched = http.patch(
        location,
        data=data[:first],
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{first - 1}"},
    )
    assert patched.status_code == 202
    assert http.delete(patched.headers["Location"]).status_code == 204
    assert_error(http.get(patched.headers["Location"]), 404, "BLOB_UPLOAD_UNKNOWN")
    assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    upload_id = urlsplit(patched.headers["Location"]).path.rsplit("/", 1)[-1]
    left = [p for p in server.data_dir.rglob(f"{upload_id}*") if p.is_file()]
    assert left == []  # neither its segments nor its held-back tail


def _received(server: Server, path: str) -> tuple[int, bytes]:
    """GET `path` and read until the server ends or cuts the response: (status, body so far)."""
    conn = http.client.HTTPConnection(server.host, timeout=60)
    token = base64.b64encode(":".join(server.credentials).encode()).decode()
    conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    body = bytearray()
    try:
        while chunk := response.read1(1 << 20):
            body += chunk
    except (http.client.IncompleteRead, ConnectionError):
        pass
    finally:
        conn.close()
    return response.status, bytes(body)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_tampered_segments_cut_the_download_never_wrong_bytes(
    server: Server, key_id: str, chunked: bool
) -> None:
    """A download decrypted and sent from a thread: a tampered segment past the first batch
    cuts the connection after a correct prefix; one in the first batch is a 500 before any
    byte; a Range that avoids the tampered segment still reads. (Copies written in one pass
    and copies committed from a chunked upload.)"""
    repo = kms_repo(server, key_id, "secure/tamper")
    http_client = Client(server)
    data = layer(50 * SEGMENT + 3)
    digest = sha256(data)
    if chunked:
        location = http_client.start_upload(repo)
        patched = http_client.patch(
            location, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert patched.status_code == 202, patched.text
        done = http_client.put(patched.headers["Location"], params={"digest": digest})
        assert done.status_code == 201, done.text
    else:
        http_client.push_blob(repo, data)
    address = stored_address(digest, key_id).partition(":")[2]
    found = [p for p in server.data_dir.rglob(address) if p.is_file()]
    if not found:
        pytest.skip("the blob store has no local files (S3)")
    path = found[0]
    original = path.read_bytes()
    parsed = layout.parse_header(original)
    sealed, header = SEGMENT + parsed.overhead, parsed.size

    def flip(index: int) -> None:
        tampered = bytearray(original)
        tampered[header + index * sealed + 100] ^= 0x01
        path.write_bytes(bytes(tampered))

    url = f"/v2/{repo}/blobs/{digest}"
    try:
        flip(45)
        status, body = _received(server, url)
        assert status == 200
        assert 0 < len(body) < len(data) and body == data[: len(body)]
        ranged = http_client.get(url, headers={"Range": f"bytes={SEGMENT}-{5 * SEGMENT}"})
        assert ranged.status_code == 206 and ranged.content == data[SEGMENT : 5 * SEGMENT + 1]
        flip(0)
        status, body = _received(server, url)
        assert status == 500 and data[:100] not in body
    finally:
        path.write_bytes(original)
    assert http_client.pull_blob(repo, digest) == data


def test_concurrent_encrypted_downloads_beyond_the_sender_threads(
    server: Server, key_id: str
) -> None:
    """Many downloads at once, from more clients than there are sending threads (16; any
    beyond them stream through aiohttp): every client gets exactly the blob, or its Range."""
    repo = kms_repo(server, key_id, "secure/many")
    data = layer(20 * SEGMENT + 11)
    digest = Client(server).push_blob(repo, data)

    def fetch(i: int) -> bool:
        client = Client(server)
        if i % 2:
            start = i * 1000
            _, response = client.get_blob(repo, digest, {"Range": f"bytes={start}-"})
            return response.content == data[start:]
        return client.pull_blob(repo, digest) == data

    with ThreadPoolExecutor(24) as pool:
        assert all(pool.map(fetch, range(40)))
