"""First pulls through the cache, with real parts only: Debian's `docker-registry` (CNCF
Distribution) as the upstream, whose access log counts every request cargobay makes; skopeo
and plain HTTP clients pulling through a real `cargobay serve` (two workers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.ecrhelp import pull, pulled_blob, pulled_manifest
from e2e.test_pull_through_cache import create_rule
from imagebuilder import build_image
from server import Server
from upstream.distribution import Distribution


@dataclass
class Setup:
    server: Server
    upstream: Distribution


def upstream_requests(upstream: Distribution, path: str) -> int:
    """Requests for `path` (any method) that the upstream answered 200."""
    pattern = re.compile(rf'"(GET|HEAD) {re.escape(path)} [^"]*" 200 ')
    return len(pattern.findall(upstream.log_path.read_text(errors="replace")))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("first-pulls")
    upstream = Distribution(root / "upstream").start()
    server = Server(root / "data")
    try:
        server.start(timeout=120)
        create_rule(server, "up", upstream.url)
        yield Setup(server, upstream)
    finally:
        server.discard()
        upstream.discard()


def test_ten_concurrent_skopeo_first_pulls_fetch_manifest_and_blobs_once(
    setup: Setup, tmp_path: Path
) -> None:
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "image", [4096, 700_000, 300_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/tenfold:v1")

    def first_pull(i: int) -> Path:
        pull(server, "up/team/tenfold:v1", tmp_path / f"pulled{i}")
        return tmp_path / f"pulled{i}"

    with ThreadPoolExecutor(10) as pool:
        pulled = list(pool.map(first_pull, range(10)))
    for directory in pulled:
        assert pulled_manifest(directory) == (image.manifest_digest, image.manifest)
        for digest, data in image.blobs.items():
            assert pulled_blob(directory, digest) == data
    assert upstream_requests(upstream, "/v2/team/tenfold/manifests/v1") == 1
    assert upstream_requests(upstream, f"/v2/team/tenfold/manifests/{image.manifest_digest}") == 0
    for digest in image.blobs:
        assert upstream_requests(upstream, f"/v2/team/tenfold/blobs/{digest}") == 1, digest
