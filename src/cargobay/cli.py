"""The `cargobay` command line."""

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


@click.group()
@click.version_option(package_name="cargobay")
def main() -> None:
    """cargobay: a self-hosted, ECR-compatible container registry."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 5000).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where metadata, blobs and credentials live (default ./cargobay-data).",
)
@click.option(
    "--config", type=click.Path(path_type=Path), default=None, help="A TOML settings file."
)
@click.option("--database", default=None, help="Metadata database URL (default: SQLite).")
@click.option("--storage", default=None, help="Blob storage URL (default: the data dir).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: cores).")
@click.option("--tls-cert", type=click.Path(path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path), default=None)
@click.option("--log-level", default=None)
def serve(**options: object) -> None:
    """Run the registry."""
    from cargobay.server import serve as run

    run(_settings(**options))
