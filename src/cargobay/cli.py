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
@click.option(
    "--upgrade-db/--no-upgrade-db",
    "auto_upgrade",
    default=None,
    help="Upgrade an out-of-date database schema first (default: on SQLite only).",
)
def serve(**options: object) -> None:
    """Run the registry."""
    from cargobay.metadata.errors import SchemaOutOfDate
    from cargobay.server import serve as run

    try:
        run(_settings(**options))
    except SchemaOutOfDate as exc:
        _fail(exc)


# -- database ------------------------------------------------------------------------------------


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


@main.group()
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


# -- administration ----------------------------------------------------------------------------


def _run(coro_factory, settings: Settings):
    """Run one admin operation against the deployment's database."""
    import asyncio

    from cargobay.iam.credentials import CredentialStore
    from cargobay.iam.secrets import load_box
    from cargobay.iam.users import UserService
    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database, SchemaOutOfDate

    async def main():
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
        db = Database(settings.database_url)
        try:
            store = CredentialStore(db, load_box(settings.secret_key, settings.data_dir))
            return await coro_factory(UserService(db, store))
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except SchemaOutOfDate as exc:
        _fail(exc)


def _emit(value: object) -> None:
    import json

    click.echo(json.dumps(value, indent=4))


def _fail(exc: Exception) -> None:
    click.echo(f"cargobay: {exc}", err=True)
    sys.exit(1)


@main.group()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--database", default=None, help="Metadata database URL.")
@click.option("--config", type=click.Path(path_type=Path), default=None)
@click.option("--account-id", default=None, help="The account (default: the registry's).")
@click.pass_context
def admin(ctx: click.Context, **options: object) -> None:
    """Manage IAM users, access keys and policies."""
    ctx.obj = _settings(**options)


def _admin_command(fn):
    return admin.command(fn.__name__.replace("_", "-"))(click.pass_obj(fn))


@_admin_command
@click.argument("name")
@click.option("--admin", "is_admin", is_flag=True, help="Give the user every permission.")
def create_user(settings: Settings, name: str, is_admin: bool) -> None:
    """Create an IAM user (prints it as `aws iam create-user` does)."""
    from cargobay.iam.credentials import UserExists

    try:
        user = _run(
            lambda users: users.create(settings.account_id, name, is_admin=is_admin), settings
        )
    except UserExists as exc:
        _fail(exc)
    _emit({"User": user.shape()})


@_admin_command
@click.argument("name")
def create_access_key(settings: Settings, name: str) -> None:
    """Create an access key; the secret is shown only this once."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _emit(_run(lambda users: users.create_access_key(settings.account_id, name), settings))
    except UserNotFound as exc:
        _fail(exc)


@_admin_command
@click.argument("name")
@click.argument("policy_name")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def put_user_policy(settings: Settings, name: str, policy_name: str, policy_file: Path) -> None:
    """Attach an inline identity policy (IAM JSON) to a user."""
    from cargobay.iam.credentials import UserNotFound
    from cargobay.iam.policy import PolicyError

    document = policy_file.read_text()
    try:
        _run(
            lambda users: users.put_policy(settings.account_id, name, policy_name, document),
            settings,
        )
    except (UserNotFound, PolicyError) as exc:
        _fail(exc)


@_admin_command
def list_users(settings: Settings) -> None:
    """List the account's users."""
    users = _run(lambda users: users.list(settings.account_id), settings)
    _emit({"Users": [u.shape() for u in users]})


@_admin_command
@click.argument("name")
@click.argument("access_key_id")
def delete_access_key(settings: Settings, name: str, access_key_id: str) -> None:
    """Delete one of a user's access keys."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _run(
            lambda users: users.delete_access_key(settings.account_id, name, access_key_id),
            settings,
        )
    except UserNotFound as exc:
        _fail(exc)


@_admin_command
@click.argument("name")
def delete_user(settings: Settings, name: str) -> None:
    """Delete a user with its access keys and policies."""
    from cargobay.iam.credentials import UserNotFound

    try:
        _run(lambda users: users.delete(settings.account_id, name), settings)
    except UserNotFound as exc:
        _fail(exc)


# -- maintenance -------------------------------------------------------------------------------


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


@main.command()
@_storage_options
@click.option("--dry-run", is_flag=True, help="Report what would be freed; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gc(dry_run: bool, as_json: bool, **options: object) -> None:
    """Delete blobs no image references (after the grace period) and stale uploads."""
    import json

    from cargobay.jobs.leases import run_once
    from cargobay.schedule import gc_job

    settings = _settings(**options)

    async def work(services):
        job = gc_job(services, dry_run=dry_run)
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


@main.command()
@_storage_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--since", default=None, help="Count transfer from this UTC day (YYYY-MM-DD).")
def usage(as_json: bool, since: str | None, **options: object) -> None:
    """Stored bytes and bytes transferred out, per repository, account and principal."""
    import json

    from cargobay.registry import usage as metering

    settings = _settings(**options)
    data = _with_services(settings, lambda services: metering.report(services.db, since))
    prices = (settings.price_per_gb_month, settings.price_per_gb_transferred)
    archive_price = settings.price_per_gb_month_archive
    for entry in [*data["repositories"], *data["accounts"].values()]:
        entry["cost"] = metering.cost(
            entry["stored_bytes"],
            entry["transferred_bytes"],
            *prices,
            archived=entry["archived_bytes"],
            per_gb_month_archive=archive_price,
        )
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{'repository':<48} {'stored bytes':>14} {'bytes out':>14} {'USD/month':>10}")
    for entry in data["repositories"]:
        name = f"{entry['registry_id']}/{entry['repository']}"
        click.echo(
            f"{name:<48} {entry['stored_bytes']:>14} {entry['transferred_bytes']:>14} "
            f"{entry['cost']['storage_usd_per_month']:>10}"
        )
    for account, totals in data["accounts"].items():
        click.echo(
            f"account {account}: {totals['stored_bytes']} bytes stored, "
            f"{totals['archived_bytes']} bytes archived, {totals['transferred_bytes']} bytes "
            f"out, storage ${totals['cost']['storage_usd_per_month']}/month, archive "
            f"${totals['cost']['archive_usd_per_month']}/month, transfer "
            f"${totals['cost']['transfer_usd']}"
        )
    for entry in data["principals"]:
        click.echo(f"principal {entry['principal']}: {entry['transferred_bytes']} bytes out")


@_admin_command
@click.argument("value", type=click.Choice(["on", "off", "default"]))
def set_create_on_push(settings: Settings, value: str) -> None:
    """Whether pushes create missing repositories in this account (`default`: the
    deployment's create_on_push setting). ECR itself never does: `off` gives NAME_UNKNOWN."""
    from cargobay.iam.authz import Authorizer
    from cargobay.registry.repositories import RepositoryService

    choice = {"on": True, "off": False, "default": None}[value]

    async def work(users):
        repositories = RepositoryService(users.db, settings, Authorizer(users.db))
        await repositories.set_create_on_push(settings.account_id, choice)

    _run(work, settings)


# -- vulnerability database --------------------------------------------------------------------


@main.group()
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


# Commands of their own modules (kept there so this file stays a table of contents).
def _add_subcommands() -> None:
    from cargobay.audit.cli import audit
    from cargobay.events.cli import webhooks
    from cargobay.signing.cli import signing

    admin.add_command(webhooks)
    admin.add_command(signing)
    main.add_command(audit)


_add_subcommands()
