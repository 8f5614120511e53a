"""Findings: the inventory matched against the current vulnerability database, in the shape
of ECR's basic scan (`ImageScanFinding`, `findingSeverityCounts`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cargobay.scanning.model import Inventory, Package
from cargobay.vulndb.cvss import SEVERITIES
from cargobay.vulndb.ecosystems import ecosystem_of, lookup_name
from cargobay.vulndb.matching import is_affected
from cargobay.vulndb.store import Candidate, VulnDB
from cargobay.vulndb.versions import comparator

MAX_ATTRIBUTE = 256  # botocore: AttributeValue max length
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    description: str
    uri: str
    severity: str
    package_name: str
    package_version: str
    advisory_id: str
    cvss_version: str | None = None
    cvss_vector: str | None = None
    cvss_score: float | None = None

    def shape(self) -> dict[str, Any]:
        """An ECR `ImageScanFinding`."""
        attributes = [
            ("package_version", self.package_version),
            ("package_name", self.package_name),
        ]
        if self.cvss_version and self.cvss_vector and self.cvss_score is not None:
            prefix = f"CVSS{self.cvss_version}"
            attributes += [
                (f"{prefix}_VECTOR", self.cvss_vector),
                (f"{prefix}_SCORE", str(self.cvss_score)),
            ]
        return {
            "name": self.name,
            "description": self.description,
            "uri": self.uri,
            "severity": self.severity,
            "attributes": [
                {"key": key, "value": value[:MAX_ATTRIBUTE]} for key, value in attributes if value
            ],
        }

    @property
    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (
            _RANK.get(self.severity, len(SEVERITIES)),
            self.name,
            self.package_name,
            self.package_version,
            self.advisory_id,
        )


@dataclass(slots=True)
class MatchResult:
    findings: list[Finding]
    database_version: int | None  # None: no database imported yet
    database_updated_at: float | None  # ECR's vulnerabilitySourceUpdatedAt
    notes: list[str] = field(default_factory=list)

    @property
    def severity_counts(self) -> dict[str, int]:
        """ECR's `findingSeverityCounts`: only severities that occur."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: _RANK[item[0]]))


def _index(inventory: Inventory) -> dict[tuple[str, str], list[Package]]:
    by_key: dict[tuple[str, str], list[Package]] = {}
    for package in inventory.packages:
        ecosystem = ecosystem_of(package, inventory.os)
        if ecosystem is not None:
            by_key.setdefault((ecosystem, lookup_name(package, ecosystem)), []).append(package)
    return by_key


def evaluate(
    candidates: list[Candidate], by_key: dict[tuple[str, str], list[Package]]
) -> tuple[list[Finding], list[str]]:
    """The findings among the candidates: one per (vulnerability, package, version), the
    most severe rating when two advisories name the same vulnerability."""
    found: dict[tuple[str, str, str], Finding] = {}
    notes: list[str] = []
    for cand in candidates:
        compare = comparator(cand.ecosystem)
        if compare is None:
            continue
        for package in by_key.get((cand.ecosystem, cand.package), []):
            version = package.advisory_version
            try:
                hit = is_affected(version, cand.ranges, cand.versions, compare)
            except ValueError:
                notes.append(f"{cand.advisory_id}: cannot order {package.name} {version}")
                continue
            if not hit:
                continue
            finding = Finding(
                name=cand.name,
                description=cand.description,
                uri=cand.uri,
                severity=cand.severity,
                package_name=package.advisory_name,
                package_version=version,
                advisory_id=cand.advisory_id,
                cvss_version=cand.cvss_version,
                cvss_vector=cand.cvss_vector,
                cvss_score=cand.cvss_score,
            )
            key = (finding.name, finding.package_name, finding.package_version)
            if key not in found or finding.sort_key < found[key].sort_key:
                found[key] = finding
    return sorted(found.values(), key=lambda f: f.sort_key), sorted(set(notes))


async def match(vulndb: VulnDB, inventory: Inventory) -> MatchResult:
    """Match against the database version current now (read on every call, so a new import is
    used from the next scan on)."""
    by_key = _index(inventory)
    wanted: dict[str, set[str]] = {}
    for ecosystem, name in by_key:
        wanted.setdefault(ecosystem, set()).add(name)
    current, candidates = await vulndb.candidates(wanted)
    if current is None:
        return MatchResult([], None, None, ["no vulnerability database has been imported"])
    findings, notes = await asyncio.to_thread(evaluate, candidates, by_key)
    unmatched = sorted(
        {p.type for p in inventory.packages if ecosystem_of(p, inventory.os) is None}
    )
    if unmatched:
        notes.append(f"no advisory ecosystem for the OS's {', '.join(unmatched)} packages")
    return MatchResult(findings, current.version, current.updated_at, notes)
