"""`cargobay admin signing ...`: what a verifier needs from a signing profile.

`export-root PROFILE` prints the profile's root certificate (PEM), the one certificate to put
in a Notation trust store (`notation cert add --type ca --store <name> root.pem`) for the
signatures cargobay attaches with that profile; `--chain` prints leaf and root."""

from __future__ import annotations

import sys

import click

from cargobay.config import Settings


def _fail(message: str) -> None:
    click.echo(f"cargobay: {message}", err=True)
    sys.exit(1)


def _read(settings: Settings, profile: str, chain: bool) -> str:
    import asyncio

    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database, SchemaOutOfDate
    from cargobay.signing.errors import SignerError
    from cargobay.signing.profiles import SigningProfiles

    async def main() -> str:
        await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
        db = Database(settings.database_url)
        try:
            profiles = SigningProfiles(db, settings.region)
            if chain:
                found = await profiles.find(settings.account_id, profile)
                if found is None:
                    raise SignerError(f"Signing profile {profile} does not exist.")
                return found.certificate_chain
            return await profiles.root_certificate(settings.account_id, profile)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except (SchemaOutOfDate, SignerError) as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable: _fail exits


@click.group("signing")
def signing() -> None:
    """Signing profiles' certificates (for verifiers' trust stores)."""


@signing.command("export-root")
@click.argument("profile")
@click.option("--chain", is_flag=True, help="Print the whole chain (leaf first), not the root.")
@click.pass_obj
def export_root(settings: Settings, profile: str, chain: bool) -> None:
    """Print PROFILE's root certificate (PEM) for a Notation trust store."""
    click.echo(_read(settings, profile, chain), nl=False)
