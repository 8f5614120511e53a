"""HTTP details of issue 11 against a real server: Range as RFC 9110 defines it on blob GETs,
conditional blob GETs on the digest as ETag, and transfer codings other than chunked refused
with 501 instead of being stored encoded."""

from __future__ import annotations

import base64
import gzip
import socket
import subprocess

import pytest

from conftest import require_tool
from e2e.ocihttp import Client, assert_error, sha256, unique_repo
from server import Server

BLOB = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture(scope="module")
def blob(registry: Server) -> tuple[str, str]:
    repo = unique_repo("edges")
    digest = Client(registry).push_blob(repo, BLOB)
    return repo, digest


def _get(registry: Server, blob: tuple[str, str], range_header: str):
    repo, digest = blob
    return Client(registry).get(f"/v2/{repo}/blobs/{digest}", headers={"Range": range_header})


@pytest.mark.parametrize(
    "range_header",
    ["items=0-1", "bytes=0-1,4-5", "bytes=5-2", "bytes=abc", "bytes=-", "bytes=0-1 junk"],
)
def test_ignored_ranges_get_the_whole_blob(registry, blob, range_header: str) -> None:
    response = _get(registry, blob, range_header)
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert response.content == BLOB
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=-0",
        f"bytes={len(BLOB)}-",
        "bytes=99999-",
        pytest.param("bytes=" + "9" * 5000 + "-", id="5000-digit-start"),
    ],
)
def test_unsatisfiable_ranges_are_416(registry, blob, range_header: str) -> None:
    response = _get(registry, blob, range_header)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-3", 0, 4),
        ("bytes=-5", len(BLOB) - 5, len(BLOB)),
        ("BYTES=10-", 10, len(BLOB)),
        pytest.param("bytes=1-" + "9" * 5000, 1, len(BLOB), id="5000-digit-end"),
        pytest.param("bytes=-" + "9" * 5000, 0, len(BLOB), id="5000-digit-suffix"),
    ],
)
def test_satisfiable_ranges_are_206(registry, blob, range_header: str, start, end) -> None:
    response = _get(registry, blob, range_header)
    assert response.status_code == 206
    assert response.content == BLOB[start:end]
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(BLOB)}"


def _raw(registry: Server, head: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):  # Connection: close, so read to the end
            data += chunk
    return data


def test_gzip_transfer_coding_is_501_and_nothing_is_stored(registry: Server) -> None:
    oci = Client(registry)
    repo = unique_repo("edges-te")
    location = oci.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    payload = b"layer bytes " * 100
    encoded = gzip.compress(payload)
    chunked = f"{len(encoded):x}\r\n".encode() + encoded + b"\r\n0\r\n\r\n"
    user, password = registry.credentials
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = location if location.startswith("/") else "/" + location.split("/", 3)[3]
    sep = "&" if "?" in path else "?"
    head = (
        f"PUT {path}{sep}digest={sha256(payload)} HTTP/1.1\r\n"
        f"Host: {registry.host}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
    )
    raw = _raw(registry, head, chunked)
    status_line = raw.partition(b"\r\n")[0]
    assert status_line.split()[1] == b"501", raw[:300]
    assert b'"code": "UNSUPPORTED"' in raw or b'"code":"UNSUPPORTED"' in raw, raw[:500]
    for digest in (sha256(payload), sha256(encoded)):
        response = oci.get(f"/v2/{repo}/blobs/{digest}")
        assert_error(response, 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "content_range",
    [pytest.param("0-" + "9" * 5000, id="5000-digit-end"), "0-1e3", "5-2", "0-1 junk"],
)
def test_upload_content_range_invalid_is_416(registry: Server, content_range: str) -> None:
    oci = Client(registry)
    repo = unique_repo("edges-cr")
    location = oci.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    response = oci.patch(
        location,
        data=b"xy",
        headers={"Content-Range": content_range, "Content-Type": "application/octet-stream"},
    )
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")


# -- conditional blob GETs: the digest is the one strong validator (RFC 9110 section 13) ------


def _conditional(registry: Server, blob: tuple[str, str], headers: dict[str, str]):
    repo, digest = blob
    return Client(registry).get(f"/v2/{repo}/blobs/{digest}", headers=headers)


