"""Image scanning end to end, with the clients a user has: `cargobay vulndb import` (the CLI),
the aws CLI (scanOnPush, the image-scan-complete waiter, findings), skopeo (the push), oras-py
(the SBOM referrer) and boto3 (the registry scanning configuration, account settings, quota
and errors), against a real `cargobay serve`. The test image holds real package metadata:
this machine's dpkg status entries and an installed wheel's METADATA."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from oras.client import OrasClient

from e2e.ecrhelp import aws, client, push, raises, unique
from imagebuilder import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Image, sha256
from scanning.osvfixtures import HIGH_V3, LOW_V3, MEDIUM_V2, MEDIUM_V3, record, write_dir
from scanning.pkgfixtures import DPKG_STATUS, dist_info, dpkg_stanzas
from server import Server

CYCLONEDX = "application/vnd.cyclonedx+json"
DEBIAN = "Debian:12"

pytestmark = [
    pytest.mark.backend,  # the queue, scans and SBOM pushes on PostgreSQL + S3 too
    pytest.mark.skipif(not DPKG_STATUS.exists(), reason="no dpkg status here"),
]


def until(fixed: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"fixed": fixed}]


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'd tar layer and its diff id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=1, mtime=0), sha256(raw)


def write_layout(layout: Path, layers: list[dict[str, bytes]]) -> Image:
    """An OCI layout holding one linux/amd64 image of these layers, tagged `latest`."""
    built = [_tar_gz(files) for files in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in built]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": sha256(blob), "size": len(blob)}
                for blob, _ in built
            ],
        }
    ).encode()
    for blob in (config, manifest, *(blob for blob, _ in built)):
        path = layout / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    }
                ],
            }
        )
    )
    return Image(layout, sha256(manifest), manifest, config, [blob for blob, _ in built])


class Fixture:
    """The test image's packages and the advisories written against them."""

    def __init__(self, tmp: Path) -> None:
        status, fields = dpkg_stanzas("cpp", "dbus", "diffutils")
        self.gcc_defaults = fields["cpp"]["Source"].split("(")[1].rstrip(")")
        self.dbus = fields["dbus"]["Version"]
        self.diffutils = fields["diffutils"]["Version"]
        epoch = self.diffutils.split(":")[0]
        where, metadata, self.requests = dist_info("requests")
        major = int(self.requests.split(".")[0])
        self.image = write_layout(
            tmp / "image",
            [
                {
                    "etc/os-release": Path("/etc/os-release").read_bytes(),
                    "var/lib/dpkg/status": status.encode(),
                },
                {where: metadata},
            ],
        )
        self.advisories = write_dir(
            tmp / "osv",
            [
                record(
                    "DSA-0001",
                    DEBIAN,
                    "gcc-defaults",
                    until(f"{self.gcc_defaults}+fix1"),
                    cvss3=HIGH_V3,
                ),
                record(
                    "DEBIAN-CVE-2099-0002",
                    DEBIAN,
                    "dbus",
                    until(self.dbus.split("~")[0]),
                    aliases=["CVE-2099-0002"],
                    cvss3=MEDIUM_V3,
                ),
                record("DSA-0004", DEBIAN, "diffutils", until("99.0-1"), cvss3=HIGH_V3),
                record("DSA-0005", DEBIAN, "diffutils", until(f"{epoch}:99.0-1"), cvss3=LOW_V3),
                record("PYSEC-0008", "PyPI", "requests", until(f"{major + 1}.0"), cvss2=MEDIUM_V2),
                record("PYSEC-0009", "PyPI", "requests", until(self.requests), cvss3=HIGH_V3),
            ],
        )
        self.expected = [
            ("DSA-0001", "gcc-defaults", self.gcc_defaults, "HIGH"),  # cpp's source package
            ("CVE-2099-0002", "dbus", self.dbus, "MEDIUM"),  # `~` sorts below the fix
            ("PYSEC-0008", "requests", self.requests, "MEDIUM"),  # CVSS v2
            ("DSA-0005", "diffutils", self.diffutils, "LOW"),  # the epoch
        ]  # DSA-0004: the epoch puts the installed version above; PYSEC-0009: fixed here


def vulndb_import(server: Server, *paths: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cargobay", "vulndb", "import", "--data-dir", str(server.data_dir)]
        + [str(p) for p in paths],
        env=server.process_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def summary(findings: list[dict]) -> list[tuple[str, str, str, str]]:
    def attribute(finding: dict, key: str) -> str:
        return next(a["value"] for a in finding["attributes"] if a["key"] == key)

    return [
        (f["name"], attribute(f, "package_name"), attribute(f, "package_version"), f["severity"])
        for f in findings
    ]


def wait_scanned(ecr, name: str, digest: str) -> dict:
    waiter = ecr.get_waiter("image_scan_complete")
    waiter.wait(
        repositoryName=name,
        imageId={"imageDigest": digest},
        WaiterConfig={"Delay": 1, "MaxAttempts": 90},
    )
    return ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageDigest": digest})


@pytest.fixture(scope="module")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Fixture]]:
    tmp = tmp_path_factory.mktemp("scanning")
    server = Server(tmp / "data").start()
    fixture = Fixture(tmp)
    imported = vulndb_import(server, fixture.advisories)
    assert "vulndb version 1 is current: 6 advisories" in imported.stdout
    yield server, fixture
    server.discard()


