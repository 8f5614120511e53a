"""Starting and stopping a real `cargobay serve` process for end-to-end tests."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A cargobay process on a loopback port, with its administrator credentials."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def credentials(self) -> tuple[str, str]:
        parser = configparser.ConfigParser()
        parser.read(self.data_dir / "admin-credentials")
        section = parser["default"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    @property
    def creds_arg(self) -> str:
        """`KEY:SECRET`, as skopeo's --creds wants it."""
        return ":".join(self.credentials)

    def session(self) -> requests.Session:
        """An HTTP session authenticated as the administrator."""
        s = requests.Session()
        s.auth = self.credentials
        return s

    def start(self, timeout: float = 30.0) -> Server:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-{self.port}.log"
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cargobay",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cargobay exited early:\n{self.log_path.read_text()}")
            try:
                # Every worker must answer, so wait for a few consecutive successes.
                if all(requests.get(f"{self.url}/healthz", timeout=1).ok for _ in range(6)):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cargobay did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the whole process tree, as a crash or an OOM kill would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def pids(self) -> list[int]:
        """The supervisor and its workers."""
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [self.proc.pid, *(int(p) for p in out.split())]
