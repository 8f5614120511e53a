"""Shared fixtures: a real cargobay server and real OCI images on disk."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from imagebuilder import Image, build_image
from server import Server


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One registry shared by the whole session (tests use their own repository names)."""
    server = Server(tmp_path_factory.mktemp("registry") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Server]:
    """A registry of this test's own, for tests that restart or kill it."""
    server = Server(tmp_path / "data").start()
    yield server
    server.stop()


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """A small two-layer OCI image in an OCI layout, tagged `latest`."""
    return build_image(tmp_path / "image", [4096, 300_000])


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return path
