"""`benchmarks.ecr_replay`: wrk sends every distinct request exactly once, and its figures count
exactly those (a local HTTP server records what arrives). No speed is asserted."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks package lives beside src/, not in it
    sys.path.insert(0, str(ROOT))

from benchmarks import ecr_replay  # noqa: E402
from benchmarks.scenarios import ScenarioError  # noqa: E402


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the registries
    received: Counter[bytes] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.received[body] += 1
        if b'"drop": true' in body:  # the connection fails with the request unanswered
            self.close_connection = True
            return
        status = 400 if b'"bad": true' in body else 200
        answer = b"{}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    require_tool("wrk")
    _Recorder.received = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _requests(n: int, bad: int | None = None, drop: int | None = None) -> list[ecr_replay.Signed]:
    return [
        (
            json.dumps({"n": i, "bad": i == bad, "drop": i == drop}).encode(),
            {"X-Amz-Target": f"Test.{i}"},
        )
        for i in range(n)
    ]


def test_every_request_is_sent_once_and_counted(server: str, tmp_path: Path) -> None:
    requests = _requests(101)  # odd: the two threads' shares differ by one
    figures = ecr_replay.replay(server, requests, tmp_path / "run")
    assert figures["requests"] == 101
    assert figures["method"] == ecr_replay.METHOD
    assert figures["rps"] > 0 and figures["p99_ms"] > 0
    assert _Recorder.received == Counter(body for body, _ in requests)


def test_a_paced_run_sends_every_request_once(server: str, tmp_path: Path) -> None:
    requests = _requests(40)
    figures = ecr_replay.replay(server, requests, tmp_path / "paced", rate=200)
    assert figures["rate"] == 200 and figures["requests"] == 40
    assert _Recorder.received == Counter(body for body, _ in requests)


def test_an_answer_outside_2xx_fails_the_run(server: str, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="1 of 50 answers were not 2xx"):
        ecr_replay.replay(server, _requests(50, bad=7), tmp_path / "bad")


def test_a_request_lost_with_its_connection_ends_the_run_as_an_error(
    server: str, tmp_path: Path
) -> None:
    # wrk re-opens the connection and asks for a request at once: the script sends nothing
    # (neither the lost request again nor another's) and ends the run, which then fails.
    with pytest.raises(ScenarioError, match="1 connections re-opened mid-request"):
        ecr_replay.replay(server, _requests(200, drop=30), tmp_path / "drop")
    assert max(_Recorder.received.values()) == 1


def test_the_shares_are_disjoint_and_hold_every_request(tmp_path: Path) -> None:
    requests = _requests(5)
    ecr_replay.write_shares("http://127.0.0.1:9", requests, tmp_path / "s", 2)
    bodies = []
    for i in (1, 2):
        data = (tmp_path / f"s.{i}").read_bytes()
        lengths, rest = data.split(b"\n", 1)
        assert sum(map(int, lengths.split())) == len(rest)
        bodies += [part.rsplit(b"\r\n\r\n", 1)[1] for part in rest.split(b"POST / ")[1:]]
    assert sorted(bodies) == sorted(body for body, _ in requests)
    with pytest.raises(ValueError):
        ecr_replay.write_shares("http://127.0.0.1:9", requests[:1], tmp_path / "t", 2)
