"""The scale-out backends for `--backend postgres-s3`: a private PostgreSQL cluster and moto's S3
server, both on loopback, shared by the two registries under test.

cargobay gets a database in the cluster and a bucket; Distribution gets its own bucket through
its `s3` storage driver, so both registries store blobs in the same S3 server. Unlike the test
cluster, the one tests/pgcluster.py starts for the PostgreSQL suite, this one keeps PostgreSQL's
durable defaults (fsync and synchronous_commit on), as a production primary would.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from benchmarks.registries import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pgcluster  # tests/ is not a package; pg_capacity imports it the same way

MOTO_KEY_ID = "AKIACARGOBAYBENCH000"
MOTO_SECRET = "cargobay-bench-secret"
REGION = "us-east-1"


class ScaleOut:
    """Starts PostgreSQL and moto; `cargobay_env()` and `distribution_storage()` point the
    registries at them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cluster: pgcluster.Cluster | None = None
        self.pg_port = 0
        self.moto_port = free_port()
        self.moto: subprocess.Popen[bytes] | None = None

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def start(self) -> ScaleOut:
        self._start_postgres()
        self._start_moto()
        for bucket in ("cargobay-bench", "distribution-bench"):
            self._s3().create_bucket(Bucket=bucket)
        self._psql("CREATE DATABASE cargobay_bench")
        return self

    def _start_postgres(self) -> None:
        self.cluster = pgcluster.Cluster.start(durable=True)
        self.pg_port = int(make_url(self.cluster.admin_url).port or 5432)

    def _psql(self, sql: str) -> str:
        assert self.cluster is not None
        return self.cluster.psql(sql)

    def _start_moto(self) -> None:
        log = open(self.workdir / "moto-s3.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.aws_env()},
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self._s3().list_buckets()
                return
            time.sleep(0.2)
        raise RuntimeError("moto's S3 server did not start")

    def _s3(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=REGION,
            aws_access_key_id=MOTO_KEY_ID,
            aws_secret_access_key=MOTO_SECRET,
            config=Config(s3={"addressing_style": "path"}),
        )

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": MOTO_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
            "AWS_DEFAULT_REGION": REGION,
        }

    def cargobay_env(self) -> dict[str, str]:
        """Settings for `cargobay serve`: the cluster's database and the bucket."""
        return {
            **self.aws_env(),
            "CARGOBAY_DATABASE": (f"postgresql://postgres@127.0.0.1:{self.pg_port}/cargobay_bench"),
            "CARGOBAY_AUTO_UPGRADE": "true",
            "CARGOBAY_STORAGE": (
                f"s3://cargobay-bench?endpoint={self.s3_endpoint}&region={REGION}&path_style=true"
            ),
        }

    def distribution_storage(self) -> str:
        """Distribution's `storage:` section for the same S3 server."""
        return f"""\
  s3:
    region: {REGION}
    regionendpoint: {self.s3_endpoint}
    bucket: distribution-bench
    accesskey: {MOTO_KEY_ID}
    secretkey: {MOTO_SECRET}
    secure: false
    v4auth: true
"""

    def pg_transactions(self) -> int:
        """Transactions PostgreSQL has committed or rolled back in cargobay's database so far
        (pg_stat_database), to report per request beside cargobay's own statement count."""
        row = self._psql(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = 'cargobay_bench'"
        )
        return int(row or 0)

    def stop(self) -> None:
        if self.moto is not None and self.moto.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.moto.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.moto.wait(10)
        self.moto = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
