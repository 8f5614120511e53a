"""What a test server's blob store holds, on either test storage backend: files under
`<data_dir>/storage` (the default) or objects in the server's S3 bucket (CARGOBAY_TEST_STORAGE=s3,
see server.py). For tests that check the store itself, not only what the registry serves.

Both layouts keep committed blobs at `blobs/<algorithm>/<2 hex>/<hex>`. Uploads differ: one file
`uploads/<id>` on the filesystem; objects under `_uploads/<id>/` on S3 (pieces and `state.json`),
and multipart uploads that a commit opened.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cargobay.storage.direct import STAGING_BYTES
from cargobay.storage.s3 import S3Config, parse_url
from server import Server

MiB = 1024 * 1024


@dataclass(frozen=True)
class _Bucket:
    client: Any
    config: S3Config

    def key(self, relative: str) -> str:
        return f"{self.config.prefix}/{relative}" if self.config.prefix else relative

    def relative(self, key: str) -> str:
        return key[len(self.config.prefix) + 1 :] if self.config.prefix else key

    def keys(self, relative_prefix: str) -> list[tuple[str, int]]:
        """(key relative to the store's prefix, size) of every object under a prefix."""
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.config.bucket, Prefix=self.key(relative_prefix)):
            found += [(self.relative(o["Key"]), int(o["Size"])) for o in page.get("Contents", [])]
        return found

    def body(self, relative: str) -> Any:
        """An object's streaming body."""
        return self.client.get_object(Bucket=self.config.bucket, Key=self.key(relative))["Body"]


def _bucket(server: Server) -> _Bucket | None:
    """The server's S3 store, or None when its blobs are files in the data dir."""
    url = server.settings.storage_url
    if not url.startswith("s3://"):
        return None
    env = server.process_env
    credentials = (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"))
    return _open_bucket(url, env.get("AWS_DEFAULT_REGION"), *credentials)


@functools.cache
def _open_bucket(url: str, region: str | None, key_id: str | None, secret: str | None) -> _Bucket:
    import boto3
    from botocore.config import Config

    config = parse_url(url)
    # As the store does: path-style unless told otherwise when an endpoint is given.
    path_style = config.endpoint is not None if config.path_style is None else config.path_style
    client = boto3.client(
        "s3",
        endpoint_url=config.endpoint,
        region_name=config.region or region or "us-east-1",
        aws_access_key_id=config.access_key_id or key_id,
        aws_secret_access_key=config.secret_access_key or secret,
        config=Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            signature_version="s3v4",
        ),
    )
    return _Bucket(client, config)


def _storage_root(server: Server) -> Path:
    return server.data_dir / "storage"


def _digest_of(relative: str) -> str:
    """`blobs/sha256/ab/abcd...` -> `sha256:abcd...`."""
    parts = relative.split("/")
    return f"{parts[1]}:{parts[-1]}"


def stored_blobs(server: Server) -> dict[str, str]:
    """Every object in the blob area, as its path relative to the store (`blobs/...`) mapped
    to the digest its name claims."""
    bucket = _bucket(server)
    if bucket is not None:
        return {rel: _digest_of(rel) for rel, _ in bucket.keys("blobs/")}
    root = _storage_root(server)
    return {
        str(p.relative_to(root)): _digest_of(str(p.relative_to(root)))
        for p in (root / "blobs").rglob("*")
        if p.is_file()
    }


def stored_blob_digests(server: Server) -> list[str]:
    """The digests of the stored blobs, sorted, one entry per stored file or object (so a blob
    stored twice, under whatever name, shows twice)."""
    return sorted(stored_blobs(server).values())


def _blob_relative(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart[:2]}/{hexpart}"


def read_stored_blob(server: Server, digest: str) -> bytes:
    """A committed blob's bytes, read from the store itself (not through the registry)."""
    bucket = _bucket(server)
    if bucket is not None:
        return bucket.body(_blob_relative(digest)).read()
    return (_storage_root(server) / _blob_relative(digest)).read_bytes()


def delete_stored_blob(server: Server, digest: str) -> None:
    """Remove a blob's bytes from the store (to give space back after a big test)."""
    bucket = _bucket(server)
    if bucket is not None:
        bucket.client.delete_object(
            Bucket=bucket.config.bucket, Key=bucket.key(_blob_relative(digest))
        )
    else:
        (_storage_root(server) / _blob_relative(digest)).unlink(missing_ok=True)


def assert_blob_store_consistent(server: Server) -> set[str]:
    """Every stored blob is complete: its content hashes to its own name, and it sits under
    the directory (key prefix) of its first two hex digits. Returns the stored digests."""
    bucket = _bucket(server)
    digests = set()
    for relative, digest in stored_blobs(server).items():
        algorithm, _, hexpart = digest.partition(":")
        parts = relative.split("/")
        assert len(parts) == 4 and parts[2] == hexpart[:2], f"misplaced blob {relative}"
        hasher = hashlib.new(algorithm)
        if bucket is not None:
            with contextlib.closing(bucket.body(relative)) as body:
                while chunk := body.read(MiB):
                    hasher.update(chunk)
        else:
            with open(_storage_root(server) / relative, "rb") as fh:
                while chunk := fh.read(MiB):
                    hasher.update(chunk)
        assert hasher.hexdigest() == hexpart, f"partial or corrupt blob {relative}"
        digests.add(digest)
    return digests


def upload_leftovers(server: Server) -> list[str]:
    """What uploads left in the store: files under `uploads/` on the filesystem; on S3, objects
    under `_uploads/` and multipart uploads still open (a commit that never completed)."""
    bucket = _bucket(server)
    if bucket is None:
        root = _storage_root(server) / "uploads"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    left = [rel for rel, _ in bucket.keys("_uploads/")]
    paginator = bucket.client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket.config.bucket, Prefix=bucket.key("")):
        left += [f"multipart upload at {u['Key']}" for u in page.get("Uploads", [])]
    return sorted(left)


def upload_bytes_stored(server: Server, upload_id: str) -> int:
    """How many bytes of an upload are in the store, including those a request is still
    writing: the upload's file, or (S3) all its piece objects, named by its state or not yet."""
    bucket = _bucket(server)
    if bucket is None:
        try:
            return (_storage_root(server) / "uploads" / upload_id).stat().st_size
        except FileNotFoundError:
            return 0
    return sum(
        size
        for rel, size in bucket.keys(f"_uploads/{upload_id}/")
        if rel.rsplit("/", 1)[1] != "state.json"
    )


def buffered_before_store(server: Server) -> int:
    """How many bytes of a request body may sit in the server's memory before any of them reach
    the store: up to one direct-I/O staging buffer on the filesystem; up to one part on S3,
    which writes an upload's bytes a part at a time. Tests that wait for a stalled request's
    bytes to reach the store send this much more."""
    bucket = _bucket(server)
    return STAGING_BYTES if bucket is None else bucket.config.part_size
