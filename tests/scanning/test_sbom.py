"""SBOMs: valid CycloneDX 1.5 and SPDX 2.3 documents whose purls name every package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cargobay.scanning.model import Inventory, OSInfo, Package
from cargobay.scanning.sbom import cyclonedx, encode, purl, spdx

DIGEST = "sha256:" + "ab" * 32

INVENTORY = Inventory(
    os=OSInfo("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
    packages=[
        Package("deb", "libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", "amd64",
                "var/lib/dpkg/status"),
        Package("deb", "cpp", "4:12.2.0-3", "gcc-defaults", "1.203", "amd64",
                "var/lib/dpkg/status"),
        Package("rpm", "openssl-libs", "1:3.0.7-27.el9", "openssl", None, "x86_64", "rpmdb"),
        Package("pypi", "Requests_Toolbelt", "1.0.0", path="site-packages/x/METADATA"),
        Package("npm", "@babel/core", "7.22.0", path="a/node_modules/@babel/core/package.json"),
        Package("npm", "@babel/core", "7.22.0", path="b/node_modules/@babel/core/package.json"),
        Package("golang", "golang.org/x/text", "v0.3.7", path="usr/bin/app"),
        Package("maven", "org.apache.logging.log4j:log4j-core", "2.14.1", path="app.jar"),
    ],
)  # fmt: skip

EXPECTED_PURLS = [
    "pkg:deb/debian/cpp@4%3A12.2.0-3?arch=amd64&distro=debian-12&upstream=gcc-defaults",
    "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
    "pkg:golang/golang.org/x/text@v0.3.7",
    "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
    "pkg:npm/%40babel/core@7.22.0",
    "pkg:pypi/requests-toolbelt@1.0.0",
    "pkg:rpm/debian/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=debian-12&epoch=1",
]


def test_purls_follow_the_spec_and_parse_back() -> None:
    from packageurl import PackageURL

    purls = sorted({purl(p, INVENTORY) for p in INVENTORY.packages})
    assert purls == EXPECTED_PURLS
    cpp = PackageURL.from_string(purls[0])
    assert (cpp.type, cpp.namespace, cpp.name, cpp.version) == (
        "deb",
        "debian",
        "cpp",
        "4:12.2.0-3",
    )
    babel = PackageURL.from_string(purls[4])
    assert (babel.namespace, babel.name) == ("@babel", "core")
    rpm = PackageURL.from_string(purls[6])
    assert rpm.qualifiers == {"arch": "x86_64", "distro": "debian-12", "epoch": "1"}


def test_cyclonedx_is_valid_1_5_and_lists_each_purl_once() -> None:
    pytest.importorskip("cyclonedx")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    document = cyclonedx(INVENTORY, DIGEST, "team/app:1.0", now=0)
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    assert error is None, error
    components = document["components"]
    assert components[0] == {
        "type": "operating-system",
        "bom-ref": "os:debian-12",
        "name": "debian",
        "version": "12",
        "description": "Debian GNU/Linux 12 (bookworm)",
    }
    assert [c["purl"] for c in components[1:]] == EXPECTED_PURLS
    babel = next(c for c in components if c.get("group") == "@babel")
    assert babel["name"] == "core"
    assert [p["value"] for p in babel["properties"]] == [
        "a/node_modules/@babel/core/package.json",
        "b/node_modules/@babel/core/package.json",
    ]
    assert document["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
    again = cyclonedx(INVENTORY, DIGEST, "team/app:1.0", now=0)
    assert encode(again) == encode(document)  # deterministic: the same referrer digest


def test_spdx_is_a_valid_2_3_document(tmp_path: Path) -> None:
    pytest.importorskip("spdx_tools")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = spdx(INVENTORY, DIGEST, "team/app:1.0", now=0)
    path = tmp_path / "sbom.spdx.json"
    path.write_text(json.dumps(document))
    parsed = parse_file(str(path))
    assert validate_full_spdx_document(parsed) == []
    locators = [ref.locator for package in parsed.packages for ref in package.external_references]
    assert locators == EXPECTED_PURLS
    contains = [r for r in parsed.relationships if r.relationship_type.name == "CONTAINS"]
    assert len(contains) == len(EXPECTED_PURLS) + 1  # and the operating system
