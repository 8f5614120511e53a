"""Builds real image layers (tar, tar.gz, tar.zst) and serves them as a blob store would."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_bytes(files: dict[str, bytes | Entry], pax: bool = False) -> bytes:
    buf = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for path, value in files.items():
            entry = value if isinstance(value, Entry) else Entry(value)
            info = tarfile.TarInfo(path)
            info.type = entry.kind
            info.mode = entry.mode
            info.linkname = entry.linkname
            info.mtime = 0
            if entry.kind == tarfile.REGTYPE:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(data)
    return data


def layer(files: dict[str, bytes | Entry], compression: str = "gzip", pax: bool = False) -> bytes:
    return compress(tar_bytes(files, pax=pax), compression)


@dataclass
class LayeredImage:
    layers: list[tuple[bytes, str]] = field(default_factory=list)  # (blob, compression)
    architecture: str = "amd64"

    def add(self, files: dict[str, bytes | Entry], compression: str = "gzip") -> LayeredImage:
        self.layers.append((layer(files, compression), compression))
        return self

    @property
    def config(self) -> bytes:
        return json.dumps(
            {"architecture": self.architecture, "os": "linux", "rootfs": {"type": "layers"}}
        ).encode()

    @property
    def manifest(self) -> dict:
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config), "size": 1},
            "layers": [
                {"mediaType": MEDIA[c], "digest": sha256(b), "size": len(b)} for b, c in self.layers
            ],
        }

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b, _ in self.layers}

    def reader(self, chunk: int = 64 * 1024):
        blobs = self.blobs

        async def read(digest: str) -> AsyncIterator[bytes]:
            data = blobs[digest]
            for start in range(0, len(data), chunk):
                yield data[start : start + chunk]

        return read
