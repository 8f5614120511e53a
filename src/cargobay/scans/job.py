"""The `scan` task: scan one image (or each platform of an index) from the blob store, store
its findings, and attach its CycloneDX SBOM as an OCI referrer of the image.

Scans run from the durable task queue (jobs/queue.py), claimed by exactly one worker on one
node; at most `concurrency` scans run at a time in one process, and the layer walk runs in a
worker thread, so pushes and pulls keep their event loop. Handlers are idempotent: a scan
that runs twice stores the same findings, and the SBOM is attached once per image.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cargobay.errors import ImageArchived, ImageNotFound
from cargobay.jobs.queue import Fail, Retry, Task
from cargobay.oci.manifest import OCI_EMPTY_JSON, OCI_MANIFEST
from cargobay.registry.hooks import REGISTRY
from cargobay.scanning.errors import ScanError, UnsupportedImage
from cargobay.scans.service import (
    COMPLETE,
    FAILED,
    IMAGE,
    IN_PROGRESS,
    INDEX,
    TASK_KIND,
    UNSUPPORTED_IMAGE,
    ScanService,
    scan_kind,
)
from cargobay.vulndb.cvss import SEVERITIES

IMAGE_ARCHIVED = "IMAGE_ARCHIVED"  # the model's ScanStatus for an archived image

if TYPE_CHECKING:
    from cargobay.registry.repositories import Repository
    from cargobay.registry.services import Services

log = logging.getLogger("cargobay.scans")

SBOM_ANNOTATION = "dev.cargobay.sbom"  # marks the SBOM referrers cargobay attaches
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
EMPTY_CONFIG = b"{}"
MAX_CONFIG = 4 * 1024 * 1024
MAX_ATTEMPTS = 3
# A platform scan in progress for longer is presumed lost (an index scans it itself).
STALE_SECONDS = 3600.0
COMPLETE_TEXT = "The scan was completed successfully."
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _blocks(data: bytes) -> AsyncIterator[list[bytes]]:
    yield [data]


def _attribute(finding: dict[str, Any], key: str) -> str:
    return next((a["value"] for a in finding.get("attributes", []) if a["key"] == key), "")


def merge(findings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Findings of an index's platforms as one list (each package version's finding once), in
    ECR's order (severity, then name), with their severity counts."""
    unique: dict[tuple[str, str, str], dict[str, Any]] = {}
    for finding in findings:
        key = (
            finding["name"],
            _attribute(finding, "package_name"),
            _attribute(finding, "package_version"),
        )
        unique.setdefault(key, finding)
    ordered = sorted(
        unique.values(),
        key=lambda f: (_RANK.get(f["severity"], len(SEVERITIES)), f["name"], json.dumps(f)),
    )
    counts: dict[str, int] = {}
    for finding in ordered:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    return ordered, counts


