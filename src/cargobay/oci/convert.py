"""Manifest format conversion for BatchGetImage's acceptedMediaTypes, as ECR performs it.

ECR answers a pull by tag in the stored format when the client accepts it, and otherwise
converts an image manifest between Docker Image Manifest V2 Schema 2 and OCI (both ways); it
converts neither indexes nor a pull by digest (a digest names exact bytes). cargobay does not
synthesize Docker schema 1. A manifest that cannot be served in an accepted format is None:
the caller reports the image as not found.
"""

from __future__ import annotations

import json
from typing import Any

from cargobay.oci.manifest import DOCKER_MANIFEST, OCI_MANIFEST

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
# Docker layer type -> OCI layer type; conversion the other way reads it backwards.
_LAYERS = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": (
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ),
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    ),
}
_CONFIGS = {DOCKER_CONFIG: OCI_CONFIG}
# Fields of an OCI manifest Docker schema 2 has no place for: a manifest using them is an
# artifact or a referrer, not an image a Docker client could run.
_OCI_ONLY = ("artifactType", "subject")


def _descriptor(raw: dict[str, Any], types: dict[str, str], keep_annotations: bool) -> dict | None:
    media_type = raw.get("mediaType")
    if media_type not in types:
        return None
    out = {"mediaType": types[media_type], "size": raw["size"], "digest": raw["digest"]}
    if "urls" in raw:
        out["urls"] = raw["urls"]
    if keep_annotations and "annotations" in raw:
        out["annotations"] = raw["annotations"]
    return out


def _convert(body: dict[str, Any], target: str) -> dict[str, Any] | None:
    to_oci = target == OCI_MANIFEST
    layers = _LAYERS if to_oci else {v: k for k, v in _LAYERS.items()}
    configs = _CONFIGS if to_oci else {v: k for k, v in _CONFIGS.items()}
    if not to_oci and any(key in body for key in _OCI_ONLY):
        return None
    config = _descriptor(body.get("config") or {}, configs, to_oci)
    converted = [_descriptor(layer, layers, to_oci) for layer in body.get("layers") or []]
    if config is None or any(layer is None for layer in converted):
        return None
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": target,
        "config": config,
        "layers": converted,
    }
    if to_oci and "annotations" in body:
        out["annotations"] = body["annotations"]
    return out


def for_accepted(
    content: bytes, media_type: str, accepted: list[str] | None, by_digest: bool
) -> tuple[bytes, str] | None:
    """(manifest, media type) to answer for `accepted` (None or empty: anything), or None
    when ECR would not serve the image in any accepted format."""
    if not accepted or media_type in accepted:
        return content, media_type
    if by_digest or media_type not in (DOCKER_MANIFEST, OCI_MANIFEST):
        return None
    target = OCI_MANIFEST if media_type == DOCKER_MANIFEST else DOCKER_MANIFEST
    if target not in accepted:
        return None
    body = json.loads(content)
    converted = _convert(body, target)
    if converted is None:
        return None
    return json.dumps(converted, indent=3).encode(), target
