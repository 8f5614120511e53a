"""`cargobay vulndb`: the offline vulnerability database that image scans match against."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cargobay.cli.common import _database_options, _fail, _settings


@click.group()
def vulndb() -> None:
    """The offline vulnerability database (OSV advisories) that image scans match against."""


@vulndb.command("import")
@_database_options
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def vulndb_import(paths: tuple[Path, ...], **options: object) -> None:
    """Load OSV JSON files, directories of them or osv.dev zips (`<Ecosystem>/all.zip`) as a
    new database version, and make it current at once (running servers use it from their
    next scan)."""
    from cargobay.metadata.db import SchemaOutOfDate
    from cargobay.vulndb.importer import run
    from cargobay.vulndb.osv import OSVError
    from cargobay.vulndb.store import ImportSuperseded

    settings = _settings(**options)
    try:
        report = run(settings, list(paths))
    except (OSVError, ImportSuperseded, SchemaOutOfDate) as exc:
        _fail(exc)
    replaced = f", replacing version {report.replaced}" if report.replaced else ""
    click.echo(
        f"vulndb version {report.version} is current: {report.advisories} advisories, "
        f"{report.affected} affected packages, {report.skipped} records skipped{replaced}"
    )


@vulndb.command("status")
@_database_options
def vulndb_status(**options: object) -> None:
    """Print the current vulnerability database version."""
    import asyncio

    from cargobay.metadata.db import Database, SchemaOutOfDate
    from cargobay.vulndb.store import VulnDB

    settings = _settings(**options)

    async def main():
        db = Database(settings.database_url)
        try:
            await db.check_schema()
            return await VulnDB(db).current()
        finally:
            await db.dispose()

    try:
        current = asyncio.run(main())
    except SchemaOutOfDate as exc:
        _fail(exc)
    if current is None:
        click.echo("no vulnerability database imported; run `cargobay vulndb import`")
        sys.exit(1)
    click.echo(f"version {current.version}: {current.advisories} advisories")
