"""Slow and greedy clients against a real server (issue 11): 300 connections that stall in the
request line, the headers or the body (and some that never send a byte) are closed after the
(here 2 s) timeouts while a normal client is still served, and an idle keep-alive connection
is not; a per-address connection cap; and a client that aborts mid-body costs one info line
in the log, not an error traceback."""

from __future__ import annotations

import base64
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from e2e.ocihttp import Client, unique_repo
from server import Server

STALLED = 100  # per kind: request line, headers, body
BOUND = 60.0  # generous upper bound for "closed after the 2 s timeout"; never a time assert


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path / "data",
        env={
            "CARGOBAY_HEADER_TIMEOUT_SECONDS": "2",
            "CARGOBAY_BODY_IDLE_TIMEOUT_SECONDS": "2",
        },
    ).start()
    yield srv
    srv.discard()


def _auth(server: Server) -> str:
    return "Basic " + base64.b64encode(":".join(server.credentials).encode()).decode()


def _connect(server: Server, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(data)
    return sock


def _upload_path(server: Server, oci: Client, repo: str) -> str:
    location = oci.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    return location if location.startswith("/") else "/" + location.split("/", 3)[3]


def _stalled_body(server: Server, path: str) -> bytes:
    return (
        f"PATCH {path} HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {_auth(server)}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    ).encode() + b"x" * 10


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset), reading whatever it sent."""
    try:
        while True:
            ready, _, _ = select.select([sock], [], [], 0)
            if not ready:
                return False
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True


def _wait_all_closed(socks: list[socket.socket]) -> list[socket.socket]:
    """The sockets still open once all closed or the bound passed."""
    deadline = time.monotonic() + BOUND
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if not _closed(s)]
        time.sleep(0.2)
    return pending


def test_slowloris(server: Server) -> None:
    oci = Client(server)
    repo = unique_repo("slow")
    paths = [_upload_path(server, oci, repo) for _ in range(STALLED)]
    socks = [_connect(server, b"GET /v2/_cat") for _ in range(STALLED)]
    socks += [
        _connect(server, f"GET /v2/ HTTP/1.1\r\nHost: {server.host}\r\nX-Slow: ".encode())
        for _ in range(STALLED)
    ]
    socks += [_connect(server, _stalled_body(server, path)) for path in paths]
    socks += [_connect(server, b"") for _ in range(20)]  # connected, never sent a byte
    try:
        # A normal client is served while 300 connections stall.
        assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
        digest = oci.push_blob(repo, b"served meanwhile")
        assert oci.pull_blob(repo, digest) == b"served meanwhile"
        still_open = _wait_all_closed(socks)
        assert not still_open, f"{len(still_open)} of {len(socks)} stalled connections open"
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
    log = server.log_path.read_text() if server.log_path else ""
    assert "whose body stalled" in log
    assert "Traceback" not in log and '"level": "error"' not in log, log[-3000:]


def _exchange(sock: socket.socket, server: Server) -> bytes:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    return answer


def test_idle_keep_alive_outlives_the_header_timeout(server: Server) -> None:
    """Between requests a connection is idle, not slow: keepalive_timeout_seconds (75 s)
    governs it, not the 2 s header timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert _exchange(sock, server).startswith(b"HTTP/1.1 200")
        time.sleep(5)
        assert _exchange(sock, server).startswith(b"HTTP/1.1 200")


def test_aborted_half_body_is_one_info_line(server: Server) -> None:
    oci = Client(server)
    repo = unique_repo("abort")
    sock = _connect(server, _stalled_body(server, _upload_path(server, oci, repo)))
    time.sleep(0.5)
    sock.close()
    deadline = time.monotonic() + BOUND
    log = ""
    while "went away mid-request" not in log and time.monotonic() < deadline:
        time.sleep(0.2)
        log = server.log_path.read_text() if server.log_path else ""
    assert log.count("went away mid-request") == 1, log[-3000:]
    assert "Traceback" not in log and '"level": "error"' not in log, log[-3000:]


def test_connections_per_address_are_capped(tmp_path: Path) -> None:
    server = Server(
        tmp_path / "data", workers=1, env={"CARGOBAY_MAX_CONNECTIONS_PER_IP": "5"}
    ).start()
    try:
        held = [_connect(server, b"") for _ in range(5)]
        refused = _connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := refused.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503"), answer
        for sock in held:
            sock.close()
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{server.url}/healthz", timeout=10).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.discard()
