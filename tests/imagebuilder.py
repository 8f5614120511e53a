"""Builds real OCI images on disk (an OCI image layout) with random gzip'd tar layers.

Tests push these with skopeo/oras/podman and compare what comes back byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    layout: Path
    manifest_digest: str
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b in [self.config, *self.layers]}


def random_layer(size: int, name: str = "data.bin") -> bytes:
    """A gzip'd tar holding one file of `size` random bytes (incompressible)."""
    payload = os.urandom(size)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_buf.getvalue(), compresslevel=1, mtime=0)


def _write_blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def build_image(
    layout: Path, layer_sizes: list[int] = (1024,), tag: str = "latest", arch: str = "amd64"
) -> Image:
    """Write an OCI layout at `layout` holding one image tagged `tag`."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layers = [random_layer(size, f"file{i}.bin") for i, size in enumerate(layer_sizes)]
    diff_ids = [sha256(gzip.decompress(layer)) for layer in layers]
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/file0.bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "cargobay tests"} for _ in layers],
        }
    ).encode()
    for blob in (config, *layers):
        _write_blob(layout, blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}
                for layer in layers
            ],
        }
    ).encode()
    manifest_digest = _write_blob(layout, manifest)
    index_path = layout / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    index_path.write_text(json.dumps(index))
    return Image(layout, manifest_digest, manifest, config, layers)


@dataclass
class Index:
    """An OCI image index (multi-arch image) in an OCI layout, and its child images."""

    layout: Path
    digest: str
    content: bytes
    images: dict[str, Image]

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob the index references, child manifests included."""
        blobs = {self.digest: self.content}
        for image in self.images.values():
            blobs.update(image.blobs)
            blobs[image.manifest_digest] = image.manifest
        return blobs


def build_index(
    layout: Path,
    arches: list[str] = ("amd64", "arm64"),
    layer_sizes: list[int] = (1024,),
    tag: str = "latest",
) -> Index:
    """Write an OCI layout at `layout` holding a multi-arch index tagged `tag` whose children
    are one image per architecture, each with its own random layers."""
    images = {
        arch: build_image(layout, layer_sizes, tag=f"{tag}-{arch}", arch=arch) for arch in arches
    }
    content = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for arch, image in images.items()
            ],
        }
    ).encode()
    digest = _write_blob(layout, content)
    # The layout's own index.json names only the multi-arch index, under `tag`.
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_INDEX,
                        "digest": digest,
                        "size": len(content),
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )
    return Index(layout, digest, content, images)


def layout_blob(layout: Path, digest: str) -> bytes:
    """The bytes of blob `digest` in the OCI layout at `layout`."""
    return (layout / "blobs" / digest.split(":")[0] / digest.split(":")[1]).read_bytes()


def layout_manifest_digest(layout: Path, tag: str | None = None) -> str:
    """The digest the OCI layout's index.json names (under `tag`, or its only entry)."""
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    if tag is not None:
        entries = [
            e
            for e in entries
            if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
        ]
    assert len(entries) == 1, entries
    return entries[0]["digest"]
