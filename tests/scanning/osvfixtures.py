"""Small OSV records written for the tests (shapes as osv.dev publishes them)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def record(
    osv_id: str,
    ecosystem: str,
    package: str,
    events: list[dict[str, str]] | None = None,
    *,
    versions: list[str] | None = None,
    aliases: list[str] | None = None,
    cvss3: str | None = None,
    cvss2: str | None = None,
    rating: str | None = None,
    range_type: str = "ECOSYSTEM",
    summary: str = "",
) -> dict:
    affected: dict = {"package": {"ecosystem": ecosystem, "name": package}}
    if events is not None:
        affected["ranges"] = [{"type": range_type, "events": events}]
    if versions is not None:
        affected["versions"] = versions
    if rating is not None:
        affected["database_specific"] = {"severity": rating}
    severity = []
    if cvss3:
        severity.append({"type": "CVSS_V3", "score": cvss3})
    if cvss2:
        severity.append({"type": "CVSS_V2", "score": cvss2})
    out = {
        "schema_version": "1.6.0",
        "id": osv_id,
        "modified": "2026-11-01T00:00:00Z",
        "aliases": aliases or [],
        "summary": summary or f"{osv_id} in {package}",
        "details": f"Details of {osv_id}.",
        "affected": [affected],
        "references": [{"type": "WEB", "url": f"https://example.test/{osv_id}"}],
    }
    if severity:
        out["severity"] = severity
    return out


def write_dir(directory: Path, records: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (directory / f"{rec['id']}.json").write_text(json.dumps(rec))
    return directory


def write_zip(path: Path, records: list[dict]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for rec in records:
            archive.writestr(f"{rec['id']}.json", json.dumps(rec))
    return path


CRITICAL_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
HIGH_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
MEDIUM_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 5.4
LOW_V3 = "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"  # 1.6
MEDIUM_V2 = "AV:N/AC:M/Au:N/C:N/I:P/A:N"  # 4.3
