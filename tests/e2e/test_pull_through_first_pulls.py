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
from imagebuilder import build_image, sha256
from server import Server
from upstream.distribution import Distribution

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


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


def _cache_manifest(setup: Setup, name: str) -> None:
    """The manifest's first pull: the image's blobs are then known but not yet fetched."""
    response = setup.server.session().get(
        f"{setup.server.url}/v2/up/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200, response.text


def test_a_range_on_a_first_blob_pull_is_honoured_and_the_blob_cached_whole(
    setup: Setup, tmp_path: Path
) -> None:
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "image", [1_500_000, 400_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/ranged:v1")
    _cache_manifest(setup, "team/ranged")
    session = server.session()
    data, small_data = sorted(image.layers, key=len, reverse=True)
    big, small = sha256(data), sha256(small_data)
    url = f"{server.url}/v2/up/team/ranged/blobs/{big}"

    ranged = session.get(url, headers={"Range": "bytes=1000-600999"})
    assert ranged.status_code == 206, ranged.headers
    assert ranged.headers["Content-Range"] == f"bytes 1000-600999/{len(data)}"
    assert ranged.content == data[1000:601000]
    # Stored whole by that first pull: served from the store, not fetched again.
    whole = session.get(url)
    assert whole.status_code == 200 and whole.content == data
    tail = session.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert upstream_requests(upstream, f"/v2/team/ranged/blobs/{big}") == 1

    # A Range past the end of an uncached blob: 416, and the blob is still fetched and kept.
    small_url = f"{server.url}/v2/up/team/ranged/blobs/{small}"
    beyond = session.get(small_url, headers={"Range": "bytes=999999999-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(small_data)}"
    again = session.get(small_url)
    assert again.status_code == 200 and again.content == small_data
    assert upstream_requests(upstream, f"/v2/team/ranged/blobs/{small}") == 1