def test_scan_on_push_with_the_aws_cli_skopeo_and_oras(scanner, tmp_path: Path) -> None:
    """The issue's journey: scanOnPush, a skopeo push, the waiter, exact findings (paged),
    DescribeImages' summary, the CycloneDX SBOM attached as a referrer, the scan counted."""
    server, fixture = scanner
    name = unique("team/app")
    aws(server, "ecr", "create-repository", "--repository-name", name)
    configured = aws(
        server, "ecr", "put-image-scanning-configuration", "--repository-name", name,
        "--image-scanning-configuration", "scanOnPush=true",
    ).json  # fmt: skip
    assert configured["imageScanningConfiguration"] == {"scanOnPush": True}
    push(server, fixture.image, f"{name}:1.0")

    image_id = ["--repository-name", name, "--image-id", "imageTag=1.0"]
    aws(server, "ecr", "wait", "image-scan-complete", *image_id, output_json=False)
    found = aws(server, "ecr", "describe-image-scan-findings", *image_id).json
    assert found["imageScanStatus"]["status"] == "COMPLETE"
    assert found["imageId"] == {"imageDigest": fixture.image.manifest_digest, "imageTag": "1.0"}
    scan = found["imageScanFindings"]
    assert summary(scan["findings"]) == fixture.expected
    assert scan["findingSeverityCounts"] == {"HIGH": 1, "MEDIUM": 2, "LOW": 1}
    assert scan["findings"][0]["uri"] == "https://osv.dev/vulnerability/DSA-0001"
    assert {"key": "CVSS3_SCORE", "value": "7.5"} in scan["findings"][0]["attributes"]

    ecr = client(server)
    pages = list(
        ecr.get_paginator("describe_image_scan_findings").paginate(
            repositoryName=name, imageId={"imageTag": "1.0"}, PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(page["imageScanFindings"]["findings"]) for page in pages] == [3, 1]
    paged = [f for page in pages for f in page["imageScanFindings"]["findings"]]
    assert summary(paged) == fixture.expected

    details = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "1.0"}])
    detail = details["imageDetails"][0]
    assert detail["imageScanStatus"]["status"] == "COMPLETE"
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == {
        "HIGH": 1,
        "MEDIUM": 2,
        "LOW": 1,
    }
    # A scan on push counts against the once-per-24-hours quota, as in ECR.
    with raises("LimitExceededException"):
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "1.0"})

    # The SBOM: discovered through the referrers API with oras-py, pulled as a file.
    oras = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    oras.auth.set_basic_auth(*server.credentials)
    digest = fixture.image.manifest_digest
    response = oras.do_request(f"http://{server.host}/v2/{name}/referrers/{digest}", "GET")
    assert response.status_code == 200, response.text
    referrers = response.json()["manifests"]
    assert [r["artifactType"] for r in referrers] == [CYCLONEDX]
    files = oras.pull(target=f"{server.host}/{name}@{referrers[0]['digest']}", outdir=str(tmp_path))
    document = json.loads(Path(files[0]).read_text())
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    purls = {c.get("purl", "") for c in document["components"]}
    assert any(p.startswith("pkg:deb/debian/dbus@") for p in purls), purls
    assert f"pkg:pypi/requests@{fixture.requests}" in purls
    # The SBOM is an artifact: not scanned itself, and refused by StartImageScan.
    with raises("UnsupportedImageTypeException"):
        ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": referrers[0]["digest"]})

    metrics = server.session().get(f"{server.url}/metrics").text
    completed = [
        line
        for line in metrics.splitlines()
        if line.startswith("cargobay_image_scans_completed_total")
    ]
    assert completed and int(completed[0].split()[1]) >= 1, metrics


