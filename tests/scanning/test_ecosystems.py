"""Which advisory ecosystem an installed package is matched in."""

from __future__ import annotations

from cargobay.scanning.model import OSInfo, Package
from cargobay.vulndb.ecosystems import ecosystem_of, lookup_name


def test_os_packages_are_matched_in_their_release() -> None:
    cases = [
        (OSInfo("debian", "12"), "deb", "Debian:12"),
        (OSInfo("debian", "12.4"), "deb", "Debian:12"),
        (OSInfo("ubuntu", "22.04"), "deb", "Ubuntu:22.04"),
        (OSInfo("alpine", "3.18.4"), "apk", "Alpine:v3.18"),
        (OSInfo("rocky", "9.3"), "rpm", "Rocky Linux:9"),
        (OSInfo("almalinux", "8.9"), "rpm", "AlmaLinux:8"),
        (OSInfo("rhel", "9.2"), "rpm", "Red Hat:9"),
        (OSInfo("debian", ""), "deb", None),  # testing/sid: no release to match
        (OSInfo("opensuse-leap", "15.5"), "rpm", None),
        (None, "deb", None),
    ]
    for os_info, type_, expected in cases:
        assert ecosystem_of(Package(type_, "x", "1"), os_info) == expected, (os_info, type_)


def test_language_packages_and_their_lookup_names() -> None:
    python = Package("pypi", "Zope.Interface", "6.0")
    assert ecosystem_of(python, None) == "PyPI"
    assert lookup_name(python, "PyPI") == "zope-interface"
    assert ecosystem_of(Package("golang", "stdlib", "1.21.4"), OSInfo("alpine", "3.18")) == "Go"
    deb = Package("deb", "libssl3", "3.0.11-1", source_name="openssl")
    assert lookup_name(deb, "Debian:12") == "openssl"
