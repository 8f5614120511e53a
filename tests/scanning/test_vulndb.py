"""The offline OSV database: CVSS scoring, range semantics, versioned imports, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dbhelp import database_url
from osvfixtures import (
    CRITICAL_V3,
    HIGH_V3,
    LOW_V3,
    MEDIUM_V2,
    MEDIUM_V3,
    record,
    write_dir,
    write_zip,
)
from sqlalchemy import func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.vulndb.cvss import v2_base_score, v3_base_score
from cargobay.vulndb.matching import is_affected
from cargobay.vulndb.osv import OSVError, normalize_ecosystem, parse_record, read_records
from cargobay.vulndb.osversions import dpkg_compare
from cargobay.vulndb.store import VulnDB
from cargobay.vulndb.versions import semver_compare


@pytest.mark.parametrize(
    "vector,score",
    [
        (CRITICAL_V3, 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        (HIGH_V3, 7.5),
        (MEDIUM_V3, 5.4),
        (LOW_V3, 1.6),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss3_base_scores(vector: str, score: float) -> None:
    assert v3_base_score(vector) == score


@pytest.mark.parametrize(
    "vector,score",
    [
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        (MEDIUM_V2, 4.3),
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
        ("AV:L/AC:L/Au:N/C:P/I:N/A:N", 2.1),
    ],
)
def test_cvss2_base_scores(vector: str, score: float) -> None:
    assert v2_base_score(vector) == score


def test_severity_prefers_cvss3_then_the_databases_rating_then_cvss2() -> None:
    def severity(**kw) -> str:
        advisory = parse_record(record("X-1", "PyPI", "p", [{"introduced": "0"}], **kw))
        assert advisory is not None
        return advisory.severity

    assert severity(cvss3=CRITICAL_V3, rating="LOW") == "CRITICAL"
    assert severity(cvss2=MEDIUM_V2, rating="HIGH") == "HIGH"
    assert severity(cvss2=MEDIUM_V2) == "MEDIUM"
    assert severity(rating="MODERATE") == "MEDIUM"
    assert severity() == "UNDEFINED"


def test_records_without_versions_git_only_or_withdrawn_are_skipped() -> None:
    git_only = record("X-2", "PyPI", "p", [{"introduced": "0"}], range_type="GIT")
    assert parse_record(git_only) is None
    assert parse_record(dict(record("X-3", "PyPI", "p", versions=["1"]), withdrawn="x")) is None
    with pytest.raises(OSVError):
        parse_record({"no": "id"})


def test_cve_alias_names_the_finding() -> None:
    advisory = parse_record(record("GHSA-aaaa", "npm", "x", versions=["1"], aliases=["CVE-1"]))
    assert advisory is not None and (advisory.id, advisory.name) == ("GHSA-aaaa", "CVE-1")
    assert advisory.uri == "https://osv.dev/vulnerability/GHSA-aaaa"


def test_ecosystem_normalization() -> None:
    assert normalize_ecosystem("Ubuntu:22.04:LTS") == "Ubuntu:22.04"
    assert normalize_ecosystem("Ubuntu:Pro:18.04:LTS") == "Ubuntu:Pro:18.04"
    assert normalize_ecosystem("Red Hat:enterprise_linux:9::appstream") == "Red Hat:9"
    assert normalize_ecosystem("Debian:12") == "Debian:12"


@pytest.mark.parametrize(
    "version,expected",
    [("0.9", False), ("1.0", True), ("1.4", True), ("1.5", False), ("2.0", True),
     ("2.3", True), ("2.4", False), ("3.0", True), ("9.9", True)],
)  # fmt: skip
def test_range_semantics(version: str, expected: bool) -> None:
    ranges = [
        [{"introduced": "1.0"}, {"fixed": "1.5"}],
        [{"introduced": "2.0"}, {"last_affected": "2.3"}],
        [{"introduced": "3.0"}],
    ]
    assert is_affected(version, ranges, [], semver_compare) is expected


def test_limit_and_explicit_versions() -> None:
    ranges = [[{"introduced": "0"}, {"limit": "1.2"}]]
    assert is_affected("1.1", ranges, [], semver_compare)
    assert not is_affected("1.2", ranges, [], semver_compare)
    assert is_affected("7.0", [], ["7.0"], semver_compare)
    debian = [[{"introduced": "0"}, {"fixed": "1:2.0-1"}]]
    assert not is_affected("1:2.0-1", debian, [], dpkg_compare)
    assert is_affected("1:2.0-1~deb12u1", debian, [], dpkg_compare)
    assert not is_affected("3.0-1", [[{"introduced": "0"}, {"fixed": "2.0-1"}]], [], dpkg_compare)


def test_files_directories_lists_and_zips_are_read(tmp_path: Path) -> None:
    a = record("A-1", "PyPI", "a", versions=["1"])
    b = record("B-1", "PyPI", "b", versions=["1"])
    c = record("C-1", "PyPI", "c", versions=["1"])
    d = record("D-1", "PyPI", "d", versions=["1"])
    (tmp_path / "list.json").write_text(json.dumps([a]))
    write_dir(tmp_path / "dir" / "nested", [b])
    write_zip(tmp_path / "all.zip", [c, d])
    records = list(read_records([tmp_path / "list.json", tmp_path / "dir", tmp_path / "all.zip"]))
    assert [r["id"] for _, r in records] == ["A-1", "B-1", "C-1", "D-1"]  # type: ignore[index]
    assert records[2][0].endswith("all.zip!/C-1.json")


async def _count(db: Database, table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar())


async def _versions(db: Database) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(schema.vulndb_advisories.c.version).distinct().order_by("version")
        )
        return [row.version for row in rows]


@pytest.mark.backend
def test_imports_are_versioned_and_switched_atomically(tmp_path: Path) -> None:
    first = [record("PYSEC-1", "PyPI", "Requests_Lib", [{"introduced": "0"}, {"fixed": "2"}])]
    second = [record("PYSEC-2", "PyPI", "requests-lib", versions=["1.0"]), first[0]]

    async def scenario() -> None:
        importer = Database(await database_url(tmp_path))
        server = Database(importer.url)  # another process's handle on the same database

        async def imported(records: list[dict]):
            return await VulnDB(importer).import_records([("t", r) for r in records], ["t"])

        async def seen_by_server() -> tuple[int | None, list[str]]:
            current, found = await VulnDB(server).candidates({"PyPI": {"requests-lib"}})
            return (current.version if current else None), [c.advisory_id for c in found]

        try:
            assert await seen_by_server() == (None, [])
            report = await imported(first)
            assert (report.advisories, report.affected, report.replaced) == (1, 1, None)
            # Package names are stored PEP 503-normalized.
            assert await seen_by_server() == (report.version, ["PYSEC-1"])

            report2 = await imported(second)
            assert report2.replaced == report.version
            assert await seen_by_server() == (report2.version, ["PYSEC-1", "PYSEC-2"])
            # The replaced version is kept (scans that started on it finish)...
            assert await _versions(importer) == [report.version, report2.version]

            report3 = await imported(first)
            # ...until the next import.
            assert await _versions(importer) == [report2.version, report3.version]
            assert await _count(importer, schema.vulndb_advisories) == 3
            assert await seen_by_server() == (report3.version, ["PYSEC-1"])

            bad = [("t", first[0]), ("t", {"not": "osv"})]
            with pytest.raises(OSVError):
                await VulnDB(importer).import_records(bad, ["t"])
            assert await seen_by_server() == (report3.version, ["PYSEC-1"])
            # The failed import left nothing behind.
            assert await _count(importer, schema.vulndb_advisories) == 3
            assert await _versions(importer) == [report2.version, report3.version]
        finally:
            await importer.dispose()
            await server.dispose()

    asyncio.run(scenario())


def test_cli_imports_zips_and_reports(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "all.zip",
        [record(f"DSA-{i}", "Debian:12", "openssl", versions=["1"]) for i in range(3)],
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    command = [sys.executable, "-m", "cargobay", "vulndb"]
    data = ["--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [*command, "import", *data, str(archive)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "vulndb version 1 is current: 3 advisories, 3 affected packages" in done.stdout
    assert "reading 3 files from 1 sources" in done.stderr  # not a terminal: log lines
    status = subprocess.run([*command, "status", *data], capture_output=True, text=True, env=env)
    assert status.stdout.strip() == "version 1: 3 advisories"

    (tmp_path / "bad.json").write_text("{not json")
    failed = subprocess.run(
        [*command, "import", *data, str(tmp_path / "bad.json")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failed.returncode == 1 and "not JSON" in failed.stderr
    status = subprocess.run([*command, "status", *data], capture_output=True, text=True, env=env)
    assert status.stdout.strip() == "version 1: 3 advisories"
