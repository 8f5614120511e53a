"""`scan_image`: one image manifest's inventory, findings and SBOM, streamed from its blobs.

The ECR operations (StartImageScan, DescribeImageScanFindings) and scan-on-push jobs call
this with the blob store's reader; an image index is scanned by calling it per platform
(`platforms` lists them). Memory stays bounded whatever the image size: layers stream through
a few chunk buffers, and only small package databases are held while they are parsed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cargobay.scanning import sbom
from cargobay.scanning.errors import UnsupportedImage
from cargobay.scanning.findings import Finding, MatchResult, match
from cargobay.scanning.model import Inventory
from cargobay.scanning.walk import INDEXES, BlobReader, build_inventory
from cargobay.vulndb.store import VulnDB

ATTESTATION = "attestation-manifest"  # docker buildx's provenance "platform" in an index


@dataclass(slots=True)
class ScanResult:
    image_digest: str
    inventory: Inventory
    findings: list[Finding]
    severity_counts: dict[str, int]
    database_version: int | None
    vulnerability_source_updated_at: float | None
    completed_at: float
    notes: list[str] = field(default_factory=list)

    def image_scan_findings(self) -> dict[str, Any]:
        """ECR's `ImageScanFindings` (timestamps as epoch seconds, as the JSON protocol
        sends them); the door paginates `findings`."""
        shape: dict[str, Any] = {
            "imageScanCompletedAt": self.completed_at,
            "findingSeverityCounts": self.severity_counts,
            "findings": [finding.shape() for finding in self.findings],
        }
        if self.vulnerability_source_updated_at is not None:
            shape["vulnerabilitySourceUpdatedAt"] = self.vulnerability_source_updated_at
        return shape

    def cyclonedx(self, image_name: str = "") -> dict[str, Any]:
        return sbom.cyclonedx(self.inventory, self.image_digest, image_name, self.completed_at)

    def spdx(self, image_name: str = "") -> dict[str, Any]:
        return sbom.spdx(self.inventory, self.image_digest, image_name, self.completed_at)


def _json(data: bytes | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise UnsupportedImage(f"the {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise UnsupportedImage(f"the {what} is not a JSON object")
    return value


def platforms(index: bytes | dict[str, Any]) -> list[dict[str, Any]]:
    """The image manifests of an index to scan one by one (attestations left out)."""
    document = _json(index, "index")
    if document.get("mediaType") not in INDEXES and "manifests" not in document:
        raise UnsupportedImage("not an image index")
    out = []
    for descriptor in document.get("manifests") or []:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            continue
        annotations = descriptor.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == ATTESTATION:
            continue
        out.append(descriptor)
    return out


async def scan_image(
    read_blob: BlobReader,
    manifest: bytes | dict[str, Any],
    config: bytes,
    vulndb: VulnDB | None,
    *,
    image_digest: str | None = None,
) -> ScanResult:
    """Inventory the image from its layers, then match it against the vulnerability database
    current at that moment (none: no findings, and a note saying so).

    `read_blob(digest)` streams a blob's bytes (BlobStore.read); `manifest` is the image
    manifest (bytes as stored, or parsed), `config` the config blob's bytes. Raises
    UnsupportedImage for indexes and artifacts, LayerError for unreadable layers."""
    if image_digest is None:
        raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        image_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    inventory = await build_inventory(read_blob, _json(manifest, "manifest"), config)
    if vulndb is None:
        result = MatchResult([], None, None, ["no vulnerability database configured"])
    else:
        result = await match(vulndb, inventory)
    return ScanResult(
        image_digest=image_digest,
        inventory=inventory,
        findings=result.findings,
        severity_counts=result.severity_counts,
        database_version=result.database_version,
        vulnerability_source_updated_at=result.database_updated_at,
        completed_at=time.time(),
        notes=inventory.notes + result.notes,
    )
