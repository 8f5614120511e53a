"""The vulnerability database in the metadata database: versioned imports, atomic switch-over.

An import writes a new version's rows in batches (invisible to scans), then one transaction
points `vulndb_current` at it. Scans read the current version's number and its rows inside one
read transaction, and read it on every scan, so every process of a running server uses a new
import from its next scan on. The version replaced stays until the next import (a scan that
started on it finishes on complete data); older ones are deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.vulndb.osv import Advisory, parse_record

BATCH = 500  # advisories per write transaction
LOOKUP_CHUNK = 400  # package names per IN (...) query

Progress = Callable[[int, str], None]  # (records read so far, where the last came from)

_versions = schema.vulndb_versions
_current = schema.vulndb_current
_advisories = schema.vulndb_advisories
_affected = schema.vulndb_affected


class ImportSuperseded(Exception):
    """A newer import became current first; this one was discarded."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    version: int
    advisories: int
    affected: int
    skipped: int  # withdrawn records and records naming no package versions
    replaced: int | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """An advisory naming a package; matching decides whether the installed version is hit."""

    advisory_id: str
    name: str
    description: str
    uri: str
    severity: str
    cvss_version: str | None
    cvss_vector: str | None
    cvss_score: float | None
    ecosystem: str
    package: str
    ranges: list[list[dict[str, str]]]
    versions: list[str]


@dataclass(frozen=True, slots=True)
class CurrentVersion:
    version: int
    updated_at: float
    advisories: int


class VulnDB:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def current(self) -> CurrentVersion | None:
        async with self.db.read() as conn:
            return await _current_version(conn)

    async def import_records(
        self,
        records: Iterable[tuple[str, object]],
        sources: list[str],
        progress: Progress | None = None,
    ) -> ImportReport:
        """Load OSV records as a new version and make it current; on any error nothing
        changes for scans and the partial version is removed."""
        async with self.db.write() as conn:
            result = await conn.execute(
                insert(_versions).values(
                    state="importing", sources=json.dumps(sources), advisories=0,
                    created_at=time.time(),
                )
            )  # fmt: skip
            version = int(result.inserted_primary_key[0])
        try:
            counts = await self._fill(version, records, progress)
            replaced = await self._switch(version, counts[0])
        except BaseException:
            await self._drop(version)
            raise
        if replaced is not None:
            await self._drop_older_than(replaced)
        return ImportReport(version, counts[0], counts[1], counts[2], replaced)

    async def _fill(
        self, version: int, records: Iterable[tuple[str, object]], progress: Progress | None
    ) -> tuple[int, int, int]:
        seen: set[str] = set()
        batch: list[Advisory] = []
        advisories = affected = skipped = 0
        for read, (where, record) in enumerate(records, 1):
            advisory = parse_record(record)
            if advisory is None or advisory.id in seen:
                skipped += 1
            else:
                seen.add(advisory.id)
                batch.append(advisory)
            if len(batch) >= BATCH:
                affected += await self._write(version, batch)
                advisories += len(batch)
                batch = []
            if progress is not None:
                progress(read, where)
        if batch:
            affected += await self._write(version, batch)
            advisories += len(batch)
        return advisories, affected, skipped

    async def _write(self, version: int, batch: list[Advisory]) -> int:
        rows = [
            {
                "version": version,
                "id": a.id,
                "name": a.name[:128],
                "description": a.description,
                "uri": a.uri,
                "severity": a.severity,
                "cvss_version": a.cvss_version,
                "cvss_vector": (a.cvss_vector or "")[:256] or None,
                "cvss_score": a.cvss_score,
                "modified": a.modified[:40],
            }
            for a in batch
        ]
        affected = [
            {
                "version": version,
                "advisory_id": a.id,
                "ecosystem": entry.ecosystem[:128],
                "package": entry.package[:512],
                "ranges": json.dumps(entry.ranges, separators=(",", ":")),
                "versions": json.dumps(entry.versions, separators=(",", ":")),
            }
            for a in batch
            for entry in a.affected
        ]
        async with self.db.write() as conn:
            await conn.execute(insert(_advisories), rows)
            if affected:
                await conn.execute(insert(_affected), affected)
        return len(affected)

    async def _switch(self, version: int, advisories: int) -> int | None:
        now = time.time()
        async with self.db.write() as conn:
            row = (await conn.execute(select(_current.c.version).where(_current.c.id == 1))).first()
            replaced = row.version if row is not None else None
            if replaced is not None and replaced > version:
                raise ImportSuperseded(f"version {replaced} was imported meanwhile")
            if row is None:
                await conn.execute(insert(_current).values(id=1, version=version, updated_at=now))
            else:
                await conn.execute(
                    update(_current).where(_current.c.id == 1).values(
                        version=version, updated_at=now
                    )
                )  # fmt: skip
            await conn.execute(
                update(_versions).where(_versions.c.id == version).values(
                    state="ready", advisories=advisories, completed_at=now
                )
            )  # fmt: skip
        return replaced

    async def _drop(self, version: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(_affected).where(_affected.c.version == version))
            await conn.execute(delete(_advisories).where(_advisories.c.version == version))
            await conn.execute(delete(_versions).where(_versions.c.id == version))

    async def _drop_older_than(self, version: int) -> None:
        async with self.db.read() as conn:
            old = (await conn.execute(select(_versions.c.id).where(_versions.c.id < version))).all()
        for (old_version,) in old:
            await self._drop(old_version)

    async def candidates(
        self, wanted: dict[str, set[str]]
    ) -> tuple[CurrentVersion | None, list[Candidate]]:
        """The current version and its advisories naming any of the wanted packages (by
        normalized ecosystem), read in one snapshot."""
        found: list[Candidate] = []
        async with self.db.read() as conn:
            current = await _current_version(conn)
            if current is None:
                return None, []
            for ecosystem, names in sorted(wanted.items()):
                ordered = sorted(names)
                for start in range(0, len(ordered), LOOKUP_CHUNK):
                    rows = await conn.execute(
                        _lookup(current.version, ecosystem, ordered[start : start + LOOKUP_CHUNK])
                    )
                    found.extend(_candidate(row) for row in rows)
        return current, found


