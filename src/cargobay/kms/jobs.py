"""The KMS's periodic jobs, as `jobs.leases.Job`s so exactly one node runs each: destroying
keys whose deletion date has passed (crypto-shredding) and automatic rotation. The scheduler
wiring (jobs/schedule.py `periodic_jobs`) adds them once the KMS door lands."""

from __future__ import annotations

from typing import Any

from cargobay.jobs.leases import Job
from cargobay.kms.service import KmsService

# Deletion dates and rotation dates are days apart; checking hourly keeps either at most an
# hour late.
INTERVAL_SECONDS = 3600.0


def kms_jobs(kms: KmsService, *, interval: float = INTERVAL_SECONDS) -> list[Job]:
    async def destroy() -> dict[str, Any]:
        return {"destroyed": await kms.destroy_due_keys()}

    async def rotate() -> dict[str, Any]:
        return {"rotated": await kms.rotate_due_keys()}

    return [Job("kms-key-deletion", interval, destroy), Job("kms-key-rotation", interval, rotate)]
