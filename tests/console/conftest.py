"""Console tests run against one real `cargobay serve` with images pushed by skopeo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from console.consolehelp import REGION_OTHER, REGION_SUFFIX
from e2e.ecrhelp import client, push, unique
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


@pytest.fixture(scope="module")
def regional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A server serving two regions, with one repository created in each (boto3 signed for
    the region), under the same prefix."""
    server = Server(
        tmp_path_factory.mktemp("regional") / "data",
        workers=1,
        env={
            "CARGOBAY_REGIONS_SERVED": REGION_OTHER,
            "CARGOBAY_HOST_SUFFIX": REGION_SUFFIX,
        },
    ).start(timeout=120)
    try:
        key, secret = server.credentials
        away_client = boto3.client(
            "ecr",
            endpoint_url=server.url,
            region_name=REGION_OTHER,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )
        home, away = unique("regional/home"), unique("regional/away")
        client(server).create_repository(repositoryName=home)
        away_client.create_repository(repositoryName=away, imageTagMutability="IMMUTABLE")
        yield server, home, away
    finally:
        server.discard()
