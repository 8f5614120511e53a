"""Shared fixtures: a real cargobay server and real OCI images on disk."""

from __future__ import annotations

import fnmatch
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pgcluster
from imagebuilder import Image, build_image
from s3server import MotoServer
from server import Server

# Tests whose outcome depends on the metadata or storage backend: CI runs them once more on
# PostgreSQL + S3 (scripts/test.sh, `-m backend`). Patterns match test file names.
BACKEND_SENSITIVE = (
    "test_protocol.py",
    "test_errors.py",
    "test_durability.py",
    "test_skopeo.py",
    "test_podman.py",
    "test_buildah.py",
    "test_oras.py",
    "test_smoke.py",
    "test_serve.py",
    "test_ecr_*.py",
    "test_migrations.py",
    "test_backend_*.py",
    "test_gc.py",
    "test_usage.py",
    "test_iam_api.py",
    "test_pull_through_*.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(fnmatch.fnmatch(item.path.name, pattern) for pattern in BACKEND_SENSITIVE):
            item.add_marker(pytest.mark.backend)


@pytest.fixture(scope="session", autouse=True)
def database_backend() -> Iterator[str]:
    """The metadata backend of this run (CARGOBAY_TEST_DATABASE); a PostgreSQL cluster, when
    chosen, starts here (so a failure to start shows once) and stops at the end."""
    backend = pgcluster.backend()
    if backend == "postgres":
        pgcluster.shared_cluster()
    yield backend
    pgcluster.stop_shared_cluster()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One registry shared by the whole session (tests use their own repository names)."""
    server = Server(tmp_path_factory.mktemp("registry") / "data").start()
    yield server
    server.discard()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto S3 server on a loopback port, shared by the session (tests use own buckets)."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Server]:
    """A registry of this test's own, for tests that restart or kill it."""
    server = Server(tmp_path / "data").start()
    yield server
    server.discard()


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """A small two-layer OCI image in an OCI layout, tagged `latest`."""
    return build_image(tmp_path / "image", [4096, 300_000])


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return path
