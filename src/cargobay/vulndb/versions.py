"""Which version order each OSV ecosystem uses, and the language orders (PEP 440, SemVer)."""

from __future__ import annotations

import re
from collections.abc import Callable

from packaging.version import InvalidVersion, Version

from cargobay.vulndb.maven import maven_compare
from cargobay.vulndb.osversions import apk_compare, dpkg_compare, rpm_compare

Compare = Callable[[str, str], int]


def pep440_compare(a: str, b: str) -> int:
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion as exc:
        raise ValueError(str(exc)) from exc
    return (va > vb) - (va < vb)


_SEMVER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _semver_key(version: str) -> tuple[tuple[int, int, int], list[str] | None]:
    text = version.strip()
    if text.startswith("go"):  # Go's own releases: go1.21, go1.21.4
        text = text[2:]
    match = _SEMVER.match(text)
    if not match:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    core = (int(major), int(minor or 0), int(patch or 0))
    return core, pre.split(".") if pre else None


def _prerelease(a: list[str], b: list[str]) -> int:
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return 1 if int(x) > int(y) else -1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers sort first
        return 1 if x > y else -1
    return (len(a) > len(b)) - (len(a) < len(b))


def semver_compare(a: str, b: str) -> int:
    """SemVer 2.0 precedence (build metadata ignored, so `+incompatible` too); Go's
    pseudo-versions are pre-releases, which this orders as Go does."""
    (ca, pa), (cb, pb) = _semver_key(a), _semver_key(b)
    if ca != cb:
        return 1 if ca > cb else -1
    if pa is None or pb is None:
        return (pa is None) - (pb is None)
    return _prerelease(pa, pb)


_BY_ECOSYSTEM: dict[str, Compare] = {
    "Debian": dpkg_compare,
    "Ubuntu": dpkg_compare,
    "Alpine": apk_compare,
    "Red Hat": rpm_compare,
    "Rocky Linux": rpm_compare,
    "AlmaLinux": rpm_compare,
    "openSUSE": rpm_compare,
    "SUSE": rpm_compare,
    "Mageia": rpm_compare,
    "PyPI": pep440_compare,
    "npm": semver_compare,
    "Go": semver_compare,
    "crates.io": semver_compare,
    "Maven": maven_compare,
}


def comparator(ecosystem: str) -> Compare | None:
    """The order for an OSV ecosystem name (`Debian:12` uses Debian's), or None if unknown."""
    return _BY_ECOSYSTEM.get(ecosystem.split(":", 1)[0])
