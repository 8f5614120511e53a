"""OSV records (https://ossf.github.io/osv-schema/): reading them from files, directories and
the per-ecosystem zips osv.dev publishes, and reducing each to what matching needs."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cargobay.vulndb.cvss import (
    severity_from_rating,
    severity_from_score,
    v2_base_score,
    v3_base_score,
)

MAX_RECORD = 16 * 1024 * 1024  # one advisory's JSON; larger members of a zip are refused
MAX_DESCRIPTION = 2000
RANGE_TYPES = ("ECOSYSTEM", "SEMVER")  # GIT ranges name commits, not package versions
EVENTS = ("introduced", "fixed", "last_affected", "limit")


class OSVError(ValueError):
    """A file that is not OSV JSON (the import stops: nothing half-imported is visible)."""


@dataclass(slots=True)
class Affected:
    ecosystem: str  # normalized: see normalize_ecosystem
    package: str  # normalized: see normalize_package
    ranges: list[list[dict[str, str]]]  # event lists of ECOSYSTEM/SEMVER ranges
    versions: list[str]


@dataclass(slots=True)
class Advisory:
    id: str
    name: str  # the CVE id when the record is an alias of exactly one CVE
    description: str
    uri: str
    severity: str
    cvss_version: str | None = None
    cvss_vector: str | None = None
    cvss_score: float | None = None
    modified: str = ""
    affected: list[Affected] = field(default_factory=list)


def normalize_ecosystem(ecosystem: str) -> str:
    """One key per release line: `Ubuntu:22.04:LTS` -> `Ubuntu:22.04`,
    `Red Hat:enterprise_linux:9::appstream` -> `Red Hat:9`; others as OSV spells them."""
    base, _, rest = ecosystem.partition(":")
    if base == "Ubuntu":
        parts = [p for p in rest.split(":") if p and p != "LTS"]
        return ":".join([base, *parts])
    if base == "Red Hat":
        match = re.search(r"(?:^|:)[a-z_]*?(\d+)(?=$|[:.])", rest)
        return f"Red Hat:{match.group(1)}" if match else base
    return ecosystem


def normalize_package(ecosystem: str, name: str) -> str:
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def _cvss(record: dict[str, Any]) -> tuple[str | None, str | None, float | None]:
    by_type = {
        s.get("type"): s.get("score")
        for s in record.get("severity") or []
        if isinstance(s, dict) and isinstance(s.get("score"), str)
    }
    for kind, version, scorer in (("CVSS_V3", "3", v3_base_score), ("CVSS_V2", "2", v2_base_score)):
        vector = by_type.get(kind)
        if vector:
            try:
                return version, vector, scorer(vector)
            except ValueError:
                continue
    return None, None, None


def _rating(record: dict[str, Any]) -> str | None:
    places: list[Any] = [record.get("database_specific")]
    for affected in record.get("affected") or []:
        if isinstance(affected, dict):
            places += [affected.get("ecosystem_specific"), affected.get("database_specific")]
    for place in places:
        if isinstance(place, dict):
            rating = severity_from_rating(place.get("severity") or place.get("urgency"))
            if rating:
                return rating
    for entry in record.get("severity") or []:
        if isinstance(entry, dict) and entry.get("type") == "Ubuntu":
            rating = severity_from_rating(entry.get("score"))
            if rating:
                return rating
    return None


def _uri(record: dict[str, Any], osv_id: str) -> str:
    for ref in record.get("references") or []:
        if isinstance(ref, dict) and ref.get("type") == "ADVISORY" and ref.get("url"):
            return str(ref["url"])
    return f"https://osv.dev/vulnerability/{osv_id}"


def _affected(entry: dict[str, Any]) -> Affected | None:
    package = entry.get("package")
    if not isinstance(package, dict):
        return None
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str):
        return None
    ranges = []
    for item in entry.get("ranges") or []:
        if isinstance(item, dict) and item.get("type") in RANGE_TYPES:
            events = [
                {k: str(v) for k, v in event.items() if k in EVENTS}
                for event in item.get("events") or []
                if isinstance(event, dict)
            ]
            ranges.append([e for e in events if len(e) == 1])
    versions = [str(v) for v in entry.get("versions") or [] if isinstance(v, str | int)]
    if not ranges and not versions:
        return None
    eco = normalize_ecosystem(ecosystem)
    return Affected(eco, normalize_package(eco, name), ranges, versions)


def parse_record(record: object) -> Advisory | None:
    """The advisory, or None for a withdrawn record or one naming no package versions."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise OSVError("not an OSV record (no id)")
    if record.get("withdrawn"):
        return None
    osv_id = record["id"]
    aliases = [a for a in record.get("aliases") or [] if isinstance(a, str)]
    cves = [a for a in aliases if a.startswith("CVE-")]
    name = osv_id if osv_id.startswith("CVE-") or len(cves) != 1 else cves[0]
    version, vector, score = _cvss(record)
    # A v3 score first; then the database's own rating; then a v2 score.
    if version == "3" and score is not None:
        severity = severity_from_score(score)
    else:
        fallback = severity_from_score(score) if score is not None else "UNDEFINED"
        severity = _rating(record) or fallback
    text = str(record.get("details") or record.get("summary") or "")
    entries = [_affected(e) for e in record.get("affected") or [] if isinstance(e, dict)]
    affected = [a for a in entries if a is not None]
    if not affected:
        return None
    return Advisory(
        id=osv_id,
        name=name,
        description=text[:MAX_DESCRIPTION],
        uri=_uri(record, osv_id),
        severity=severity,
        cvss_version=version,
        cvss_vector=vector,
        cvss_score=score,
        modified=str(record.get("modified") or ""),
        affected=affected,
    )


def _load(data: bytes, where: str) -> Iterator[object]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise OSVError(f"{where}: not JSON ({exc})") from exc
    yield from value if isinstance(value, list) else [value]


def read_records(paths: list[Path]) -> Iterator[tuple[str, object]]:
    """(where, record) for every OSV record in the files, directories (recursively, *.json)
    and zips given; one record in memory at a time."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                for record in _load(file.read_bytes(), str(file)):
                    yield str(file), record
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.is_dir() or not info.filename.endswith(".json"):
                        continue
                    where = f"{path}!/{info.filename}"
                    if info.file_size > MAX_RECORD:
                        raise OSVError(f"{where}: larger than {MAX_RECORD} bytes")
                    for record in _load(archive.read(info), where):
                        yield where, record
        elif path.is_file():
            for record in _load(path.read_bytes(), str(path)):
                yield str(path), record
        else:
            raise OSVError(f"{path}: no such file or directory")
