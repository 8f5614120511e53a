"""Findings for images built from real package metadata, asserted exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dbhelp import database_url
from layerkit import Entry, LayeredImage
from osvfixtures import CRITICAL_V3, HIGH_V3, LOW_V3, MEDIUM_V2, MEDIUM_V3, record
from pkgfixtures import (
    ALPINE_INSTALLED,
    ALPINE_OS_RELEASE,
    DPKG_STATUS,
    dist_info,
    dpkg_stanzas,
    fake_go_elf,
    jar,
    pom_properties,
)

from cargobay.metadata.db import Database
from cargobay.scanning.findings import MatchResult, match
from cargobay.scanning.walk import build_inventory
from cargobay.vulndb.store import VulnDB


def until(fixed: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"fixed": fixed}]


def scan(tmp_path: Path, image: LayeredImage, advisories: list[dict]) -> MatchResult:
    async def run() -> MatchResult:
        db = Database(await database_url(tmp_path))
        try:
            vulndb = VulnDB(db)
            await vulndb.import_records([("fixture", r) for r in advisories], ["fixture"])
            inventory = await build_inventory(image.reader(), image.manifest, image.config)
            return await match(vulndb, inventory)
        finally:
            await db.dispose()

    return asyncio.run(run())


pytestmark = pytest.mark.backend


def summary(result: MatchResult) -> list[tuple[str, str, str, str]]:
    return [(f.name, f.package_name, f.package_version, f.severity) for f in result.findings]


@pytest.mark.skipif(not DPKG_STATUS.exists(), reason="no dpkg status here")
def test_debian_python_and_npm_findings(tmp_path: Path) -> None:
    status, fields = dpkg_stanzas("cpp", "dbus", "diffutils", "libdevmapper1.02.1")
    dbus = fields["dbus"]["Version"]
    assert "~" in dbus  # a stable update: 1.14.10-1~deb12u1 sorts before 1.14.10-1
    gcc_defaults = fields["cpp"]["Source"].split("(")[1].rstrip(")")
    lvm2 = fields["libdevmapper1.02.1"]["Source"].split("(")[1].rstrip(")")
    diffutils = fields["diffutils"]["Version"]
    epoch = diffutils.split(":")[0]
    assert epoch.isdigit() and epoch != "0"
    where, metadata, requests_version = dist_info("requests")
    major = int(requests_version.split(".")[0])

    image = (
        LayeredImage()
        .add(
            {
                "etc/os-release": Path("/etc/os-release").read_bytes(),
                "var/lib/dpkg/status": status.encode(),
                where: metadata,
                "srv/node_modules/lodash/package.json": b'{"name":"lodash","version":"4.17.20"}',
                "srv/node_modules/left-pad/package.json": b'{"name":"left-pad","version":"1.0.0"}',
            }
        )
        .add({"srv/node_modules/.wh.left-pad": b""}, "zstd")
    )
    debian = "Debian:12"
    advisories = [
        record("DSA-0001", debian, "gcc-defaults", until(f"{gcc_defaults}+fix1"), cvss3=HIGH_V3),
        record(
            "DEBIAN-CVE-2099-0002",
            debian,
            "dbus",
            until(dbus.split("~")[0]),
            aliases=["CVE-2099-0002"],
            cvss3=MEDIUM_V3,
        ),
        record("DSA-0003", debian, "dbus", until(dbus), cvss3=CRITICAL_V3),
        record("DSA-0004", debian, "diffutils", until("99.0-1"), cvss3=CRITICAL_V3),
        record("DSA-0005", debian, "diffutils", until(f"{epoch}:99.0-1"), cvss3=LOW_V3),
        record(
            "DSA-0006", debian, "lvm2", [{"introduced": "0"}, {"last_affected": lvm2}], rating="low"
        ),
        record("DSA-0007", "Debian:11", "dbus", until("9:9"), cvss3=HIGH_V3),
        record("PYSEC-0008", "PyPI", "requests", until(f"{major + 1}.0"), cvss2=MEDIUM_V2),
        record("PYSEC-0009", "PyPI", "requests", until(requests_version), cvss3=CRITICAL_V3),
        record(
            "GHSA-0010",
            "npm",
            "lodash",
            until("4.17.21"),
            aliases=["CVE-2021-23337"],
            cvss3=CRITICAL_V3,
            range_type="SEMVER",
        ),
        record("GHSA-0011", "npm", "left-pad", versions=["1.0.0"], cvss3=CRITICAL_V3),
    ]
    result = scan(tmp_path, image, advisories)
    assert summary(result) == [
        ("CVE-2021-23337", "lodash", "4.17.20", "CRITICAL"),
        ("DSA-0001", "gcc-defaults", gcc_defaults, "HIGH"),  # cpp's source package
        ("CVE-2099-0002", "dbus", dbus, "MEDIUM"),  # `~`: below the fix
        ("PYSEC-0008", "requests", requests_version, "MEDIUM"),  # CVSS v2 4.3
        ("DSA-0005", "diffutils", diffutils, "LOW"),  # the epoch puts it below 1:99
        ("DSA-0006", "lvm2", lvm2, "LOW"),  # last_affected, the database's rating
    ]
    assert result.severity_counts == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 2, "LOW": 2}
    assert result.findings[0].shape() == {
        "name": "CVE-2021-23337",
        "description": "Details of GHSA-0010.",
        "uri": "https://osv.dev/vulnerability/GHSA-0010",
        "severity": "CRITICAL",
        "attributes": [
            {"key": "package_version", "value": "4.17.20"},
            {"key": "package_name", "value": "lodash"},
            {"key": "CVSS3_VECTOR", "value": CRITICAL_V3},
            {"key": "CVSS3_SCORE", "value": "9.8"},
        ],
    }
    assert result.findings[3].shape()["attributes"][2:] == [
        {"key": "CVSS2_VECTOR", "value": MEDIUM_V2},
        {"key": "CVSS2_SCORE", "value": "4.3"},
    ]
    assert result.database_version == 1 and result.notes == []


def test_alpine_go_and_maven_findings(tmp_path: Path) -> None:
    modinfo = (
        "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
        "dep\tgolang.org/x/text\tv0.3.7\th1:x=\n"
    )
    log4j = pom_properties("org.apache.logging.log4j", "log4j-core", "2.14.1")
    image = LayeredImage().add(
        {
            "etc/os-release": ALPINE_OS_RELEASE,
            "lib/apk/db/installed": ALPINE_INSTALLED.encode(),
            "usr/bin/app": Entry(fake_go_elf("go1.21.4", modinfo), mode=0o755),
            "opt/app.jar": jar({"META-INF/maven/x/y/pom.properties": log4j}),
        }
    )
    alpine = "Alpine:v3.18"
    advisories = [
        record("CVE-2023-5678", alpine, "openssl", until("3.1.4-r1"), cvss3=MEDIUM_V3),
        record("CVE-2023-0001", alpine, "busybox", until("1.36.1-r5"), cvss3=HIGH_V3),
        record("CVE-2023-0002", "Alpine:v3.17", "musl", until("9"), cvss3=HIGH_V3),
        record("GO-2023-0003", "Go", "stdlib", until("1.21.5"), range_type="SEMVER", cvss3=HIGH_V3),
        record(
            "GO-2022-1059",
            "Go",
            "golang.org/x/text",
            until("0.3.8"),
            range_type="SEMVER",
            cvss3=HIGH_V3,
        ),
        record(
            "GHSA-jfh8-c2jp-5v3q",
            "Maven",
            "org.apache.logging.log4j:log4j-core",
            [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}],
            aliases=["CVE-2021-44228"],
            cvss3="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
        ),
    ]
    result = scan(tmp_path, image, advisories)
    assert summary(result) == [
        ("CVE-2021-44228", "org.apache.logging.log4j:log4j-core", "2.14.1", "CRITICAL"),
        ("GO-2022-1059", "golang.org/x/text", "v0.3.7", "HIGH"),
        ("GO-2023-0003", "stdlib", "1.21.4", "HIGH"),
        ("CVE-2023-5678", "openssl", "3.1.4-r0", "MEDIUM"),  # libcrypto3's origin
    ]


def test_without_a_database_there_are_no_findings_and_a_note(tmp_path: Path) -> None:
    image = LayeredImage().add({"srv/node_modules/a/package.json": b'{"name":"a","version":"1"}'})

    async def run() -> MatchResult:
        db = Database(await database_url(tmp_path))
        try:
            inventory = await build_inventory(image.reader(), image.manifest, image.config)
            return await match(VulnDB(db), inventory)
        finally:
            await db.dispose()

    result = asyncio.run(run())
    assert (result.findings, result.database_version) == ([], None)
    assert result.notes == ["no vulnerability database has been imported"]
