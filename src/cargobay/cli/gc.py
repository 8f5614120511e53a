"""`cargobay gc`: garbage-collect unreferenced blobs and stale uploads."""

from __future__ import annotations

import click

from cargobay.cli.common import _fail, _settings, _storage_options, _with_services


@click.command()
@_storage_options
@click.option("--dry-run", is_flag=True, help="Report what would be freed; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--full",
    is_flag=True,
    help="Scan every blob, not only GC's queue of candidates (a safety net; for garbage from "
    "before the queue existed).",
)
def gc(dry_run: bool, as_json: bool, full: bool, **options: object) -> None:
    """Delete blobs no image references (after the grace period) and stale uploads."""
    import json

    from cargobay.jobs.leases import run_once
    from cargobay.schedule import gc_job

    settings = _settings(**options)

    async def work(services):
        job = gc_job(services, dry_run=dry_run, full=full)
        if dry_run:
            return await job.run()
        return await run_once(services.db, job, force=True)

    report = _with_services(settings, work)
    if report is None:
        _fail(RuntimeError("garbage collection is already running elsewhere; try again later"))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"gc {verb} {report['bytes_freed']} bytes in {report['blobs_deleted']} blobs; "
        f"{report['links_removed']} unused repository links, "
        f"{report['uploads_expired']} stale uploads"
    )
