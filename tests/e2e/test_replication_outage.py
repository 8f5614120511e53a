"""Durability of replication across deployments: a 200 MiB image is pushed to A while B, the
destination deployment, is down; B comes back after an outage that spans several retries, and
the task queue (retrying with backoff) catches up. DescribeImageReplicationStatus stays
IN_PROGRESS throughout the outage (never FAILED), then reaches COMPLETE, and B serves the image
byte-identical, once.

The outage is measured in retries, not minutes: A's backoff is capped at BACKOFF_CAP seconds
(`task_max_backoff_seconds`, an operator setting), so an outage of OUTAGE_SECONDS sees the task
tried as often as a minute sees at the default schedule (at 0, 2, 6, 14 and 30 s; here at 0, 2,
6, 10, 14 and 18 s), and B is retried within BACKOFF_CAP seconds of its return instead of up
to a minute later.

The layers are written to disk as they are generated (a gzip'd tar of random bytes, hashed as
it goes), never held in memory. Part of the normal suite: it is one test, and it waits on
outcomes with generous timeouts, never on times."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.replication.service import TASK_KIND
from e2e.ecrhelp import require_tool
from e2e.replhelp import SOURCE_ACCOUNT, boto, configure, source_for, statuses, wait_statuses
from server import Server

# Not backend-marked: the retry path it exercises is the task queue's, which the other
# backend-marked replication tests already run on PostgreSQL.

EU = "eu-west-1"
MiB = 1024 * 1024
LAYERS = [120 * MiB, 80 * MiB]
BACKOFF_CAP = 4  # A's task_max_backoff_seconds: retries 2, 4, 4, 4, ... seconds apart
OUTAGE_SECONDS = 5 * BACKOFF_CAP  # six attempts: a minute at the default sees five
TRANSFER_TIMEOUT = 900  # skopeo moving 200 MiB on a loaded 2-core machine


class _RandomBytes(io.RawIOBase):
    """`size` random bytes, read in whatever pieces the reader asks for."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = os.urandom(n)
        self.left -= n
        return n


class _Hashing(io.RawIOBase):
    """A writer that hashes what passes through it on its way to `target`."""

    def __init__(self, target) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def _write_layer(layout: Path, size: int) -> tuple[dict, str]:
    """A gzip'd tar of `size` random bytes, streamed to the layout; its descriptor and
    diff id."""
    staging = layout / "layer.partial"
    with open(staging, "wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=1, mtime=0) as gz:
            plain = _Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w|") as tar:
                info = tarfile.TarInfo("data.bin")
                info.size = size
                tar.addfile(info, io.BufferedReader(_RandomBytes(size), MiB))
    digest = "sha256:" + compressed.hash.hexdigest()
    staging.rename(_blob_path(layout, digest))
    descriptor = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": compressed.size,
    }
    return descriptor, "sha256:" + plain.hash.hexdigest()


def _write(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob_path(layout, digest).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def big_image(layout: Path) -> str:
    """An OCI layout whose `latest` is an image of LAYERS; returns the manifest's digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    layers, diff_ids = zip(*(_write_layer(layout, size) for size in LAYERS), strict=True)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    config_descriptor = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_write(layout, json.dumps(config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": list(layers),
    }
    manifest_descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_write(layout, json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    (layout / "index.json").write_text(json.dumps(index))
    return manifest_descriptor["digest"]


def _skopeo_copy(*args: str) -> None:
    proc = subprocess.run(
        [require_tool("skopeo"), "copy", *args],
        capture_output=True,
        text=True,
        timeout=TRANSFER_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr


def _replication_attempts(server: Server) -> int:
    """How many times `server` has run its one replication task so far (from its database)."""

    async def read() -> int:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                t = schema.tasks
                rows = await conn.execute(select(t.c.attempts).where(t.c.kind == TASK_KIND))
                [attempts] = rows.scalars().all()
                return int(attempts)
        finally:
            await db.dispose()

    return asyncio.run(read())


def _pulled_digests(server: Server, ref: str, dest: Path) -> dict[str, str]:
    """skopeo pulls `ref` into a `dir:`; the sha256 of every file, read in pieces."""
    _skopeo_copy(
        "--src-tls-verify=false", "--src-creds", server.creds_arg,
        f"docker://{server.host}/{ref}", f"dir:{dest}",
    )  # fmt: skip
    found = {}
    for path in dest.iterdir():
        if path.name == "version":
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(MiB):
                digest.update(chunk)
        found[path.name] = digest.hexdigest()
    return found


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    b = Server(tmp_path / "b", env={"CARGOBAY_REGION": EU})
    a: Server | None = None
    try:
        b.start(timeout=120)
        a = source_for(tmp_path / "a", {EU: (b, b.credentials)})
        a.env["CARGOBAY_TASK_MAX_BACKOFF_SECONDS"] = str(BACKOFF_CAP)
        a.start(timeout=120)
        yield a, b
    finally:
        if a is not None:
            a.discard()
        b.discard()


def test_a_200_mib_image_catches_up_after_the_destination_was_down_through_retries(
    regions: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = regions
    configure(a, tmp_path, [{"destinations": [{"region": EU, "registryId": SOURCE_ACCOUNT}]}])
    digest = big_image(tmp_path / "img")
    key = (EU, SOURCE_ACCOUNT)

    b.stop()
    # The push completes while the destination is down: it never waits on replication.
    _skopeo_copy(
        "--dest-tls-verify=false", "--dest-creds", a.creds_arg,
        f"oci:{tmp_path / 'img'}:latest", f"docker://{a.host}/big/app:1.0",
    )  # fmt: skip
    seen = set()
    back_at = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < back_at:
        status = statuses(a, "big/app", "1.0")[key]
        assert status["status"] == "IN_PROGRESS", status  # retried, never given up on
        seen.add(status["status"])
        time.sleep(2)
    assert seen == {"IN_PROGRESS"}
    # Tried all through the outage (about six times; four leave room for a loaded machine).
    assert _replication_attempts(a) >= 4

    b.start(timeout=120)
    wait_statuses(a, "big/app", "1.0", {key: "COMPLETE"}, timeout=TRANSFER_TIMEOUT)
    pushed = _pulled_digests(a, "big/app:1.0", tmp_path / "from-a")
    assert len(pushed) == 2 + len(LAYERS)  # the manifest, the config and the layers
    assert _pulled_digests(b, "big/app:1.0", tmp_path / "from-b") == pushed
    assert "sha256:" + pushed["manifest.json"] == digest

    # Once: one image at B, under the one tag, of the pushed size.
    [image] = boto(b, "ecr", EU).describe_images(repositoryName="big/app")["imageDetails"]
    assert (image["imageDigest"], image["imageTags"]) == (digest, ["1.0"])
    assert image["imageSizeInBytes"] >= sum(LAYERS)
