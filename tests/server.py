"""Starting and stopping a real `cargobay serve` process for end-to-end tests."""

from __future__ import annotations

import configparser
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy.engine import make_url

import pgcluster
from cargobay.config import Settings, load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- backends ------------------------------------------------------------------------------------
# CARGOBAY_TEST_DATABASE: "" (SQLite in the data dir), "postgres" (a throwaway cluster, see
# pgcluster.py) or a postgresql:// URL. CARGOBAY_TEST_STORAGE: "" (files in the data dir) or
# "s3" (a shared moto server from s3server.py, one bucket per data dir). A server restarted on
# the same data dir gets the same database and bucket back, as with the embedded defaults.

STORAGE_ENV = "CARGOBAY_TEST_STORAGE"
_moto = None


def storage_backend() -> str:
    value = os.environ.get(STORAGE_ENV, "").strip()
    if value in ("", "file"):
        return "file"
    if value == "s3":
        return "s3"
    raise ValueError(f"{STORAGE_ENV}={value!r}: use file or s3")


def _shared_moto():
    """One moto S3 server for the whole test process (started on first use)."""
    global _moto
    if _moto is None:
        import atexit

        from s3server import MotoServer

        _moto = MotoServer().start()
        atexit.register(_moto.stop)
    return _moto


def _backend_env(data_dir: Path) -> dict[str, str]:
    """cargobay settings (as CARGOBAY_* variables) for the selected test backends."""
    env: dict[str, str] = {}
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        env["CARGOBAY_DATABASE"] = cluster.url(cluster.database_for(data_dir))
        # A fresh database is empty; an operator would run `cargobay db upgrade` first.
        env["CARGOBAY_AUTO_UPGRADE"] = "true"
    if storage_backend() == "s3":
        moto = _shared_moto()
        env["CARGOBAY_STORAGE"] = moto.storage_url(moto.create_bucket(f"cargobay-{key}"))
        env.update(moto.env)
    return env


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
    # CARGOBAY_DATABASE etc. for the test backends; chosen at the first start.
    backend_env: dict[str, str] | None = None

    @property
    def process_env(self) -> dict[str, str]:
        """The environment the server runs with: also right for other `cargobay` commands
        (gc, admin, db) on the same deployment."""
        if self.backend_env is None:
            self.backend_env = _backend_env(self.data_dir)
        return {**os.environ, **self.backend_env, **self.env}

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL of this server's metadata, or None for SQLite in the data dir."""
        return self.process_env.get("CARGOBAY_DATABASE") or None

    @property
    def settings(self) -> Settings:
        """cargobay's settings for this server (database URL, storage URL, ...)."""
        return load_settings(environ=self.process_env, overrides={"data_dir": self.data_dir})

    def discard(self) -> None:
        """Stop the server and drop its PostgreSQL database, if it has one."""
        self.stop()
        url = (self.backend_env or {}).get("CARGOBAY_DATABASE")
        if url and pgcluster.backend() == "postgres":
            pgcluster.shared_cluster().drop_database(make_url(url).database)

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
        env = self.process_env
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
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still busy starting: the deadline decides
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