async def _current_version(conn: Any) -> CurrentVersion | None:
    row = (
        await conn.execute(
            select(_current.c.version, _current.c.updated_at, _versions.c.advisories)
            .join(_versions, _versions.c.id == _current.c.version)
            .where(_current.c.id == 1)
        )
    ).first()
    return CurrentVersion(row.version, row.updated_at, row.advisories) if row else None


def _lookup(version: int, ecosystem: str, names: list[str]) -> Any:
    a, f = _advisories, _affected
    return (
        select(
            f.c.advisory_id,
            f.c.ecosystem,
            f.c.package,
            f.c.ranges,
            f.c.versions,
            a.c.name,
            a.c.description,
            a.c.uri,
            a.c.severity,
            a.c.cvss_version,
            a.c.cvss_vector,
            a.c.cvss_score,
        )
        .join(a, (a.c.version == f.c.version) & (a.c.id == f.c.advisory_id))
        .where(f.c.version == version, f.c.ecosystem == ecosystem, f.c.package.in_(names))
        .order_by(f.c.advisory_id, f.c.id)
    )


def _candidate(row: Any) -> Candidate:
    return Candidate(
        advisory_id=row.advisory_id,
        name=row.name,
        description=row.description,
        uri=row.uri,
        severity=row.severity,
        cvss_version=row.cvss_version,
        cvss_vector=row.cvss_vector,
        cvss_score=row.cvss_score,
        ecosystem=row.ecosystem,
        package=row.package,
        ranges=json.loads(row.ranges),
        versions=json.loads(row.versions),
    )
