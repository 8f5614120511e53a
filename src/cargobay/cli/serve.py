"""`cargobay serve`: run the registry."""

from __future__ import annotations

from pathlib import Path

import click

from cargobay.cli.common import _settings


@click.command()
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
@click.option(
    "--upgrade-db/--no-upgrade-db",
    "auto_upgrade",
    default=None,
    help="Upgrade an out-of-date database schema first (default: on SQLite only).",
)
def serve(**options: object) -> None:
    """Run the registry."""
    from cargobay.server import exec_supervisor

    # Replaces this process (same pid): the supervisor and the workers it forks start from a
    # fresh interpreter, without the command line's modules (click and every command group).
    exec_supervisor(_settings(**options))
