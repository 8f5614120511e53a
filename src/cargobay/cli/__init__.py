"""The `cargobay` command line: the top-level group and its commands, one module per group."""

from __future__ import annotations

import click

from cargobay.cli import admin, db, gc, serve, usage, vulndb


@click.group()
@click.version_option(package_name="cargobay")
def main() -> None:
    """cargobay: a self-hosted, ECR-compatible container registry."""


# Commands of their own modules (kept there so this file stays a table of contents).
def _add_subcommands() -> None:
    from cargobay.audit.cli import audit
    from cargobay.events.cli import webhooks
    from cargobay.signing.cli import signing

    for command in (serve.serve, db.db, admin.admin, gc.gc, usage.usage, vulndb.vulndb):
        main.add_command(command)
    admin.admin.add_command(webhooks)
    admin.admin.add_command(signing)
    main.add_command(audit)


_add_subcommands()
