"""Helpers for the KMS and encryption-at-rest tests: KMS clients, an image whose layer is
an uncompressed tar holding a marker, pushing it byte for byte, and searching a data dir."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import requests

from e2e.ecrhelp import (
    aws,
    aws_client,
    client,
)
from imagebuilder import Image, sha256
from server import Server

MARKER = b"CARGOBAY-PLAINTEXT-MARKER-7f3a9c"
OCI_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
SEGMENT = 64 * 1024  # crypto.stream.DEFAULT_SEGMENT_SIZE


def kms_client(server: Server, creds: tuple[str, str] | None = None) -> Any:
    return aws_client(server, "kms", creds)


def create_key(server: Server, *args: str) -> dict[str, Any]:
    return aws(server, "kms", "create-key", "--description", "registry", *args).json["KeyMetadata"]


def marker_image(layout: Path) -> Image:
    """An OCI image whose one layer is an uncompressed tar holding MARKER many times, so the
    marker would show in any plaintext copy of the layer (and spans several segments)."""
    payload = (MARKER + b"\n") * 12_000  # ~400 KiB
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("marker.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = buf.getvalue()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
            "marker": MARKER.decode(),
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [{"mediaType": OCI_TAR_LAYER, "digest": sha256(layer), "size": len(layer)}],
            "annotations": {"note": "no marker here"},
        }
    ).encode()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config, manifest):
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return Image(layout, sha256(manifest), manifest, config, [layer])


def grep_data_dir(server: Server, needle: bytes) -> str:
    """`grep -r` over the whole data directory (blob store, uploads, the SQLite database)."""
    proc = subprocess.run(
        ["grep", "-r", "-l", "-a", "-F", needle.decode(), str(server.data_dir)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def v2_get(server: Server, path: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v2/{path}", auth=server.credentials, headers=headers, timeout=30
    )


def put_uncompressed(server: Server, repo: str, image: Image, tag: str) -> None:
    """The image exactly as built: its layer through InitiateLayerUpload / UploadLayerPart /
    CompleteLayerUpload, its config through `/v2/` (POST ?digest=), its manifest by PutImage."""
    ecr = client(server)
    layer = image.layers[0]
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    part = upload["partSize"]
    for first in range(0, len(layer), part):
        chunk = layer[first : first + part]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    done = ecr.complete_layer_upload(
        repositoryName=repo, uploadId=upload["uploadId"], layerDigests=[sha256(layer)]
    )
    assert done["layerDigest"] == sha256(layer)
    posted = requests.post(
        f"{server.url}/v2/{repo}/blobs/uploads/?digest={sha256(image.config)}",
        data=image.config,
        auth=server.credentials,
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    ecr.put_image(repositoryName=repo, imageManifest=image.manifest.decode(), imageTag=tag)
