"""OS identity (os-release) and the OS package databases of dpkg and apk."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from cargobay.scanning.model import APK, DEB, OSInfo, Package

_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


def parse_os_release(text: str) -> OSInfo | None:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    if "ID" not in values:
        return None
    return OSInfo(
        id=values["ID"].lower(),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
    )


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style paragraphs (dpkg status): continuation lines start with a space."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        yield fields


def parse_dpkg_status(text: str, path: str) -> list[Package]:
    """Installed packages of a dpkg status file, or of one distroless `status.d/` entry
    (which has no Status field: everything listed there is installed)."""
    packages = []
    for fields in _stanzas(text):
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        status = fields.get("Status")
        if status is not None and status.split()[-1:] != ["installed"]:
            continue
        source_name = source_version = None
        match = _SOURCE.match(fields.get("Source", ""))
        if match:
            source_name, source_version = match.group(1), match.group(2) or version
        packages.append(
            Package(
                DEB,
                name,
                version,
                source_name=source_name,
                source_version=source_version,
                arch=fields.get("Architecture"),
                path=path,
            )
        )
    return packages


def parse_apk_installed(text: str, path: str) -> list[Package]:
    """/lib/apk/db/installed: one paragraph per package, one-letter keys (`o:` is the origin,
    the source package Alpine's advisories name)."""
    packages = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
        if "P" in fields and "V" in fields:
            packages.append(
                Package(
                    APK,
                    fields["P"],
                    fields["V"],
                    source_name=fields.get("o") or fields["P"],
                    source_version=fields["V"],
                    arch=fields.get("A"),
                    path=path,
                )
            )
    return packages
