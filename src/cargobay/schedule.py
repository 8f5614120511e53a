"""The periodic jobs every deployment runs, built from one process's services. The job
bodies live with their domains (`jobs.gc`, `lifecycle.job`, `kms.jobs`); this module only
schedules them, so nothing there imports it back."""

from __future__ import annotations

from typing import Any

from cargobay.jobs import gc
from cargobay.jobs.leases import Job
from cargobay.kms.jobs import kms_jobs
from cargobay.lifecycle import job as lifecycle
from cargobay.registry.services import Services


def gc_job(services: Services, *, dry_run: bool = False) -> Job:
    settings = services.settings

    async def run() -> dict[str, Any]:
        report = await gc.collect(
            services.db,
            services.store,
            grace=settings.gc_grace_seconds,
            upload_expiry=settings.upload_expiry_seconds,
            dry_run=dry_run,
        )
        return report.as_dict()

    return Job("gc", settings.gc_interval_seconds, run)


def lifecycle_job(services: Services) -> Job:
    async def run() -> dict[str, Any]:
        return await lifecycle.run(services)

    return Job(lifecycle.JOB_NAME, services.settings.lifecycle_interval_seconds, run)


def periodic_jobs(services: Services) -> list[Job]:
    return [
        gc_job(services),
        lifecycle_job(services),
        *kms_jobs(lambda: services.kms, db=services.db),
    ]
