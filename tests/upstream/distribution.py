"""CNCF Distribution (Debian's `docker-registry`) as a test upstream on a free loopback port,
in one of three modes: anonymous, htpasswd Basic (bcrypt entries), or token auth trusting a
TokenServer's certificate. Images go in with skopeo."""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest

from upstream.tokenserver import ISSUER, SERVICE, TokenServer

BINARY = "/usr/bin/docker-registry"
USER, PASSWORD = "puller", "s3cret-Passw0rd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Distribution:
    def __init__(self, workdir: Path, mode: str = "anonymous", *, token_expires_in: int = 300):
        if not shutil.which(BINARY):
            pytest.fail(f"{BINARY} is not installed (apt-get install docker-registry)")
        assert mode in ("anonymous", "basic", "token"), mode
        self.workdir = workdir
        self.mode = mode
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "distribution.log"
        self.tokens = TokenServer(USER, PASSWORD, expires_in=token_expires_in)
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds_arg(self) -> str:
        return f"{USER}:{PASSWORD}"

    def _auth_config(self) -> str:
        if self.mode == "basic":
            entry = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.workdir / "htpasswd").write_text(f"{USER}:{entry}\n")
            return (
                f"auth:\n  htpasswd:\n    realm: cargobay-test\n    path: {self.workdir}/htpasswd\n"
            )
        if self.mode == "token":
            bundle = self.tokens.signer.write_bundle(self.workdir / "token-root.pem")
            return (
                f"auth:\n  token:\n    realm: {self.tokens.realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n"
            )
        return ""

    def start(self) -> Distribution:
        if self.mode == "token" and not self.tokens._thread.is_alive():
            self.tokens.start()
        root = self.workdir / "data"
        root.mkdir(exist_ok=True)
        config = (
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + self._auth_config()
        )
        (self.workdir / "config.yml").write_text(config)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [BINARY, "serve", str(self.workdir / "config.yml")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited early:\n{self.log_tail()}")
            if self._status() in (200, 401):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start:\n{self.log_tail()}")

    def _status(self) -> int:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def discard(self) -> None:
        self.stop()
        if self.mode == "token":
            self.tokens.stop()

    def basic_header(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(self.creds_arg.encode()).decode()}

    def push(self, source: str, ref: str, *extra: str) -> None:
        """skopeo copy `source` (e.g. `oci:/layout:tag`) to `<this>/<ref>`."""
        creds = [] if self.mode == "anonymous" else ["--dest-creds", self.creds_arg]
        proc = subprocess.run(
            [shutil.which("skopeo") or "skopeo", "copy", "--dest-tls-verify=false", *creds,
             *extra, source, f"docker://{self.host}/{ref}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo push to {self.mode} upstream failed:\n{proc.stderr}")
