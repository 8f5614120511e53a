"""The periodic jobs every deployment runs and the handlers of the task queue's kinds, built
from one process's services. The job and task bodies live with their domains (`jobs.gc`,
`lifecycle.job`, `scans.job`); this module only wires them, so nothing there imports it back.
A feature with a task kind adds its handlers to `task_handlers`."""

from __future__ import annotations

from typing import Any

from cargobay.jobs import gc
from cargobay.jobs.leases import Job
from cargobay.jobs.queue import Handler, TaskRunner
from cargobay.kms.jobs import kms_jobs
from cargobay.lifecycle import job as lifecycle
from cargobay.registry.services import Services
from cargobay.scans.job import Scanner


def gc_job(services: Services, *, dry_run: bool = False, full: bool = False) -> Job:
    settings = services.settings

    async def run() -> dict[str, Any]:
        report = await gc.collect(
            services.db,
            services.store,
            grace=settings.gc_grace_seconds,
            upload_expiry=settings.upload_expiry_seconds,
            dry_run=dry_run,
            full=full,
        )
        return report.as_dict()

    return Job("gc", settings.gc_interval_seconds, run)


def lifecycle_job(services: Services) -> Job:
    async def run() -> dict[str, Any]:
        return await lifecycle.run(services)

    return Job(lifecycle.JOB_NAME, services.settings.lifecycle_interval_seconds, run)


def periodic_jobs(services: Services) -> list[Job]:
    from cargobay.audit.jobs import purge_job as audit_purge
    from cargobay.events.jobs import purge_job as events_purge

    return [
        gc_job(services),
        lifecycle_job(services),
        events_purge(services.settings, services.db),
        audit_purge(services.settings, services.db),
        *kms_jobs(lambda: services.kms, db=services.db),
    ]


def task_runner(services: Services) -> TaskRunner:
    """This process's drainer of the task queue: a handler per task kind (scans, replication
    and its backfills); pushes in this process wake it at once, others are seen within
    `tasks_tick_seconds`."""
    from cargobay.replication.backfill import TASK_KIND as BACKFILL
    from cargobay.replication.job import Replicator
    from cargobay.replication.remote import Endpoint
    from cargobay.replication.service import TASK_KIND as REPLICATE
    from cargobay.signing.job import ImageSigner

    settings = services.settings
    endpoints = {
        r.name: Endpoint(r.endpoint, r.access_key_id, r.secret_access_key) for r in settings.regions
    }
    replicator = Replicator(services, services.replication, endpoints)
    scanner = Scanner(services, services.scans, settings.scan_concurrency)
    handlers: dict[str, Handler] = {
        **scanner.handlers(),
        REPLICATE: replicator.handle,
        BACKFILL: replicator.prepare_backfill,
        **ImageSigner(services).handlers(),
    }
    runner = TaskRunner(
        services.db,
        handlers,
        tick=settings.tasks_tick_seconds,
        backoff=(settings.task_backoff_seconds, settings.task_max_backoff_seconds),
    )
    runner.on_stop.append(replicator.close)
    services.scans.wake = runner.wake
    services.replication.wake = runner.wake
    services.signing.wake = runner.wake
    return runner
