"""The chunked-upload client of scenario 3, run as its own process.

    BENCH_AUTH=user:secret python3 -m benchmarks.chunked_client PORT REPO FILE DIGEST CHUNK

POSTs an upload session, PATCHes FILE in CHUNK-byte pieces (each with its Content-Range,
following the Location each answer gives), then PUTs `?digest=`, on one keep-alive connection,
and prints the seconds that took as JSON. It runs apart from the harness for the same reason
curl does in scenarios 1 and 2: the harness's memory-sampler thread and its heap must not slow
the client of one registry and not the other. Only the standard library.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import time
from urllib.parse import urlencode, urlsplit


def _location(headers: http.client.HTTPMessage) -> str:
    parts = urlsplit(headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def upload(port: int, repo: str, path: str, digest: str, chunk: int) -> float:
    auth = os.environ.get("BENCH_AUTH", "")
    base = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(method: str, url: str, body: object, headers: dict[str, str], want: int):
        conn.request(method, url, body=body, headers={**base, **headers})
        t0 = time.perf_counter()
        response = conn.getresponse()
        data = response.read()
        if os.environ.get("BENCH_TRACE"):
            print(method, f"{1000 * (time.perf_counter() - t0):.1f}", file=sys.stderr)
        if response.status != want:
            raise SystemExit(f"{method} {url} -> {response.status} {data[:300]!r}")
        return response.headers

    with open(path, "rb") as fh:
        # Read before the clock starts, so the client sends from memory, as the harness's
        # clients do: sending from a fresh mapping would fault in every page on the way.
        view = memoryview(fh.read())
        size = len(view)
        started = time.perf_counter()
        location = _location(
            request("POST", f"/v2/{repo}/blobs/uploads/", b"", {"Content-Length": "0"}, 202)
        )
        for offset in range(0, size, chunk):
            piece = view[offset : offset + chunk]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(piece)),
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
            }
            location = _location(request("PATCH", location, piece, headers, 202))
        joiner = "&" if "?" in location else "?"
        request("PUT", location + joiner + urlencode({"digest": digest}), b"", {}, 201)
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main(argv: list[str]) -> int:
    port, repo, path, digest, chunk = argv
    print(json.dumps({"seconds": upload(int(port), repo, path, digest, int(chunk))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
