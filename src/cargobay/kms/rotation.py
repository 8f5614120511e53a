"""Key rotation: automatic (a period, run by the `rotate_due_keys` job) and on demand.

Rotating adds a material version and makes it current; earlier versions stay, so every
ciphertext (which names its version) still decrypts. Only symmetric customer managed keys
rotate on request; AWS managed keys rotate yearly on their own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from cargobay.kms.core import DAY, KmsCore
from cargobay.kms.errors import (
    LimitExceededException,
    UnsupportedOperationException,
    ValidationException,
)
from cargobay.kms.model import ENABLED, SYMMETRIC, KeyRecord
from cargobay.metadata import schema

K = schema.kms_keys
ON_DEMAND_LIMIT = 10


class RotationOperations(KmsCore):
    def _rotatable(self, key: KeyRecord, operation: str) -> None:
        if key.key_spec != SYMMETRIC:
            raise UnsupportedOperationException(
                f"{key.arn} key spec {key.key_spec} does not support {operation}"
            )
        self.require_customer_managed(key, operation)
        self.require_usable(key)

    async def enable_key_rotation(
        self, account_id: str, key_id: str, *, rotation_period_days: int | None = None
    ) -> dict[str, Any]:
        days = 365 if rotation_period_days is None else rotation_period_days
        if not 90 <= days <= 2560:
            raise ValidationException("RotationPeriodInDays must be between 90 and 2560")
        key = await self.key(account_id, key_id, allow_alias=False)
        self._rotatable(key, "EnableKeyRotation")
        await self._set(
            key,
            rotation_enabled=True,
            rotation_period_days=days,
            next_rotation_at=self.clock() + days * DAY,
        )
        return {}

    async def disable_key_rotation(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self._rotatable(key, "DisableKeyRotation")
        await self._set(key, rotation_enabled=False, next_rotation_at=None)
        return {}

    async def get_key_rotation_status(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        result: dict[str, Any] = {"KeyRotationEnabled": key.rotation_enabled, "KeyId": key.id}
        if key.rotation_enabled:
            result["RotationPeriodInDays"] = key.rotation_period_days
            result["NextRotationDate"] = key.next_rotation_at
        if key.on_demand_rotation_at is not None:
            result["OnDemandRotationStartDate"] = key.on_demand_rotation_at
        return result

    async def rotate_key_on_demand(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self._rotatable(key, "RotateKeyOnDemand")
        if key.on_demand_rotations >= ON_DEMAND_LIMIT:
            raise LimitExceededException(
                f"{key.arn} has reached the limit of {ON_DEMAND_LIMIT} on-demand rotations"
            )
        now = self.clock()
        await self._rotate(
            key.id,
            "ON_DEMAND",
            now,
            on_demand_rotations=K.c.on_demand_rotations + 1,
            on_demand_rotation_at=now,
        )
        return {"KeyId": key.id}

    async def _rotate(self, key_id: str, rotation: str, now: float, **values: Any) -> None:
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(K.c.current_version, K.c.key_spec)
                    .where(K.c.id == key_id)
                    .with_for_update()
                )
            ).one()
            version = row.current_version + 1
            await self.insert_material(conn, key_id, row.key_spec, version, rotation, now)
            await conn.execute(
                update(K).where(K.c.id == key_id).values(current_version=version, **values)
            )

    async def rotate_due_keys(self, now: float | None = None) -> list[str]:
        """The periodic job: keys with automatic rotation whose date has come get a new
        material version and their next date. Returns the key ids rotated."""
        now = self.clock() if now is None else now
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(K.c.id, K.c.rotation_period_days).where(
                        K.c.rotation_enabled.is_(True),
                        K.c.state == ENABLED,
                        K.c.next_rotation_at <= now,
                    )
                )
            ).all()
        for row in rows:
            period = (row.rotation_period_days or 365) * DAY
            await self._rotate(row.id, "AUTOMATIC", now, next_rotation_at=now + period)
        return [row.id for row in rows]
