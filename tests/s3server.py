"""A real S3-compatible server for tests: moto's standalone server on a free loopback port.

    server = MotoServer().start()
    server.create_bucket("blobs")
    url = server.storage_url("blobs", "some/prefix", sse="AES256")  # for --storage / open_store
    ...
    server.stop()

Credentials are dummies (moto accepts any); `env` holds them for a `cargobay serve` process and
`client()` makes a boto3 client for inspecting what the store wrote.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests

ACCESS_KEY_ID = "AKIACARGOBAYTESTS000"
SECRET_ACCESS_KEY = "cargobay-moto-secret"
REGION = "us-east-1"
CREDENTIAL_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": REGION,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """`python -m moto.server` on 127.0.0.1, in its own process group."""

    log_path: Path | None = None
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should reach this server with the AWS chain."""
        return dict(CREDENTIAL_ENV)

    def start(self, timeout: float = 30.0) -> MotoServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIAL_ENV},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited early ({self.proc.returncode})")
            try:
                requests.get(self.endpoint, timeout=1)
                return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or too slow to answer on a loaded machine
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def create_bucket(self, bucket: str) -> str:
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        return bucket

    def storage_url(
        self, bucket: str, prefix: str = "", *, with_credentials: bool = False, **params: str
    ) -> str:
        """An `s3://` storage URL for this server. Credentials come from `env` (the AWS chain)
        unless `with_credentials` puts them in the URL."""
        query: dict[str, str] = {"endpoint": self.endpoint, "region": REGION, "path_style": "true"}
        if with_credentials:
            query.update(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY)
        query.update(params)
        path = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"s3://{bucket}{path}?{urlencode(query)}"
