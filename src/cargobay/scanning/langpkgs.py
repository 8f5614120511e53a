"""Language packages: Python distributions, npm packages and Maven artifacts inside jars."""

from __future__ import annotations

import io
import json
import posixpath
import re
import zipfile
from email.parser import BytesHeaderParser

from cargobay.scanning.model import MAVEN, NPM, PYPI, FileResult, Package
from cargobay.scanning.tar import Member, TarReader

# Jars are zip files (their directory is at the end), so a jar is held in memory while it is
# read: only jars up to this size; larger ones are noted in the inventory, not read.
MAX_JAR = 32 * 1024 * 1024
MAX_NESTED_JAR = 8 * 1024 * 1024  # a jar inside a jar, held beside its parent
MAX_NESTED = 3  # jar-in-jar depth (Spring Boot's BOOT-INF/lib, WEB-INF/lib)
METADATA_HEAD = 256 * 1024  # Python metadata headers come first; the long description after
MAX_PACKAGE_JSON = 1024 * 1024

JAR_SUFFIXES = (".jar", ".war", ".ear", ".par", ".hpi")


def _head(reader: TarReader, limit: int) -> bytes:
    parts, size = [], 0
    for chunk in reader.chunks():
        parts.append(chunk[: limit - size])
        size += len(parts[-1])
        if size >= limit:
            break
    return b"".join(parts)


def inspect_python(member: Member, reader: TarReader) -> FileResult | None:
    """`*.dist-info/METADATA`, `*.egg-info/PKG-INFO` or an `*.egg-info` file."""
    headers = BytesHeaderParser().parsebytes(_head(reader, METADATA_HEAD))
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    package = Package(PYPI, str(name).strip(), str(version).strip(), path=member.path)
    return FileResult(packages=[package])


def is_npm_manifest(path: str) -> bool:
    """`node_modules/<name>/package.json` or `node_modules/@scope/<name>/package.json` (not
    the package.json files some packages keep in their own subdirectories)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


def inspect_npm(member: Member, reader: TarReader) -> FileResult | None:
    data = reader.read_data(MAX_PACKAGE_JSON)
    if data is None:
        return FileResult(notes=[f"{member.path}: larger than {MAX_PACKAGE_JSON} bytes"])
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    if not isinstance(manifest, dict):
        return None
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    return FileResult(packages=[Package(NPM, name, version, path=member.path)])


def _split_property(line: str) -> tuple[str, str]:
    match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
    return (match.group(1), match.group(2)) if match else (line, "")


def _jar_packages(archive: zipfile.ZipFile, where: str, depth: int) -> list[Package]:
    found: list[Package] = []
    for info in archive.infolist():
        name = info.filename
        if name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
            if info.file_size > MAX_PACKAGE_JSON:
                continue
            text = archive.read(info).decode("utf-8", "replace")
            props = dict(
                _split_property(line.strip())
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "!"))
            )
            group, artifact, version = (
                props.get("groupId"),
                props.get("artifactId"),
                props.get("version"),
            )
            if group and artifact and version:
                found.append(Package(MAVEN, f"{group}:{artifact}", version, path=where))
        elif (
            name.endswith(JAR_SUFFIXES)
            and depth < MAX_NESTED
            and 0 < info.file_size <= MAX_NESTED_JAR
        ):
            try:
                inner = zipfile.ZipFile(io.BytesIO(archive.read(info)))
            except (zipfile.BadZipFile, OSError, NotImplementedError):
                continue
            found.extend(_jar_packages(inner, f"{where}!/{name}", depth + 1))
    return found


def inspect_jar(member: Member, reader: TarReader) -> FileResult | None:
    data = reader.read_data(MAX_JAR)
    if data is None:
        return FileResult(notes=[f"{member.path}: jar larger than {MAX_JAR} bytes, not read"])
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        packages = _jar_packages(archive, member.path, 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError):
        return FileResult(notes=[f"{member.path}: not a readable jar"])
    unique = list(dict.fromkeys(packages))
    return FileResult(packages=unique) if unique else None


def is_python_metadata(path: str) -> bool:
    directory, base = posixpath.split(path)
    return (
        (base == "METADATA" and directory.endswith(".dist-info"))
        or (base == "PKG-INFO" and directory.endswith(".egg-info"))
        or base.endswith(".egg-info")
    )
