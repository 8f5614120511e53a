"""Blobs served while the disk reads ahead of the socket (storage/readahead.py): a blob file
out of the page cache comes back byte for byte, whole, in ranges and to many clients at once,
skopeo pulls a just-pushed image whose big layer was written past the page cache, a commit
reads that part back into the cache, and a SIGKILL right after the push loses nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from e2e.ocihttp import Client, unique_repo
from e2e.test_skopeo import pull, push, unique
from imagebuilder import build_image, layout_blob, sha256
from server import Server
from storagehelp import assert_blob_store_consistent

MiB = 1024 * 1024


def _blob_file(server: Server, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    path = server.data_dir / "storage" / "blobs" / algorithm / hexpart[:2] / hexpart
    if not path.exists():
        pytest.skip("blobs are not files on this storage backend")
    return path


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def big_blob(registry: Server) -> tuple[str, str, bytes]:
    data = os.urandom(24 * MiB) + b"tail"
    repo = unique_repo("readahead")
    digest = Client(registry).push_blob(repo, data)
    return repo, digest, data


def test_an_evicted_blob_comes_back_whole(registry: Server, big_blob) -> None:
    repo, digest, data = big_blob
    _evict(_blob_file(registry, digest))
    assert hashlib.sha256(Client(registry).pull_blob(repo, digest)).digest() == (
        hashlib.sha256(data).digest()
    )


def test_an_evicted_blob_serves_ranges(registry: Server, big_blob) -> None:
    repo, digest, data = big_blob
    path = _blob_file(registry, digest)
    for first, last in [(5 * MiB + 3, 20 * MiB), (len(data) - 9 * MiB, len(data) - 1)]:
        _evict(path)
        response = Client(registry).get(
            f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={first}-{last}"}
        )
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert response.content == data[first : last + 1]


def test_many_clients_of_one_evicted_blob_each_get_every_byte(registry: Server, big_blob) -> None:
    repo, digest, data = big_blob
    _evict(_blob_file(registry, digest))
    expected = hashlib.sha256(data).hexdigest()

    def one(_: int) -> str:
        return hashlib.sha256(Client(registry).pull_blob(repo, digest)).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [expected] * 8


def test_skopeo_pulls_a_big_layer_right_after_pushing_it(registry: Server, tmp_path) -> None:
    # 40 MiB: the part past the first 32 MiB is written with O_DIRECT, not into the cache.
    image = build_image(tmp_path / "src", [40 * MiB, 4096])
    ref = f"{unique('readahead')}:v1"
    push(registry, f"oci:{image.layout}:latest", ref)
    pull(registry, ref, f"oci:{tmp_path / 'dst'}:latest")
    for layer in image.layers:
        assert layout_blob(tmp_path / "dst", sha256(layer)) == layer


def _resident(path: Path) -> int:
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_a_pushed_blob_is_read_back_into_the_page_cache(registry: Server) -> None:
    # Past DIRECT_FROM (32 MiB) the upload skips the page cache; the commit reads it back.
    data = os.urandom(48 * MiB)
    digest = Client(registry).push_blob(unique_repo("readback"), data)
    path = _blob_file(registry, digest)
    deadline = time.monotonic() + 60  # a bound for a busy machine, not a timing
    while (resident := _resident(path)) < len(data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resident == len(data)


def test_a_push_killed_right_after_its_put_answered_is_intact(fresh_registry: Server) -> None:
    server = fresh_registry
    client = Client(server)
    repo = unique_repo("readback-crash")
    image = client.push_image(repo, "v1", layer_sizes=[80 * MiB, 1000])
    server.kill()  # SIGKILL, while the readback of the big layer may still run
    server.start()
    client = Client(server)
    assert client.get(f"/v2/{repo}/manifests/v1").content == image.manifest
    for digest, data in image.blobs.items():
        assert hashlib.sha256(client.pull_blob(repo, digest)).digest() == (
            hashlib.sha256(data).digest()
        )
    assert_blob_store_consistent(server)
