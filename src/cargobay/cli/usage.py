"""`cargobay usage`: stored and transferred bytes, and what they cost."""

from __future__ import annotations

import click

from cargobay.cli.common import _settings, _storage_options, _with_services


@click.command()
@_storage_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--since", default=None, help="Count transfer from this UTC day (YYYY-MM-DD).")
@click.option(
    "--region", default=None, help="Only this region's repositories (default: every region)."
)
def usage(as_json: bool, since: str | None, region: str | None, **options: object) -> None:
    """Stored bytes and bytes transferred out, per repository, account and principal."""
    import json

    from cargobay.registry import usage as metering

    settings = _settings(**options)
    if region is not None and region not in settings.served_regions:
        served = ", ".join(settings.served_regions)
        raise click.BadParameter(
            f"{region} is not served here (served: {served})", param_hint="--region"
        )
    data = _with_services(
        settings,
        lambda services: metering.report(
            services.db, since, default_region=settings.region, region=region
        ),
    )
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
    click.echo(
        f"{'repository':<48} {'region':<15} {'stored bytes':>14} {'bytes out':>14} "
        f"{'USD/month':>10}"
    )
    for entry in data["repositories"]:
        name = f"{entry['registry_id']}/{entry['repository']}"
        click.echo(
            f"{name:<48} {entry['region']:<15} {entry['stored_bytes']:>14} "
            f"{entry['transferred_bytes']:>14} {entry['cost']['storage_usd_per_month']:>10}"
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