class Scanner:
    def __init__(self, services: Services, scans: ScanService, concurrency: int = 1) -> None:
        self.services = services
        self.scans = scans
        self._slots = asyncio.Semaphore(concurrency)

    def handlers(self) -> dict[str, Any]:
        return {TASK_KIND: self.handle}

    async def handle(self, task: Task) -> None:
        payload = task.payload
        repo = await self.services.repositories.find(payload["registry_id"], payload["repository"])
        if repo is None or repo.id != payload["repository_id"]:
            return  # the repository was deleted (its scans went with it)
        digest = payload["digest"]
        async with self._slots:
            try:
                await self.scan(repo, digest)
            except (Retry, Fail):
                raise
            except Exception as exc:
                log.exception("scan of %s@%s failed (attempt %d)", repo.name, digest, task.attempts)
                if task.attempts < MAX_ATTEMPTS:
                    raise Retry(f"{type(exc).__name__}: {exc}") from exc
                await self.scans.record(repo.id, digest, FAILED, f"The scan failed: {exc}")
                raise Fail(f"{type(exc).__name__}: {exc}") from exc

    async def scan(self, repo: Repository, digest: str) -> None:
        """Scan one image or index and record the outcome."""
        try:
            manifest = await self.services.manifests.get(repo.registry_id, repo.name, digest)
        except ImageNotFound:
            return  # deleted since the scan was queued
        except ImageArchived:  # archived since: ECR's status for it
            await self.scans.record(repo.id, digest, IMAGE_ARCHIVED, "The image is archived.")
            return
        kind = scan_kind(manifest.content)
        if kind is None:
            await self.scans.record(
                repo.id, digest, UNSUPPORTED_IMAGE, "The image is not a container image."
            )
            return
        started = time.monotonic()
        log.info("scan of %s@%s started", repo.name, digest)
        if kind == INDEX:
            findings, counts, source = await self._index(repo, manifest.content)
            await self.scans.record(
                repo.id, digest, COMPLETE, COMPLETE_TEXT, findings, counts, *source
            )
        else:
            await self._image(repo, digest, manifest.content, manifest.media_type)
        record = await self.scans.get(repo, digest)
        log.info(
            "scan of %s@%s %s: %d findings %s in %.1f s",
            repo.name,
            digest,
            record.status.lower(),
            record.finding_count,
            record.severity_counts,
            time.monotonic() - started,
        )

    async def _image(self, repo: Repository, digest: str, content: bytes, media_type: str) -> None:
        # The engine and the vulnerability database load on a worker's first scan.
        from cargobay.scanning.scan import scan_image
        from cargobay.vulndb.store import VulnDB

        blobs = self.services.blobs

        async def read(blob_digest: str) -> AsyncIterator[bytes]:
            """Plaintext, decrypted under the repository's KMS key if it has one."""
            info = await blobs.stat(repo, blob_digest)
            async for chunk in blobs.read(repo, blob_digest, 0, info.size, info.size):
                yield chunk

        try:
            document = json.loads(content)
            config = bytearray()
            async for chunk in read(document["config"]["digest"]):
                config += chunk
                if len(config) > MAX_CONFIG:
                    raise ScanError("the image config is larger than 4 MiB")
            result = await scan_image(
                read, content, bytes(config), VulnDB(self.services.db), image_digest=digest
            )
        except ScanError as exc:
            status = UNSUPPORTED_IMAGE if isinstance(exc, UnsupportedImage) else FAILED
            await self.scans.record(repo.id, digest, status, f"The scan failed: {exc}")
            return
        for note in result.notes:
            log.info("scan of %s@%s: %s", repo.name, digest, note)
        shape = result.image_scan_findings()
        await self.scans.record(
            repo.id,
            digest,
            COMPLETE,
            COMPLETE_TEXT,
            shape["findings"],
            shape["findingSeverityCounts"],
            result.vulnerability_source_updated_at,
            result.database_version,
        )
        await self._attach_sbom(repo, digest, content, media_type, result.cyclonedx(repo.name))

    async def _index(
        self, repo: Repository, content: bytes
    ) -> tuple[list[dict[str, Any]], dict[str, int], tuple[float | None, int | None]]:
        """Each platform's findings (scanned here unless its own scan is done or running),
        merged."""
        from cargobay.scanning.scan import platforms

        collected: list[dict[str, Any]] = []
        source: tuple[float | None, int | None] = (None, None)
        for descriptor in platforms(content):
            child = descriptor["digest"]
            known = await self.scans.summaries(repo, [child])
            record = known.get(child)
            running = record is not None and record.status == IN_PROGRESS
            if running and time.time() - record.updated_at < STALE_SECONDS:
                raise Retry(f"waiting for the scan of platform {child}", delay=2.0)
            if record is None or record.status != COMPLETE:  # never scanned, failed or lost
                manifest = await self.services.manifests.get(repo.registry_id, repo.name, child)
                if scan_kind(manifest.content) != IMAGE:
                    continue
                await self.scans.ensure(repo, child)
                await self._image(repo, child, manifest.content, manifest.media_type)
                record = await self.scans.get(repo, child)
            if record.status == COMPLETE:
                collected += await self.scans.all_findings(repo, child)
                source = (record.source_updated_at, record.database_version)
        findings, counts = merge(collected)
        return findings, counts, source

    async def _attach_sbom(
        self,
        repo: Repository,
        digest: str,
        content: bytes,
        media_type: str,
        document: dict[str, Any],
    ) -> None:
        """Push the SBOM as an OCI artifact whose subject is the image (once per image: an
        image's inventory never changes, only its findings do)."""
        from cargobay.scanning import sbom

        services = self.services
        listed = json.loads(
            await services.manifests.referrers(repo, digest, sbom.CYCLONEDX_MEDIA_TYPE)
        )
        if any(
            (entry.get("annotations") or {}).get(SBOM_ANNOTATION) for entry in listed["manifests"]
        ):
            return
        data = sbom.encode(document)
        sbom_digest = _sha256(data)
        await services.uploads.upload_whole(repo, sbom_digest, _blocks(data))
        await services.uploads.upload_whole(repo, _sha256(EMPTY_CONFIG), _blocks(EMPTY_CONFIG))
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": sbom.CYCLONEDX_MEDIA_TYPE,
            "config": {
                "mediaType": OCI_EMPTY_JSON,
                "digest": _sha256(EMPTY_CONFIG),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": sbom.CYCLONEDX_MEDIA_TYPE,
                    "digest": sbom_digest,
                    "size": len(data),
                    "annotations": {TITLE: "sbom.cdx.json"},
                }
            ],
            "subject": {"mediaType": media_type, "digest": digest, "size": len(content)},
            "annotations": {CREATED: created, SBOM_ANNOTATION: "cyclonedx"},
        }
        payload = json.dumps(manifest, separators=(",", ":")).encode()
        result = await services.manifests.put_image(repo, payload, OCI_MANIFEST, origin=REGISTRY)
        log.info("SBOM of %s@%s attached as %s", repo.name, digest, result.digest)
