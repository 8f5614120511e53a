"""The shared core of KmsService: resolving a KeyId to a key, the state rules every
operation applies, and creating keys and material versions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import delete, update

from cargobay import regions
from cargobay.iam.secrets import SecretBox
from cargobay.kms import material, store
from cargobay.kms.errors import (
    AccessDeniedException,
    DisabledException,
    KMSInvalidStateException,
    NotFoundException,
)
from cargobay.kms.model import (
    AWS,
    CUSTOMER,
    DISABLED,
    ENABLED,
    ENCRYPT_DECRYPT,
    PENDING_DELETION,
    SYMMETRIC,
    KeyRecord,
    KeyRef,
    managed_key_policy,
    parse_key_ref,
)
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore

K, M, A = schema.kms_keys, schema.kms_key_materials, schema.kms_aliases
DAY = 86400.0
# AWS managed keys this deployment creates on first use (alias/aws/<service>).
MANAGED_SERVICES = frozenset({"ecr"})
# AWS's default quota of grants per KMS key (the `kms_grants_per_key` setting).
GRANTS_PER_KEY = 50_000


class KmsCore:
    """What every group of operations shares: the key a KeyId names and the state rules."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        region: str,
        *,
        clock: Callable[[], float] = time.time,
        grants_per_key: int = GRANTS_PER_KEY,
    ) -> None:
        self.db = db
        self.box = box
        self.default_region = region
        self.clock = clock
        self.grants_per_key = grants_per_key
        self.materials = store.MaterialCache()

    @property
    def region(self) -> str:
        """The region of the request being served (`regions_served`): keys are regional."""
        return regions.current(self.default_region)

    # ---------------------------------------------------------------- resolution and states

    def ref(self, account_id: str, key_id: str, *, allow_alias: bool) -> KeyRef:
        return parse_key_ref(key_id, account_id, self.region, allow_alias=allow_alias)

    async def key(self, account_id: str, key_id: str, *, allow_alias: bool = True) -> KeyRecord:
        """The key a KeyId names (creating `alias/aws/<service>` keys on first use). Doors
        call this before authorizing, for the key's ARN and policy (see kms.authz)."""
        ref = self.ref(account_id, key_id, allow_alias=allow_alias)
        try:
            async with self.db.read_now() as conn:
                return await store.find_key(conn, ref)
        except NotFoundException:
            service = _managed_service(ref)
            if service is None or ref.account_id != account_id:
                raise
        return await self.aws_managed_key(account_id, service)

    async def aws_managed_key(self, account_id: str, service: str) -> KeyRecord:
        """The AWS managed key of a service (`alias/aws/ecr`), created on first use; two
        processes racing to create it agree on the one whose alias committed first."""
        alias = f"alias/aws/{service}"
        ref = KeyRef(account_id, self.region, alias=alias)
        try:
            async with self.db.read_now() as conn:
                return await store.find_key(conn, ref)
        except NotFoundException:
            pass
        now = self.clock()
        key_id = str(uuid.uuid4())
        async with self.db.write() as conn:
            await self._insert_key(
                conn,
                key_id,
                account_id,
                description=f"Default key that protects my {service.upper()} data when no "
                "other key is defined",
                key_spec=SYMMETRIC,
                key_usage=ENCRYPT_DECRYPT,
                manager=AWS,
                policy=managed_key_policy(account_id, self.region, service),
                tags={},
                now=now,
                rotation_days=365,
            )
            claimed = await insert_ignore(
                conn,
                A,
                account_id=account_id,
                region=self.region,
                name=alias,
                key_id=key_id,
                created_at=now,
                updated_at=now,
            )
            if claimed.rowcount == 0:  # another process created it first: keep theirs
                await conn.execute(delete(M).where(M.c.key_id == key_id))
                await conn.execute(delete(K).where(K.c.id == key_id))
        async with self.db.read_now() as conn:
            return await store.find_key(conn, ref)

    @staticmethod
    def require_usable(key: KeyRecord) -> None:
        """Cryptographic use needs an Enabled key."""
        if key.state == DISABLED:
            raise DisabledException(f"{key.arn} is disabled.")
        if key.state != ENABLED:
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")

    @staticmethod
    def require_not_pending(key: KeyRecord) -> None:
        if key.state == PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")

    @staticmethod
    def require_customer_managed(key: KeyRecord, operation: str) -> None:
        if key.key_manager != CUSTOMER:
            raise AccessDeniedException(
                f"{operation} is not allowed on {key.arn}: it is an AWS managed key"
            )

    async def _set(self, key: KeyRecord, **values: Any) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(K).where(K.c.id == key.id).values(**values))

    async def _insert_key(
        self,
        conn: Any,
        key_id: str,
        account_id: str,
        *,
        description: str,
        key_spec: str,
        key_usage: str,
        manager: str,
        policy: str,
        tags: Mapping[str, str],
        now: float,
        rotation_days: int | None = None,
    ) -> None:
        await conn.execute(
            K.insert().values(
                id=key_id,
                account_id=account_id,
                region=self.region,
                description=description,
                key_usage=key_usage,
                key_spec=key_spec,
                key_manager=manager,
                state=ENABLED,
                created_at=now,
                rotation_enabled=rotation_days is not None,
                rotation_period_days=rotation_days,
                next_rotation_at=None if rotation_days is None else now + rotation_days * DAY,
                on_demand_rotations=0,
                policy_text=policy,
                tags=json.dumps(dict(tags)),
                current_version=1,
            )
        )
        await self.insert_material(conn, key_id, key_spec, 1, None, now)

    async def insert_material(
        self, conn: Any, key_id: str, key_spec: str, version: int, rotation: str | None, now: float
    ) -> None:
        public = None
        if key_spec == SYMMETRIC:
            raw = material.new_symmetric()
        else:
            raw, public = material.new_ec(key_spec)
        await conn.execute(
            M.insert().values(
                key_id=key_id,
                version=version,
                material_id=material.new_material_id(),
                sealed=material.seal(self.box, raw),
                public_key=public,
                rotation_type=rotation,
                created_at=now,
            )
        )


def _managed_service(ref: KeyRef) -> str | None:
    if ref.alias and ref.alias.startswith("alias/aws/"):
        service = ref.alias.removeprefix("alias/aws/")
        if service in MANAGED_SERVICES:
            return service
    return None
