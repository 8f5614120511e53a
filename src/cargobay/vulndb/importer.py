"""`cargobay vulndb import`: OSV files, directories and zips into the metadata database, with
a progress bar on a terminal and periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import click

from cargobay.config import Settings
from cargobay.vulndb.osv import read_records
from cargobay.vulndb.store import ImportReport, Progress, VulnDB

LOG_EVERY = 5.0  # seconds between progress lines when not on a terminal


def count_files(paths: list[Path]) -> int:
    """How many JSON files the import will read (for the progress bar's length)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for _ in path.rglob("*.json"))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                total += sum(1 for n in archive.namelist() if n.endswith(".json"))
        else:
            total += 1
    return total


def _log_progress(echo: Callable[[str], None]) -> Progress:
    last = time.monotonic()

    def progress(read: int, where: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LOG_EVERY:
            last = now
            echo(f"vulndb import: {read} records read (at {where})")

    return progress


async def _import(settings: Settings, paths: list[Path], progress: Progress) -> ImportReport:
    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database

    if not settings.database:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
    from cargobay.scans.service import ScanService

    db = Database(settings.database_url)
    try:
        sources = [str(p) for p in paths]
        report = await VulnDB(db).import_records(read_records(paths), sources, progress)
        # CONTINUOUS_SCAN repositories: every image is rescanned against the new version (the
        # running servers' task queues pick the scans up).
        queued = await ScanService(db).rescan_continuous()
        if queued:
            click.echo(f"vulndb import: {queued} images queued for rescanning", err=True)
        return report
    finally:
        await db.dispose()


def run(settings: Settings, paths: list[Path]) -> ImportReport:
    total = count_files(paths)
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
            seen = 0

            def advance(read: int, _where: str) -> None:
                nonlocal seen
                if read <= total:
                    bar.update(read - seen)
                    seen = read

            return asyncio.run(_import(settings, paths, advance))
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    echo(f"vulndb import: reading {total} files from {len(paths)} sources")
    report = asyncio.run(_import(settings, paths, _log_progress(echo)))
    return report