def test_blob_etag_is_the_digest_and_if_none_match_is_304(registry, blob) -> None:
    _, digest = blob
    first = _conditional(registry, blob, {})
    assert first.status_code == 200 and first.content == BLOB
    assert first.headers["ETag"] == f'"{digest}"'
    for field in (f'"{digest}"', f'W/"{digest}"', f'"sha256:{"0" * 64}", "{digest}"', "*"):
        again = _conditional(registry, blob, {"If-None-Match": field})
        assert again.status_code == 304, field
        assert again.content == b""
        assert again.headers["ETag"] == f'"{digest}"'
        assert again.headers["Docker-Content-Digest"] == digest
    other = _conditional(registry, blob, {"If-None-Match": f'"sha256:{"0" * 64}"'})
    assert other.status_code == 200 and other.content == BLOB


def test_blob_if_match_other_tag_is_412_and_own_tag_is_200(registry, blob) -> None:
    _, digest = blob
    failed = _conditional(registry, blob, {"If-Match": f'"sha256:{"1" * 64}"'})
    assert failed.status_code == 412
    # If-Match compares strongly: a weak tag never matches.
    assert _conditional(registry, blob, {"If-Match": f'W/"{digest}"'}).status_code == 412
    ok = _conditional(registry, blob, {"If-Match": f'"{digest}"'})
    assert ok.status_code == 200 and ok.content == BLOB


def test_blob_if_range_honours_the_range_only_for_the_digest(registry, blob) -> None:
    _, digest = blob
    same = _conditional(registry, blob, {"Range": "bytes=0-3", "If-Range": f'"{digest}"'})
    assert same.status_code == 206 and same.content == BLOB[:4]
    for stale in (f'"sha256:{"2" * 64}"', "Wed, 21 Oct 2015 07:28:00 GMT"):
        whole = _conditional(registry, blob, {"Range": "bytes=0-3", "If-Range": stale})
        assert whole.status_code == 200, stale
        assert whole.content == BLOB
        assert "Content-Range" not in whole.headers


def test_blob_is_sent_as_stored_whatever_sits_beside_its_file(registry: Server) -> None:
    """A file named like a precompressed copy next to a blob (aiohttp's FileResponse served
    such siblings to clients accepting gzip) never replaces the blob's bytes."""
    oci = Client(registry)
    repo = unique_repo("edges-gz")
    payload = b"exact bytes " * 500
    digest = oci.push_blob(repo, payload)
    hexpart = digest.split(":")[1]
    path = registry.data_dir / "storage" / "blobs" / "sha256" / hexpart[:2] / hexpart
    assert path.read_bytes() == payload
    decoy = path.with_name(path.name + ".gz")
    decoy.write_bytes(gzip.compress(b"not the blob"))
    try:
        response = oci.get(f"/v2/{repo}/blobs/{digest}", headers={"Accept-Encoding": "gzip, br"})
        assert response.status_code == 200
        assert "Content-Encoding" not in response.headers
        assert response.raw.headers.get("Content-Encoding") is None
        assert response.content == payload
    finally:
        decoy.unlink()


def test_curl_revalidates_a_blob_by_its_etag(registry, blob, tmp_path) -> None:
    """curl's own conditional GET (--etag-save, then --etag-compare): 304 with no body."""
    require_tool("curl")
    repo, digest = blob
    user, password = registry.credentials
    url = f"http://{registry.host}/v2/{repo}/blobs/{digest}"
    etag_file, out = tmp_path / "etag", tmp_path / "out"
    common = ["curl", "-sS", "-u", f"{user}:{password}", "-o", str(out), "-w", "%{http_code}"]
    first = subprocess.run(
        [*common, "--etag-save", str(etag_file), url], capture_output=True, text=True, check=True
    )
    assert first.stdout == "200" and out.read_bytes() == BLOB
    assert etag_file.read_text().strip() == f'"{digest}"'
    out.unlink()
    second = subprocess.run(
        [*common, "--etag-compare", str(etag_file), url], capture_output=True, text=True, check=True
    )
    assert second.stdout == "304"
    assert not out.exists() or out.read_bytes() == b""
