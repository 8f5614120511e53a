"""How a serving process runs the events machinery: the delivery loop (every worker with jobs
enabled; the database hands each delivery to one of them), the periodic purge (once across the
deployment, through job leases), and the start-up sync of the config file's webhooks."""

from __future__ import annotations

from typing import Any

from cargobay.config import Settings
from cargobay.events import outbox
from cargobay.events.delivery import Deliverer
from cargobay.events.webhooks import sync_config
from cargobay.iam.secrets import load_box
from cargobay.jobs.leases import Job
from cargobay.metadata.db import Database

DAY = 86400.0


def deliverer(settings: Settings, db: Database) -> Deliverer:
    return Deliverer(
        db,
        load_box(settings.secret_key, settings.data_dir),
        retry_seconds=settings.webhook_retry_seconds,
        backoff_seconds=settings.webhook_backoff_seconds,
        poll_seconds=settings.webhook_poll_seconds,
    )


def purge_job(settings: Settings, db: Database) -> Job:
    async def run() -> dict[str, Any]:
        return await outbox.purge(db, retention_seconds=settings.event_retention_days * DAY)

    return Job("events-purge", 3600.0, run)


async def sync_webhooks(settings: Settings, db: Database) -> int:
    """At start-up (once, before the workers): the `[[webhooks]]` tables into the database."""
    box = load_box(settings.secret_key, settings.data_dir)
    return await sync_config(db, box, settings.webhooks)
