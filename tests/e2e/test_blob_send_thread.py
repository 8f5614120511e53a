"""Large blob bodies sent with sendfile from a sending thread (distribution/sendthread.py,
`send_file`): exact bytes whole and in ranges to curl, and clients that leave mid-download
cost the server no descriptor and no worker."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require_tool
from e2e.ocihttp import Client, unique_repo
from server import Server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory):
    """A registry of this module's own, so its descriptors are this module's doing."""
    server = Server(tmp_path_factory.mktemp("sendthread") / "data").start()
    yield server
    server.discard()


@pytest.fixture(scope="module")
def big(own: Server) -> tuple[str, str, bytes]:
    data = os.urandom(40 * MiB + 3)
    repo = unique_repo("sendthread")
    return repo, Client(own).push_blob(repo, data), data


def _open_fds(server: Server) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in server.pids())


def test_curl_gets_a_big_blob_whole_and_in_ranges(own: Server, big, tmp_path: Path) -> None:
    require_tool("curl")
    repo, digest, data = big
    user, password = own.credentials
    url = f"{own.url}/v2/{repo}/blobs/{digest}"
    out = tmp_path / "out"
    for range_arg, want, code in (
        ([], data, "200"),
        (["-r", f"{MiB - 5}-{30 * MiB}"], data[MiB - 5 : 30 * MiB + 1], "206"),
        (["-r", "-4000000"], data[-4_000_000:], "206"),
    ):
        got = subprocess.run(
            ["curl", "-sS", "-u", f"{user}:{password}", "-o", str(out), "-w", "%{http_code}",
             *range_arg, url],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert got.stdout == code, range_arg
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(want).digest()


def _settled_fds(server: Server, deadline: float) -> int:
    """The servers' open descriptors once the count holds still for a second."""
    count = _open_fds(server)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _open_fds(server)
        if now == count:
            return count
        count = now
    return count


def test_clients_leaving_mid_download_leave_no_descriptor_behind(own: Server, big) -> None:
    repo, digest, data = big
    user, password = own.credentials
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = (
        f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {own.host}\r\n"
        f"Authorization: Basic {token}\r\n\r\n"
    ).encode()

    def leave(times: int) -> None:
        for _ in range(times):
            with socket.create_connection(("127.0.0.1", own.port), timeout=30) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                sock.sendall(request)
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                # Leave with most of the body unread: the sender meets a reset connection.

    # A first round warms every worker (its sender threads, its database files), so the
    # baseline holds only what a served worker keeps open.
    leave(12)
    before = _settled_fds(own, time.monotonic() + 30)
    leave(12)
    # The senders notice at their next write or poll; wait for them (not a timing assert:
    # the condition is polled until it holds, the deadline only bounds a broken server).
    deadline = time.monotonic() + 60
    while _open_fds(own) > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _open_fds(own) <= before
    # And every worker still serves, whole.
    client = Client(own)
    for _ in range(4):
        assert client.pull_blob(repo, digest) == data
