"""`cargobay db`: show and upgrade the metadata database's schema revision."""

from __future__ import annotations

import sys

import click

from cargobay.cli.common import _database_options, _fail, _settings


@click.group()
def db() -> None:
    """Show and upgrade the metadata database's schema revision."""


@db.command()
@_database_options
@click.option("--revision", default="head", help="Upgrade to this revision (default: head).")
def upgrade(revision: str, **options: object) -> None:
    """Upgrade the database schema in place (safe to repeat, and from several nodes at once)."""
    import asyncio

    from cargobay.metadata import migrations

    settings = _settings(**options)
    if not settings.database:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        before, after = asyncio.run(migrations.upgrade(settings.database_url, revision))
    except migrations.MigrationError as exc:
        _fail(exc)
    if before.current == after:
        click.echo(f"database schema is at revision {after}; nothing to do")
    else:
        click.echo(f"database schema upgraded from revision {before.shown} to {after}")


@db.command()
@_database_options
def current(**options: object) -> None:
    """Print the database's schema revision; exit 1 when it needs `cargobay db upgrade`."""
    import asyncio

    from cargobay.metadata import migrations

    settings = _settings(**options)
    try:
        state = asyncio.run(migrations.state(settings.database_url))
    except migrations.MigrationError as exc:
        _fail(exc)
    if state.up_to_date:
        click.echo(f"{state.current} (head)")
        return
    note = "run `cargobay db upgrade`" if state.known else "from a newer cargobay"
    click.echo(f"{state.shown}; this cargobay needs {state.head}: {note}")
    sys.exit(1)
