"""RPM package databases in SQLite form (rpmdb.sqlite: Fedora 33+, RHEL 9, Rocky, Alma).

SQLite needs a file, so this one database is copied to a temporary file while its layer
streams past (bounded by MAX_RPMDB), read, and deleted. The older Berkeley DB and ndb formats
are not read (noted in the inventory).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile

from cargobay.scanning.model import RPM, FileResult, Package
from cargobay.scanning.tar import Member, TarReader

MAX_RPMDB = 512 * 1024 * 1024

NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9


def parse_header(blob: bytes) -> dict[int, str | int]:
    """The few tags we need from an RPM header blob (an index of 16-byte entries, then a data
    store; big-endian)."""
    count, size = struct.unpack_from(">ii", blob, 0)
    data_start = 8 + 16 * count
    if count < 0 or size < 0 or data_start + size > len(blob):
        raise ValueError("malformed RPM header")
    out: dict[int, str | int] = {}
    for i in range(count):
        tag, kind, offset, n = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag not in (NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM) or n < 1:
            continue
        pos = data_start + offset
        if kind == _INT32 and pos + 4 <= len(blob):
            out[tag] = struct.unpack_from(">i", blob, pos)[0]
        elif kind in (_STRING, _STRING_ARRAY, _I18NSTRING):
            end = blob.find(b"\0", pos)
            out[tag] = blob[pos : end if end >= 0 else len(blob)].decode("utf-8", "replace")
    return out


def _source_name(sourcerpm: str) -> str | None:
    base = sourcerpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = base.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else None


def packages_from_sqlite(path: str, where: str) -> list[Package]:
    uri = f"file:{path}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return [
            p
            for (blob,) in conn.execute("SELECT blob FROM Packages")
            for p in _package(blob, where)
        ]
    finally:
        conn.close()


def _package(blob: bytes, where: str) -> list[Package]:
    """The package a header describes (none for public keys and malformed headers)."""
    try:
        tags = parse_header(bytes(blob))
    except (ValueError, struct.error):
        return []
    name, version, release = tags.get(NAME), tags.get(VERSION), tags.get(RELEASE)
    if not isinstance(name, str) or not isinstance(version, str) or name == "gpg-pubkey":
        return []
    epoch = tags.get(EPOCH)
    evr = f"{epoch}:" if isinstance(epoch, int) else ""
    evr += version + (f"-{release}" if isinstance(release, str) else "")
    source = tags.get(SOURCERPM)
    return [
        Package(
            RPM,
            name,
            evr,
            source_name=_source_name(source) if isinstance(source, str) else None,
            arch=str(tags.get(ARCH) or "") or None,
            path=where,
        )
    ]


def inspect_rpmdb(member: Member, reader: TarReader) -> FileResult:
    if member.size > MAX_RPMDB:
        return FileResult(notes=[f"{member.path}: larger than {MAX_RPMDB} bytes, not read"])
    fd, tmp = tempfile.mkstemp(prefix="cargobay-rpmdb-", suffix=".sqlite")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in reader.chunks():
                out.write(chunk)
        try:
            return FileResult(packages=packages_from_sqlite(tmp, member.path))
        except sqlite3.Error as exc:
            return FileResult(notes=[f"{member.path}: unreadable RPM database ({exc})"])
    finally:
        os.unlink(tmp)
