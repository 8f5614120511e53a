"""The KMS's periodic jobs, as `jobs.leases.Job`s so exactly one node runs each: destroying
keys whose deletion date has passed (crypto-shredding) and automatic rotation.
`schedule.periodic_jobs` runs them beside GC and lifecycle.

`kms` may be a function returning the service, and `db` the metadata database: the scheduler
passes both, so a process builds the KMS (and loads `cryptography`) only when the deployment
has keys at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cargobay.jobs.leases import Job
from cargobay.metadata import schema

if TYPE_CHECKING:
    from cargobay.kms.service import KmsService
    from cargobay.metadata.db import Database

# Deletion dates and rotation dates are days apart; checking hourly keeps either at most an
# hour late.
INTERVAL_SECONDS = 3600.0


def kms_jobs(
    kms: KmsService | Callable[[], KmsService],
    *,
    db: Database | None = None,
    interval: float = INTERVAL_SECONDS,
) -> list[Job]:
    async def service() -> KmsService | None:
        if db is not None:
            async with db.read() as conn:
                if (await conn.execute(select(schema.kms_keys.c.id).limit(1))).first() is None:
                    return None
        return kms() if callable(kms) else kms

    async def destroy() -> dict[str, Any]:
        found = await service()
        return {"destroyed": [] if found is None else await found.destroy_due_keys()}

    async def rotate() -> dict[str, Any]:
        found = await service()
        return {"rotated": [] if found is None else await found.rotate_due_keys()}

    return [Job("kms-key-deletion", interval, destroy), Job("kms-key-rotation", interval, rotate)]
