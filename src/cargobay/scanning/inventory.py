"""Which files in a layer say what is installed, and how each is read.

Every member of every layer passes through `inspect`; most are skipped by a few string tests
on the path, so the walk costs little more than decompression.
"""

from __future__ import annotations

from cargobay.scanning import gobinary, langpkgs, ospkgs, rpmdb
from cargobay.scanning.layers import MergedTree
from cargobay.scanning.model import FileResult, Inventory, OSInfo, Package
from cargobay.scanning.tar import REGULAR, Member, TarReader

MAX_METADATA = 16 * 1024 * 1024  # a dpkg status or apk database larger than this is refused
MAX_OS_RELEASE = 64 * 1024
MIN_BINARY = 1024  # smaller executables are scripts or stubs, never Go programs

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
RPMDB = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
OLD_RPMDB = ("var/lib/rpm/Packages", "var/lib/rpm/Packages.db")


def _distroless_status(path: str) -> bool:
    """`status.d/<package>` (beside it, `<package>.md5sums` lists file checksums)."""
    name = path.removeprefix(DPKG_STATUS_D)
    return name != path and "/" not in name and not name.endswith(".md5sums")


def _text(member: Member, reader: TarReader, limit: int) -> str | None:
    data = reader.read_data(limit)
    return None if data is None else data.decode("utf-8", "replace")


def _too_big(member: Member, limit: int) -> FileResult:
    return FileResult(notes=[f"{member.path}: larger than {limit} bytes, not read"])


def inspect(member: Member, reader: TarReader) -> FileResult | None:
    """What this file contributes to the inventory, or None if nothing."""
    if member.kind != REGULAR:
        return None
    path = member.path
    if path in OS_RELEASE:
        text = _text(member, reader, MAX_OS_RELEASE)
        info = ospkgs.parse_os_release(text) if text is not None else None
        return FileResult(os=info) if info else None
    if path == DPKG_STATUS or _distroless_status(path):
        text = _text(member, reader, MAX_METADATA)
        if text is None:
            return _too_big(member, MAX_METADATA)
        return FileResult(packages=ospkgs.parse_dpkg_status(text, path))
    if path == APK_INSTALLED:
        text = _text(member, reader, MAX_METADATA)
        if text is None:
            return _too_big(member, MAX_METADATA)
        return FileResult(packages=ospkgs.parse_apk_installed(text, path))
    if path in RPMDB:
        return rpmdb.inspect_rpmdb(member, reader)
    if path in OLD_RPMDB:
        return FileResult(notes=[f"{path}: Berkeley DB/ndb RPM databases are not read"])
    if langpkgs.is_python_metadata(path):
        return langpkgs.inspect_python(member, reader)
    if path.endswith("/package.json") and langpkgs.is_npm_manifest(path):
        return langpkgs.inspect_npm(member, reader)
    if path.endswith(langpkgs.JAR_SUFFIXES):
        return langpkgs.inspect_jar(member, reader)
    if member.mode & 0o111 and member.size >= MIN_BINARY:
        return gobinary.inspect_binary(member, reader)
    return None


def collect(tree: MergedTree, architecture: str = "") -> Inventory:
    """The inventory of the merged layers: /etc/os-release outranks /usr/lib/os-release, and
    packages are listed once each, in a stable order."""
    os_info: OSInfo | None = None
    for path in reversed(OS_RELEASE):
        result = tree.files.get(path)
        if result is not None and result.os is not None:
            os_info = result.os
    packages: dict[tuple[str, str, str, str], Package] = {}
    notes: list[str] = []
    for path in sorted(tree.files):
        result = tree.files[path]
        notes.extend(result.notes)
        for package in result.packages:
            key = (package.type, package.name, package.version, package.path)
            packages.setdefault(key, package)
    ordered = sorted(packages.values(), key=lambda p: (p.type, p.name, p.version, p.path))
    return Inventory(os=os_info, packages=ordered, notes=notes, architecture=architecture)
