"""nginx as a round-robin load balancer in front of several cargobay nodes, configured from
deploy/nginx.conf (the recipe docs/deploy.md describes), on a loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from server import free_port

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


@dataclass
class Nginx:
    prefix: Path
    upstreams: list[int]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.prefix.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;"
            for port in self.upstreams
        )
        config = (
            TEMPLATE.read_text()
            .replace("@PREFIX@", str(self.prefix))
            .replace("@UPSTREAMS@", servers)
            .replace("@LISTEN@", f"127.0.0.1:{self.port}")
            .replace("worker_processes auto;", "worker_processes 1;")
        )
        conf = self.prefix / "nginx.conf"
        conf.write_text(config)
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "stderr.log", "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.prefix / "stderr.log").read_text())
            try:
                requests.get(f"{self.url}/healthz", timeout=1)
                return self
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None
