"""What several commands share: settings from their options, failing with a message, JSON
output, and running work against one process's services."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cargobay.config import ConfigError, Settings, load_settings


def _settings(**options: object) -> Settings:
    config_file = options.pop("config", None)
    try:
        return load_settings(config_file, overrides=options)  # type: ignore[arg-type]
    except ConfigError as exc:
        click.echo(f"cargobay: {exc}", err=True)
        sys.exit(2)


def _database_options(fn):
    for option in reversed(
        [
            click.option("--data-dir", type=click.Path(path_type=Path), default=None),
            click.option("--database", default=None, help="Metadata database URL."),
            click.option("--config", type=click.Path(path_type=Path), default=None),
        ]
    ):
        fn = option(fn)
    return fn


def _emit(value: object) -> None:
    import json

    click.echo(json.dumps(value, indent=4))


def _fail(exc: Exception) -> None:
    click.echo(f"cargobay: {exc}", err=True)
    sys.exit(1)


def _storage_options(fn):
    for option in reversed(
        [
            click.option("--data-dir", type=click.Path(path_type=Path), default=None),
            click.option("--config", type=click.Path(path_type=Path), default=None),
            click.option("--database", default=None, help="Metadata database URL."),
            click.option("--storage", default=None, help="Blob storage URL."),
        ]
    ):
        fn = option(fn)
    return fn


def _with_database(settings: Settings, work):
    """Run `work(db, box)` against the deployment's database (schema checked or upgraded),
    `box` sealing the secrets it stores; a schema that is behind is a message and exit 1."""
    import asyncio

    from cargobay.iam.secrets import load_box
    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database, SchemaOutOfDate

    async def main():
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
        db = Database(settings.database_url)
        try:
            return await work(db, load_box(settings.secret_key, settings.data_dir))
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except SchemaOutOfDate as exc:
        _fail(exc)


def _with_services(settings: Settings, work):
    """Run `work(services)` with one process's services, for command-line maintenance."""
    import asyncio

    from cargobay.registry.services import Services

    async def main():
        services = Services.build(settings)
        try:
            await services.db.check_schema()
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(main())
