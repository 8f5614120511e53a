"""A webhook receiver for the end-to-end tests: a small HTTP server that checks each delivery's
HMAC-SHA256 signature itself (not with cargobay's code), keeps the events per path, and can be
"down" (answering 503) for a while."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE = "X-Cargobay-Signature"
EVENT_ID = "X-Cargobay-Event-Id"


def signed(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class Receiver:
    """Receives at `url(path)` for each path in `secrets` (path -> that webhook's secret)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.events: dict[str, list[dict]] = {path: [] for path in secrets}
        self.bad = 0  # deliveries with a wrong signature or event id header
        self.refused = 0  # deliveries answered 503 while down
        self.down = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver._take(self.path, body, self.headers)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _take(self, path: str, body: bytes, headers) -> int:
        if self.down:
            self.refused += 1
            return 503
        secret = self.secrets.get(path)
        if secret is None or not signed(secret, body, headers.get(SIGNATURE, "")):
            self.bad += 1
            return 401
        event = json.loads(body)
        if headers.get(EVENT_ID) != event["id"]:
            self.bad += 1
            return 400
        self.events[path].append(event)
        return 200

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def wait_for(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        """Wait until `done()`, then two more poll rounds: nothing more may arrive."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)

    def close(self) -> None:
        self.httpd.shutdown()
