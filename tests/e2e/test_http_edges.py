"""HTTP details of issue 11 against a real server: Range as RFC 9110 defines it on blob GETs,
and transfer codings other than chunked refused with 501 instead of being stored encoded."""

from __future__ import annotations

import base64
import gzip
import socket

import pytest

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
