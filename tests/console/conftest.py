"""Console tests run against one real `cargobay serve` with images pushed by skopeo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import push, unique
from imagebuilder import build_image
from server import Server


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("console") / "data").start(timeout=120)
    yield server
    server.discard()


@pytest.fixture(scope="module")
def pushed(console_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository holding one image (tags 1.0 and latest), pushed by skopeo."""
    name = unique("console/app")
    image = build_image(tmp_path_factory.mktemp("img") / "image", [4096, 200_000])
    push(console_server, image, f"{name}:1.0")
    push(console_server, image, f"{name}:latest")
    return name


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """A scratch directory (policy files for `make_user`, images)."""
    return tmp_path
