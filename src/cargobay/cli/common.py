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
