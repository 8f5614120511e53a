"""A throwaway PostgreSQL cluster for the test session, and one database per cargobay server.

`CARGOBAY_TEST_DATABASE` chooses the metadata backend of every `Server`:
- empty or `sqlite`: SQLite in the server's data directory (cargobay's default);
- `postgres`: a private cluster this module starts with Debian's PostgreSQL binaries (initdb and
  pg_ctl, run as the `postgres` user when we are root) in a temporary directory, listening on
  127.0.0.1 only, on a free port, with trust authentication; stopped and deleted at exit;
- `postgresql://user@host:port/db`: an existing server whose user may CREATE DATABASE.

Each data directory gets its own database (named after the directory, so a server restarted on
the same data directory finds its metadata again, as with SQLite).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from sqlalchemy.engine import make_url

ENV = "CARGOBAY_TEST_DATABASE"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def backend() -> str:
    """`sqlite` or `postgres`, from CARGOBAY_TEST_DATABASE."""
    value = os.environ.get(ENV, "").strip()
    if value in ("", "sqlite"):
        return "sqlite"
    if value in ("postgres", "postgresql") or value.startswith(("postgres://", "postgresql://")):
        return "postgres"
    raise ValueError(f"{ENV}={value!r}: use sqlite, postgres or a postgresql:// URL")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> Path:
    found = sorted(glob.glob(PG_BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1])


class Cluster:
    """A PostgreSQL server: either one this process started, or one named by a URL."""

    def __init__(self, admin_url: str, *, root: Path | None = None, bin_dir: Path | None = None):
        self.admin_url = admin_url  # a superuser (or CREATEDB) connection to `postgres`
        self.root = root  # set when we own the cluster
        self.bin_dir = bin_dir
        self.databases: set[str] = set()
        self._lock = threading.Lock()

    # -- a private cluster ---------------------------------------------------------------------

    @classmethod
    def start(cls, *, durable: bool = False) -> Cluster:
        """A private cluster. The tests' turns fsync off for speed; `durable` keeps
        PostgreSQL's defaults (fsync, synchronous_commit), as a production primary has them,
        for the benchmarks."""
        bin_dir = _bin_dir()
        root = Path(tempfile.mkdtemp(prefix="cargobay-pg-"))
        as_root = os.geteuid() == 0
        run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        port = _free_port()
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                # A non-C default collation, as most installations have, so tests notice
                # any ordering that depends on it (cargobay's name columns are COLLATE "C").
                "--locale=C.UTF-8",
                "--locale-provider=icu",
                "--icu-locale=en-US",
                *([] if durable else ["--no-sync"]),
            ],
            check=True,
            capture_output=True,
            cwd=root,
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                f"-c unix_socket_directories={root}",
                "-c max_connections=400",
                *(
                    ["-c shared_buffers=128MB"]
                    if durable
                    else [
                        "-c fsync=off",
                        "-c synchronous_commit=off",
                        "-c full_page_writes=off",
                        "-c shared_buffers=64MB",
                    ]
                ),
            ]
        )
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            cwd=root,
        )
        return cls(f"postgresql://postgres@127.0.0.1:{port}/postgres", root=root, bin_dir=bin_dir)

    def stop(self) -> None:
        if self.root is None:
            with contextlib.suppress(Exception):
                for name in list(self.databases):
                    self.drop_database(name)
            return
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        assert self.bin_dir is not None
        pg_ctl = str(self.bin_dir / "pg_ctl")
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            cwd=self.root,
        )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    # -- databases -----------------------------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        url = make_url(self.admin_url).set(database=database)
        psql = str(self.bin_dir / "psql") if self.bin_dir else "psql"
        result = subprocess.run(
            [psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True,
            text=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10", **_libpq_env(url)},
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def url(self, database: str) -> str:
        """cargobay's --database URL for one of this cluster's databases."""
        return make_url(self.admin_url).set(database=database).render_as_string(False)

    def database_for(self, data_dir: Path) -> str:
        """The database of a data directory, created on first use."""
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        name = f"cargobay_test_{digest}"
        with self._lock:
            if name not in self.databases:
                exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
                if not exists:
                    self.psql(f'CREATE DATABASE "{name}"')
                self.databases.add(name)
        return name

    def drop_database(self, name: str) -> None:
        with self._lock:
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.databases.discard(name)


def _libpq_env(url) -> dict[str, str]:
    env = {"PGHOST": url.host or "127.0.0.1", "PGDATABASE": url.database or "postgres"}
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


_shared: Cluster | None = None
_shared_lock = threading.Lock()


def shared_cluster() -> Cluster:
    """This test process's PostgreSQL (started on first use, stopped at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            value = os.environ.get(ENV, "").strip()
            if value.startswith(("postgres://", "postgresql://")):
                _shared = Cluster(value)
            else:
                _shared = Cluster.start()
            atexit.register(stop_shared_cluster)
        return _shared


def stop_shared_cluster() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None


async def migrated_database(directory: Path) -> str:
    """A database at the current schema for one in-process test, on this run's backend: a
    PostgreSQL database named after `directory`, or a SQLite file in it."""
    from cargobay.metadata import migrations

    if backend() == "postgres":
        cluster = shared_cluster()
        url = cluster.url(cluster.database_for(directory))
    else:
        url = f"sqlite:///{directory / 'metadata.db'}"
    await migrations.upgrade(url)
    return url
