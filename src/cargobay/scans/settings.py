"""Registry scanning configuration and ECR account settings, stored per registry and region
(the request's: `cargobay.regions`), as in ECR."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from cargobay import regions
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert
from cargobay.registry.hooks import PUSHED_REGION, PUSHED_REGISTRY
from cargobay.scans import config as cfg


async def read_configuration(
    conn: Any, registry_id: str, region: str | None = None
) -> cfg.ScanningConfiguration:
    """A registry's scanning configuration in a region (its key; default the request's), in
    the caller's transaction."""
    c = schema.registry_scanning_configurations
    region = regions.current_key() if region is None else region
    query = select(c.c.scan_type, c.c.rules).where(
        c.c.registry_id == registry_id, c.c.region == region
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return cfg.ScanningConfiguration()
    return cfg.load(row.scan_type, json.loads(row.rules))


def push_reads() -> dict[str, Any]:
    """The scanning configuration as the push hook reads it (`registry.hooks`): the pushed
    registry's scan type and rules in its region, both None when it has none."""
    c = schema.registry_scanning_configurations
    mine = (c.c.registry_id == PUSHED_REGISTRY, c.c.region == PUSHED_REGION)
    return {
        "scan_type": select(c.c.scan_type).where(*mine).scalar_subquery(),
        "scan_rules": select(c.c.rules).where(*mine).scalar_subquery(),
    }


async def push_configuration(
    conn: Any, registry_id: str, settings: Mapping[str, Any], region: str | None = None
) -> cfg.ScanningConfiguration:
    """The configuration `push_reads` read for this push, or read now if it was not."""
    if "scan_rules" not in settings:
        return await read_configuration(conn, registry_id, region)
    if settings["scan_rules"] is None:
        return cfg.ScanningConfiguration()
    return cfg.load(settings["scan_type"], json.loads(settings["scan_rules"]))


class ScanSettings:
    """PutRegistryScanningConfiguration and the account settings, per registry and region."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def configuration(self, registry_id: str) -> cfg.ScanningConfiguration:
        async with self.db.read_now() as conn:
            return await read_configuration(conn, registry_id)

    async def put_configuration(
        self, registry_id: str, configuration: cfg.ScanningConfiguration
    ) -> None:
        async with self.db.write() as conn:
            await upsert(
                conn,
                schema.registry_scanning_configurations,
                ["registry_id", "region"],
                registry_id=registry_id,
                region=regions.current_key(),
                scan_type=configuration.scan_type,
                rules=json.dumps(configuration.shape()["rules"]),
                updated_at=time.time(),
            )

    async def account_setting(self, registry_id: str, name: str) -> str:
        cfg.check_setting(name)
        a = schema.registry_account_settings
        async with self.db.read_now() as conn:
            value = (
                await conn.execute(
                    select(a.c.value).where(
                        a.c.registry_id == registry_id,
                        a.c.region == regions.current_key(),
                        a.c.name == name,
                    )
                )
            ).scalar_one_or_none()
        return value if value is not None else cfg.ACCOUNT_SETTINGS[name][1]

    async def put_account_setting(self, registry_id: str, name: str, value: str) -> None:
        cfg.check_setting(name, value, putting=True)
        async with self.db.write() as conn:
            await upsert(
                conn,
                schema.registry_account_settings,
                ["registry_id", "region", "name"],
                registry_id=registry_id,
                region=regions.current_key(),
                name=name,
                value=value,
                updated_at=time.time(),
            )