def test_manual_scans_quota_and_errors(scanner) -> None:
    """StartImageScan on demand (the boto3 waiter completes), a second within 24 h is
    LimitExceededException; artifacts, unknown images and unscanned images are errors."""
    server, fixture = scanner
    ecr = client(server)
    name = unique("manual/app")
    ecr.create_repository(repositoryName=name)
    push(server, fixture.image, f"{name}:v1")
    with raises("ScanNotFoundException"):
        ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "v1"})

    started = ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "v1"})
    assert started["imageScanStatus"]["status"] == "IN_PROGRESS"
    assert started["imageId"]["imageDigest"] == fixture.image.manifest_digest
    found = wait_scanned(ecr, name, fixture.image.manifest_digest)
    assert summary(found["imageScanFindings"]["findings"]) == fixture.expected
    with raises("LimitExceededException"):
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "v1"})

    with raises("ImageNotFoundException"):
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "missing"})
    with raises("RepositoryNotFoundException"):
        ecr.start_image_scan(repositoryName=unique("nowhere"), imageId={"imageTag": "v1"})

    # An artifact (oras push with an artifactType) is not an image.
    oras = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    oras.auth.set_basic_auth(*server.credentials)
    chart = Path(fixture.image.layout.parent / "chart.tgz")
    chart.write_bytes(b"not an image")
    oras.push(
        f"{server.host}/{name}:chart",
        files=[f"{chart}:application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
        disable_path_validation=True,
        quiet=True,
    )
    with raises("UnsupportedImageTypeException"):
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "chart"})


def test_registry_rules_continuous_rescans_and_account_settings(scanner) -> None:
    """Registry rules with wildcard filters choose which repositories scan on push; with
    ENHANCED and CONTINUOUS_SCAN, a new vulnerability database import rescans their images.
    Account settings take the names and values ECR documents."""
    server, fixture = scanner
    ecr = client(server)
    default = ecr.get_registry_scanning_configuration()
    assert default["scanningConfiguration"] == {"scanType": "BASIC", "rules": []}
    with raises("ValidationException"):
        ecr.put_registry_scanning_configuration(
            scanType="BASIC",
            rules=[
                {
                    "scanFrequency": "CONTINUOUS_SCAN",
                    "repositoryFilters": [{"filter": "x", "filterType": "WILDCARD"}],
                }
            ],
        )
    prefix = unique("cont")
    rules = [
        {
            "scanFrequency": "CONTINUOUS_SCAN",
            "repositoryFilters": [{"filter": f"{prefix}-*", "filterType": "WILDCARD"}],
        }
    ]
    put = ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=rules)
    assert put["registryScanningConfiguration"] == {"scanType": "ENHANCED", "rules": rules}
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"]["rules"] == rules

    watched, other = f"{prefix}-app", unique("plain")
    for repo in (watched, other):
        ecr.create_repository(repositoryName=repo)
    batch = ecr.batch_get_repository_scanning_configuration(
        repositoryNames=[watched, other, "missing-repo"]
    )
    by_name = {c["repositoryName"]: c for c in batch["scanningConfigurations"]}
    assert by_name[watched]["scanFrequency"] == "CONTINUOUS_SCAN"
    assert by_name[watched]["appliedScanFilters"] == rules[0]["repositoryFilters"]
    assert by_name[other]["scanFrequency"] == "MANUAL"
    assert batch["failures"][0]["failureCode"] == "REPOSITORY_NOT_FOUND"

    push(server, fixture.image, f"{watched}:1")
    push(server, fixture.image, f"{other}:1")
    digest = fixture.image.manifest_digest
    first = wait_scanned(ecr, watched, digest)
    assert summary(first["imageScanFindings"]["findings"]) == fixture.expected
    with raises("ScanNotFoundException"):  # MANUAL: nothing scanned it
        ecr.describe_image_scan_findings(repositoryName=other, imageId={"imageDigest": digest})

    # A new advisory: the import queues a rescan, which finds it.
    extra = write_dir(
        fixture.advisories.parent / "osv-new",
        [record("DSA-0010", DEBIAN, "dbus", until("999:1"), cvss3=HIGH_V3)],
    )
    imported = vulndb_import(server, fixture.advisories, extra)
    assert "queued for rescanning" in imported.stderr
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = ecr.describe_image_scan_findings(
            repositoryName=watched, imageId={"imageDigest": digest}
        )
        names = [f["name"] for f in found.get("imageScanFindings", {}).get("findings", [])]
        if "DSA-0010" in names:
            break
        time.sleep(1)
    assert ("DSA-0010", "dbus", fixture.dbus, "HIGH") in summary(
        found["imageScanFindings"]["findings"]
    )
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])

    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "AWS_NATIVE"
    put_setting = ecr.put_account_setting(name="BASIC_SCAN_TYPE_VERSION", value="CLAIR")
    assert put_setting == {**put_setting, "name": "BASIC_SCAN_TYPE_VERSION", "value": "CLAIR"}
    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "CLAIR"
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V2"
    with raises("ValidationException"):
        ecr.put_account_setting(name="BASIC_SCAN_TYPE_VERSION", value="TRIVY")
    with raises("ValidationException"):
        ecr.get_account_setting(name="NO_SUCH_SETTING")
