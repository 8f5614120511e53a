"""Which OSV ecosystem (normalized as osv.normalize_ecosystem does) an installed package's
advisories are filed under: OS packages by the OS release, language packages by registry."""

from __future__ import annotations

import re

from cargobay.scanning.model import APK, DEB, GOLANG, MAVEN, NPM, PYPI, RPM, OSInfo, Package
from cargobay.vulndb.osv import normalize_package

_LANGUAGE = {PYPI: "PyPI", NPM: "npm", GOLANG: "Go", MAVEN: "Maven"}
_RPM_DISTROS = {"rocky": "Rocky Linux", "almalinux": "AlmaLinux", "rhel": "Red Hat"}


def _major(version_id: str) -> str:
    return version_id.split(".", 1)[0]


def os_ecosystem(os: OSInfo | None, package_type: str) -> str | None:
    """`Debian:12`, `Ubuntu:22.04`, `Alpine:v3.18`, `Rocky Linux:9`...; None when the OS or
    its release is unknown (then OS packages are listed but not matched)."""
    if os is None or not os.version_id:
        return None
    if package_type == DEB and os.id == "debian":
        return f"Debian:{_major(os.version_id)}"
    if package_type == DEB and os.id == "ubuntu":
        return f"Ubuntu:{os.version_id}"
    if package_type == APK and os.id == "alpine":
        match = re.match(r"(\d+)\.(\d+)", os.version_id)
        return f"Alpine:v{match.group(1)}.{match.group(2)}" if match else None
    if package_type == RPM and os.id in _RPM_DISTROS:
        return f"{_RPM_DISTROS[os.id]}:{_major(os.version_id)}"
    return None


def ecosystem_of(package: Package, os: OSInfo | None) -> str | None:
    if package.type in _LANGUAGE:
        return _LANGUAGE[package.type]
    return os_ecosystem(os, package.type)


def lookup_name(package: Package, ecosystem: str) -> str:
    """The package name advisories use, normalized as stored."""
    return normalize_package(ecosystem, package.advisory_name)
