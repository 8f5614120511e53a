"""The bare loopback server the pull scenarios measure their ceiling with (benchmarks.loopback):
it must send exactly the routed files, in both modes, over one keep-alive connection, or the
ceiling it reports would describe a different transfer from the registries'."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
from pathlib import Path

import pytest
from benchmarks.loopback import MODES, BareServer, write_routes

from conftest import require_tool


@pytest.mark.parametrize("mode", MODES)
def test_bare_server_sends_each_routed_file_whole_over_one_connection(
    tmp_path: Path, mode: str
) -> None:
    require_tool("curl")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # not a multiple of the 1 MiB buffer
    small = tmp_path / "small"
    small.write_bytes(b'{"schemaVersion":2}')
    routes = write_routes(tmp_path / "routes.json", {"/v2/r/blobs/a": big, "/v2/r/blobs/b": small})
    server = BareServer(tmp_path, 30.0, mode, routes).start()
    try:
        config = tmp_path / "get.curl"
        config.write_text(
            "".join(
                f'url = "{server.url}/v2/r/blobs/{name}"\noutput = "{tmp_path / ("got-" + name)}"\n'
                for name in ("a", "b", "a")
            )
        )
        out = subprocess.run(
            ["curl", "-sS", "-v", "-K", str(config), "-w", "%{http_code} %{num_connects}\\n"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        # Three answers, one TCP connection (curl reuses it: the keep-alive loop works).
        assert out.stdout.split() == ["200", "1", "200", "0", "200", "0"], out.stdout
        for name, source in (("a", big), ("b", small)):
            got = (tmp_path / f"got-{name}").read_bytes()
            assert hashlib.sha256(got).digest() == hashlib.sha256(source.read_bytes()).digest()

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/v2/r/blobs/missing")
        missing = conn.getresponse()
        assert (missing.status, missing.read()) == (404, b"")
        conn.request("GET", "/v2/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()
    assert server.proc is None


def test_bare_server_refuses_an_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        BareServer(tmp_path, 1.0, "mmap", tmp_path / "routes.json")
