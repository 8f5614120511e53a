"""Scans on the service layer, in process: which pushes queue a scan (rules, scanOnPush,
artifacts, the registry's own SBOM pushes), the quota, the delete hook, and a multi-arch index
scanned platform by platform with merged findings and an SBOM referrer per platform."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.jobs.queue import Retry
from cargobay.metadata import schema
from cargobay.scans.job import SBOM_ANNOTATION, Scanner
from cargobay.scans.service import COMPLETE, IN_PROGRESS, TASK_KIND
from cargobay.vulndb.store import VulnDB
from scanning.layerkit import layer
from scanning.osvfixtures import HIGH_V3, LOW_V3, record
from service.harness import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Registry,
    running,
    sha256,
)

pytestmark = pytest.mark.backend

OS_RELEASE = b'ID=debian\nVERSION_ID="12"\n'


def until(fixed: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"fixed": fixed}]


def _status(*packages: tuple[str, str, str]) -> bytes:
    return "\n".join(
        f"Package: {name}\nSource: {source}\nVersion: {version}\n"
        "Status: install ok installed\nArchitecture: amd64\n"
        for name, source, version in packages
    ).encode()


async def _image(registry: Registry, repo: str, arch: str, status: bytes) -> bytes:
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}})
    blob = layer({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": status})
    descriptors = []
    for data, media_type in ((config.encode(), OCI_CONFIG), (blob, OCI_LAYER)):
        digest = await registry.push_blob(repo, data)
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptors[0],
            "layers": descriptors[1:],
        }
    ).encode()
    reply = await registry.v2(
        "PUT", f"{repo}/manifests/{sha256(manifest)}", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert reply.status == 201, reply
    return manifest


async def _scan_rows(registry: Registry) -> dict[str, str]:
    s, t = schema.image_scans, schema.tasks
    async with registry.services.db.read_now() as conn:
        rows = await conn.execute(select(s.c.digest, s.c.status))
        scans = {row.digest: row.status for row in rows}
        tasks = (await conn.execute(select(t.c.kind))).scalars().all()
    assert set(tasks) <= {TASK_KIND}
    return scans


def test_which_pushes_queue_a_scan_the_quota_and_the_delete_hook(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            reply = await registry.ecr(
                "PutRegistryScanningConfiguration",
                {
                    "scanType": "BASIC",
                    "rules": [
                        {
                            "scanFrequency": "SCAN_ON_PUSH",
                            "repositoryFilters": [{"filter": "web*", "filterType": "WILDCARD"}],
                        }
                    ],
                },
            )
            assert reply.status == 200, reply.body
            scanned = await _image(registry, "web-app", "amd64", _status(("dbus", "dbus", "1.0-1")))
            manual = await _image(registry, "db", "amd64", _status(("dbus", "dbus", "1.1-1")))
            scans = await _scan_rows(registry)
            assert scans == {sha256(scanned): IN_PROGRESS}  # the rule matched web-app only

            reply = await registry.ecr(
                "StartImageScan",
                {"repositoryName": "web-app", "imageId": {"imageDigest": sha256(scanned)}},
            )
            assert reply.aws_type == "LimitExceededException"  # a scan on push counts
            reply = await registry.ecr(
                "StartImageScan",
                {"repositoryName": "db", "imageId": {"imageDigest": sha256(manual)}},
            )
            assert reply.status == 200 and reply.json()["imageScanStatus"]["status"] == IN_PROGRESS

            # The scan runs, attaching an SBOM pushed by the registry itself: not scanned again.
            services = registry.services
            repo = await services.repositories.get(services.settings.account_id, "web-app")
            await Scanner(services, services.scans).scan(repo, sha256(scanned))
            scans = await _scan_rows(registry)
            assert scans[sha256(scanned)] == COMPLETE and len(scans) == 2

            reply = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "db", "imageIds": [{"imageDigest": sha256(manual)}]},
            )
            assert reply.status == 200
            assert sha256(manual) not in await _scan_rows(registry)

            # Deleted and pushed again: scanned again.
            reply = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "web-app", "imageIds": [{"imageDigest": sha256(scanned)}]},
            )
            assert reply.status == 200 and not reply.json()["failures"]
            assert await _scan_rows(registry) == {}
            again = await _image(registry, "web-app", "amd64", _status(("dbus", "dbus", "1.0-1")))
            assert again == scanned
            assert await _scan_rows(registry) == {sha256(scanned): IN_PROGRESS}
            async with registry.services.db.read_now() as conn:
                queued = (await conn.execute(select(schema.tasks.c.dedupe_key))).scalars().all()
            assert len(queued) == 3  # push, StartImageScan, the push after the delete

    asyncio.run(scenario())


def test_an_index_is_scanned_per_platform(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            dbus = record("DSA-1", "Debian:12", "dbus", until("2.0-1"), cvss3=HIGH_V3)
            zlib = record("DSA-2", "Debian:12", "zlib", until("1:2.0-1"), cvss3=LOW_V3)
            await VulnDB(services.db).import_records([("t", dbus), ("t", zlib)], ["fixture"])
            amd = await _image(registry, "multi", "amd64", _status(("dbus", "dbus", "1.0-1")))
            arm = await _image(
                registry,
                "multi",
                "arm64",
                _status(("dbus", "dbus", "1.0-1"), ("zlib1g", "zlib", "1:1.2-1")),
            )
            index = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [
                        {"mediaType": OCI_MANIFEST, "digest": sha256(m), "size": len(m)}
                        for m in (amd, arm)
                    ],
                }
            ).encode()
            reply = await registry.v2(
                "PUT", "multi/manifests/v1", index, {"Content-Type": OCI_INDEX}
            )
            assert reply.status == 201
            reply = await registry.ecr(
                "StartImageScan", {"repositoryName": "multi", "imageId": {"imageTag": "v1"}}
            )
            assert reply.status == 200, reply.body
            repo = await services.repositories.get(services.settings.account_id, "multi")
            scanner = Scanner(services, services.scans)
            # A platform whose own scan is queued: the index waits for it (the task retries).
            await services.scans.start(repo, sha256(amd))
            with pytest.raises(Retry):
                await scanner.scan(repo, sha256(index))
            await scanner.scan(repo, sha256(amd))
            await scanner.scan(repo, sha256(index))  # scans arm64 itself, reuses amd64's

            reply = await registry.ecr(
                "DescribeImageScanFindings",
                {"repositoryName": "multi", "imageId": {"imageTag": "v1"}},
            )
            body = reply.json()
            assert body["imageScanStatus"]["status"] == COMPLETE
            findings = body["imageScanFindings"]
            assert [f["name"] for f in findings["findings"]] == ["DSA-1", "DSA-2"]  # dbus once
            assert findings["findingSeverityCounts"] == {"HIGH": 1, "LOW": 1}
            for child, expected in ((amd, ["DSA-1"]), (arm, ["DSA-1", "DSA-2"])):
                reply = await registry.ecr(
                    "DescribeImageScanFindings",
                    {"repositoryName": "multi", "imageId": {"imageDigest": sha256(child)}},
                )
                names = [f["name"] for f in reply.json()["imageScanFindings"]["findings"]]
                assert names == expected
                referrers = json.loads(
                    await services.manifests.referrers(repo, sha256(child), None)
                )["manifests"]
                assert len(referrers) == 1
                assert referrers[0]["annotations"][SBOM_ANNOTATION] == "cyclonedx"
            # A second scan of the same image keeps its one SBOM.
            await Scanner(services, services.scans).scan(repo, sha256(amd))
            again = json.loads(await services.manifests.referrers(repo, sha256(amd), None))
            assert len(again["manifests"]) == 1

    asyncio.run(scenario())
