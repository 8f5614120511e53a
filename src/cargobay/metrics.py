"""Prometheus metrics at /metrics, derived from the shared database so every worker and node
reports the same figures (no per-process counters to add up)."""

from __future__ import annotations

from aiohttp import web

from cargobay.events import metrics as event_metrics
from cargobay.registry import usage


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _repository_labels(entry: dict) -> str:
    """A repository's labels: its region too, so the same name in two regions
    (`regions_served`) is two series rather than one repeated."""
    return (
        f'registry_id="{entry["registry_id"]}",region="{entry["region"]}",'
        f'repository="{_label(entry["repository"])}"'
    )


async def render(services, registry_id: str | None = None) -> str:
    """The metrics of one account's registry (None: every account)."""
    data = await usage.report(
        services.db, registry_id=registry_id, default_region=services.settings.region
    )
    lines = [
        "# HELP cargobay_repository_stored_bytes Compressed bytes of layers and configs images "
        "in the repository reference.",
        "# TYPE cargobay_repository_stored_bytes gauge",
    ]
    for entry in data["repositories"]:
        labels = _repository_labels(entry)
        lines.append(f"cargobay_repository_stored_bytes{{{labels}}} {entry['stored_bytes']}")
    lines += [
        "# HELP cargobay_repository_transferred_bytes_total Bytes served by blob and manifest "
        "GETs.",
        "# TYPE cargobay_repository_transferred_bytes_total counter",
    ]
    for entry in data["repositories"]:
        labels = _repository_labels(entry)
        lines.append(
            f"cargobay_repository_transferred_bytes_total{{{labels}}} {entry['transferred_bytes']}"
        )
    lines += [
        "# HELP cargobay_principal_transferred_bytes_total Bytes served per principal.",
        "# TYPE cargobay_principal_transferred_bytes_total counter",
    ]
    for entry in data["principals"]:
        lines.append(
            f'cargobay_principal_transferred_bytes_total{{principal="{_label(entry["principal"])}"}}'
            f" {entry['transferred_bytes']}"
        )
    lines += [
        "# HELP cargobay_account_stored_bytes Stored bytes per account.",
        "# TYPE cargobay_account_stored_bytes gauge",
    ]
    for account, totals in data["accounts"].items():
        lines.append(
            f'cargobay_account_stored_bytes{{registry_id="{account}"}} {totals["stored_bytes"]}'
        )
    lines += await _scan_lines(services, registry_id)
    lines += await _replication_lines(services, registry_id)
    lines += await event_metrics.lines(services.db, registry_id)
    return "\n".join(lines) + "\n"


async def _scan_lines(services, registry_id: str | None) -> list[str]:
    """Image scans: completed in total, and images by the status of their latest scan (the
    whole deployment's: scans run on a shared queue)."""
    if registry_id is not None:
        return []
    total, by_status = await services.scans.counts()
    lines = [
        "# HELP cargobay_image_scans_completed_total Image scans that ran to an outcome.",
        "# TYPE cargobay_image_scans_completed_total counter",
        f"cargobay_image_scans_completed_total {total}",
        "# HELP cargobay_image_scans Images by the status of their latest scan.",
        "# TYPE cargobay_image_scans gauge",
    ]
    for status, count in sorted(by_status.items()):
        lines.append(f'cargobay_image_scans{{status="{_label(status)}"}} {count}')
    return lines


async def _replication_lines(services, registry_id: str | None) -> list[str]:
    """Replicated images by status at their destinations (the whole deployment's)."""
    if registry_id is not None:
        return []
    counts = await services.replication.counts()
    lines = [
        "# HELP cargobay_replication_images Image copies by replication status.",
        "# TYPE cargobay_replication_images gauge",
    ]
    for status, count in sorted(counts.items()):
        lines.append(f'cargobay_replication_images{{status="{_label(status)}"}} {count}')
    return lines


async def handler(request: web.Request, services, registry_id: str | None = None) -> web.Response:
    return web.Response(
        text=await render(services, registry_id),
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
