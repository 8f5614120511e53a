"""scan_image end to end (blobs as a store streams them), its ECR shapes, and its memory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dbhelp import database_url
from layerkit import LayeredImage
from osvfixtures import CRITICAL_V3, record

from cargobay.metadata.db import Database
from cargobay.scanning.errors import UnsupportedImage
from cargobay.scanning.scan import ScanResult, platforms, scan_image
from cargobay.vulndb.store import VulnDB

HERE = Path(__file__).parent


def _scan(tmp_path: Path, image: LayeredImage, advisories: list[dict]) -> ScanResult:
    async def run() -> ScanResult:
        db = Database(await database_url(tmp_path))
        try:
            vulndb = VulnDB(db)
            await vulndb.import_records([("t", r) for r in advisories], ["t"])
            manifest = json.dumps(image.manifest).encode()
            return await scan_image(image.reader(), manifest, image.config, vulndb)
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.mark.backend
def test_scan_image_gives_ecr_findings_and_sboms(tmp_path: Path) -> None:
    image = LayeredImage().add(
        {
            "etc/os-release": b"ID=alpine\nVERSION_ID=3.18.4\n",
            "lib/apk/db/installed": b"P:libcrypto3\nV:3.1.4-r0\nA:x86_64\no:openssl\n",
            "app/node_modules/lodash/package.json": b'{"name":"lodash","version":"4.17.20"}',
        }
    )
    fixed = [{"introduced": "0"}, {"fixed": "3.1.5-r0"}]
    advisories = [record("CVE-2023-9", "Alpine:v3.18", "openssl", fixed, cvss3=CRITICAL_V3)]
    result = _scan(tmp_path, image, advisories)
    shape = result.image_scan_findings()
    assert shape["findingSeverityCounts"] == {"CRITICAL": 1}
    assert [f["name"] for f in shape["findings"]] == ["CVE-2023-9"]
    assert shape["vulnerabilitySourceUpdatedAt"] <= shape["imageScanCompletedAt"]
    assert result.database_version == 1
    assert result.image_digest.startswith("sha256:")
    purls = [c.get("purl") for c in result.cyclonedx("team/app")["components"]]
    assert purls == [
        None,  # the operating system
        "pkg:apk/alpine/libcrypto3@3.1.4-r0?arch=x86_64&distro=alpine-3.18.4&upstream=openssl",
        "pkg:npm/lodash@4.17.20",
    ]
    assert result.spdx()["spdxVersion"] == "SPDX-2.3"


def test_the_ecr_shapes_match_botocore() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecr")
    findings = model.shape_for("ImageScanFindings")
    finding = model.shape_for("ImageScanFinding")
    severities = set(model.shape_for("FindingSeverity").enum)
    from cargobay.scanning.findings import Finding

    sample = Finding("CVE-1", "d", "u", "HIGH", "p", "1", "CVE-1", "3", "CVSS:3.1/AV:N", 7.5)
    assert set(sample.shape()) <= set(finding.members)
    assert set(
        ScanResult("sha256:x", None, [sample], {"HIGH": 1}, 1, 1.0, 2.0).image_scan_findings()  # type: ignore[arg-type]
    ) <= set(findings.members)
    from cargobay.vulndb.cvss import SEVERITIES

    assert set(SEVERITIES) == severities


def test_index_platforms_and_unsupported_manifests() -> None:
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64"}},
            {
                "digest": "sha256:c",
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }
    assert [d["digest"] for d in platforms(json.dumps(index).encode())] == [
        "sha256:a",
        "sha256:b",
    ]
    image = LayeredImage()
    with pytest.raises(UnsupportedImage):
        asyncio.run(scan_image(image.reader(), json.dumps(index).encode(), image.config, None))
    with pytest.raises(UnsupportedImage):
        asyncio.run(scan_image(image.reader(), b"not json", image.config, None))


def test_scanning_a_200_mib_image_keeps_memory_bounded(tmp_path: Path) -> None:
    """A separate process, so its peak RSS is the scan's own: ten 20 MiB layers generated as
    they are read, scanned against a database; peak growth must stay under 100 MiB."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)]))
    done = subprocess.run(
        [sys.executable, str(HERE / "memscan.py"), str(tmp_path), "10", str(20 * 1024 * 1024)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["uncompressed_bytes"] >= 200 * 1024 * 1024
    assert report["packages"] == ["musl 1.2.4-r2", "lodash 4.17.20"]  # from the first and last
    assert report["findings"] == ["CVE-2099-1"]
    assert report["peak_growth_mib"] < 100, report
