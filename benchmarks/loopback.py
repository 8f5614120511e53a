"""The machine's own ceiling for serving files over loopback: a bare HTTP server.

Scenarios 11 and 12 compare two registries whose downloads cost the kernel far more than
their own code: on loopback the sender's CPU also runs the receiver's TCP work, and the
receiving curl pays for copying the bytes out. So "1.5x Distribution" is only meaningful
beside what *any* server can do here. This server is that reference: no registry, no auth,
no routing beyond a table of paths, no Python on the byte path. One thread per connection
(HTTP/1.1 keep-alive, as curl uses it) sends each file either with `sendfile` (zero-copy,
as cargobay) or with `pread` + `send` from one reused 1 MiB buffer (a copy, as Distribution).
The pull scenarios measure it in every repetition, beside the two registries, and report
each registry's share of it (`pulls.py`).

    python3 -m benchmarks.loopback --port P --mode sendfile|copy --routes ROUTES.json

ROUTES.json maps a URL path to a file, or to a file and its Content-Type (a manifest, for
skopeo); it is re-read for every connection, so one server serves whatever the scenario wrote
last. GET and HEAD; `GET /v2/` answers 200 (the harness's liveness check, and a client's
probe); any other path not in the table, 404; a TLS hello, a closed connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path

from benchmarks.registries import Registry

MODES = ("sendfile", "copy")
_BUFFER = 1024 * 1024
_HEAD_LIMIT = 64 * 1024


class BareServer(Registry):
    """This module run as a process on 127.0.0.1:<port>, measured as a registry is."""

    def __init__(self, workdir: Path, start_timeout: float, mode: str, routes: Path) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.name = f"bare-{mode}"
        super().__init__(workdir, start_timeout)
        self.mode = mode
        self.routes = routes
        # It runs in the work directory: the checkout's root must be importable.
        root = str(Path(__file__).resolve().parent.parent)
        self.env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        }

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks.loopback",
            "--port",
            str(self.port),
            "--mode",
            self.mode,
            "--routes",
            str(self.routes),
        ]


def write_routes(path: Path, routes: dict[str, Path | tuple[Path, str]]) -> Path:
    """Write a routes file: a URL path to a file, or to a file and its Content-Type."""
    table = {
        url: [str(to[0]), to[1]] if isinstance(to, tuple) else str(to) for url, to in routes.items()
    }
    path.write_text(json.dumps(table))
    return path


def _read_head(conn: socket.socket, pending: bytearray) -> bytes | None:
    """One request head (through the blank line), or None once the client has closed."""
    while True:
        if pending[:1] == b"\x16":
            return None  # a TLS hello (a client trying https first): refused, it falls back
        end = pending.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(pending[:end])
            del pending[: end + 4]
            return head
        if len(pending) > _HEAD_LIMIT:
            return None
        chunk = conn.recv(65536)
        if not chunk:
            return None
        pending += chunk


def _send_file(conn: socket.socket, fd: int, size: int, mode: str, buffer: memoryview) -> None:
    sent = 0
    if mode == "sendfile":
        while sent < size:
            count = os.sendfile(conn.fileno(), fd, sent, size - sent)
            if count == 0:
                raise OSError("the file shrank while it was sent")
            sent += count
        return
    while sent < size:
        count = os.preadv(fd, [buffer], sent)
        if count == 0:
            raise OSError("the file shrank while it was sent")
        conn.sendall(buffer[:count])
        sent += count


def _serve(conn: socket.socket, routes_file: Path, mode: str) -> None:
    routes = json.loads(routes_file.read_text())
    buffer = memoryview(bytearray(_BUFFER))
    pending = bytearray()
    with conn:
        while (head := _read_head(conn, pending)) is not None:
            parts = head.split(b"\r\n", 1)[0].split()
            method, path = (parts[0], parts[1].decode()) if len(parts) >= 2 else (b"", "")
            if path == "/v2/":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                continue
            route = routes.get(path)
            if route is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            file, ctype = (route, "") if isinstance(route, str) else route
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                typed = f"Content-Type: {ctype}\r\n" if ctype else ""
                conn.sendall(f"HTTP/1.1 200 OK\r\n{typed}Content-Length: {size}\r\n\r\n".encode())
                if method != b"HEAD":
                    _send_file(conn, fd, size, mode, buffer)
            finally:
                os.close(fd)


def _guarded(conn: socket.socket, routes_file: Path, mode: str) -> None:
    # A client that went away: its own check reports the short download.
    with contextlib.suppress(OSError):
        _serve(conn, routes_file, mode)


def serve(port: int, mode: str, routes_file: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_guarded, args=(conn, routes_file, mode), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.loopback", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--routes", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.mode, args.routes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
