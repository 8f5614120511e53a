"""KmsService: the KMS API's business rules, one method per operation.

Methods take the caller's account (a KeyId that is a bare id or alias resolves there; an ARN
may name another account, which the door's authorization then decides on with the key's
policy) and return botocore-shaped response members; binary members are `bytes` for the door
to base64-encode. Errors are the exceptions of `kms.errors`.

Key administration lives here; Encrypt, Decrypt, data keys and signatures in `operations`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update

from cargobay.iam.policy import AuthRequest, PolicyError, parse_policy, statement_effect
from cargobay.kms import store
from cargobay.kms.core import DAY
from cargobay.kms.errors import (
    KMSInvalidStateException,
    MalformedPolicyDocumentException,
    NotFoundException,
    ValidationException,
)
from cargobay.kms.grants import GrantOperations
from cargobay.kms.model import (
    CUSTOMER,
    DISABLED,
    ENABLED,
    KEY_SPECS,
    PENDING_DELETION,
    SYMMETRIC,
    default_key_policy,
    key_metadata,
)
from cargobay.kms.operations import CryptoOperations
from cargobay.kms.rotation import RotationOperations
from cargobay.kms.tagging import AliasAndTagOperations
from cargobay.metadata import schema

K, M, A = schema.kms_keys, schema.kms_key_materials, schema.kms_aliases


class KmsService(CryptoOperations, RotationOperations, AliasAndTagOperations, GrantOperations):
    """The KMS API's operations (see the module docstring)."""

    async def create_key(
        self,
        account_id: str,
        *,
        description: str = "",
        key_usage: str | None = None,
        key_spec: str | None = None,
        customer_master_key_spec: str | None = None,
        policy: str | None = None,
        tags: list[dict[str, str]] | None = None,
        origin: str = "AWS_KMS",
        multi_region: bool = False,
        bypass_policy_lockout_safety_check: bool = False,
        caller_arn: str | None = None,
    ) -> dict[str, Any]:
        if key_spec and customer_master_key_spec:
            raise ValidationException(
                "You cannot specify both KeySpec and CustomerMasterKeySpec in the same request"
            )
        spec = key_spec or customer_master_key_spec or SYMMETRIC
        if spec not in KEY_SPECS:
            raise ValidationException(f"KeySpec {spec} is not supported by this KMS")
        usage = key_usage or KEY_SPECS[spec]["usages"][0]
        if usage not in KEY_SPECS[spec]["usages"]:
            raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
        if origin != "AWS_KMS":
            raise ValidationException(f"Origin {origin} is not supported by this KMS")
        if multi_region:
            raise ValidationException("Multi-Region keys are not supported by this KMS")
        if len(description) > 8192:
            raise ValidationException("Description must be at most 8192 characters")
        policy_text = policy or default_key_policy(account_id)
        if policy is not None:
            self.check_policy(policy, account_id, caller_arn, bypass_policy_lockout_safety_check)
        tag_map = self.check_tags(tags or [], {})
        key_id = str(uuid.uuid4())
        async with self.db.write() as conn:
            await self._insert_key(
                conn,
                key_id,
                account_id,
                description=description,
                key_spec=spec,
                key_usage=usage,
                manager=CUSTOMER,
                policy=policy_text,
                tags=tag_map,
                now=self.clock(),
            )
        return {"KeyMetadata": await self.describe(account_id, key_id)}

    async def describe(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id)
        async with self.db.read_now() as conn:
            current = await store.current_material_id(conn, key)
        return key_metadata(key, current)

    async def describe_key(self, account_id: str, key_id: str) -> dict[str, Any]:
        return {"KeyMetadata": await self.describe(account_id, key_id)}

    async def list_keys(
        self, account_id: str, *, limit: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        limit = _limit(limit)
        query = (
            select(K.c.id)
            .where(K.c.account_id == account_id, K.c.region == self.region)
            .order_by(K.c.id)
            .limit(limit + 1)
        )
        if marker:
            query = query.where(K.c.id > marker)
        async with self.db.read() as conn:
            ids = [row.id for row in await conn.execute(query)]
        page = ids[:limit]
        result: dict[str, Any] = {
            "Keys": [
                {"KeyId": i, "KeyArn": f"arn:aws:kms:{self.region}:{account_id}:key/{i}"}
                for i in page
            ],
            "Truncated": len(ids) > limit,
        }
        if len(ids) > limit:
            result["NextMarker"] = page[-1]
        return result

    async def enable_key(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "EnableKey")
        self.require_not_pending(key)
        await self._set(key, state=ENABLED)
        return {}

    async def disable_key(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "DisableKey")
        self.require_not_pending(key)
        await self._set(key, state=DISABLED)
        return {}

    # ---------------------------------------------------------------- deletion

    async def schedule_key_deletion(
        self, account_id: str, key_id: str, *, pending_window_days: int | None = None
    ) -> dict[str, Any]:
        days = 30 if pending_window_days is None else pending_window_days
        if not 7 <= days <= 30:
            raise ValidationException(
                "PendingWindowInDays value must be at least 7 days and at most 30 days"
            )
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "ScheduleKeyDeletion")
        self.require_not_pending(key)
        deletion = self.clock() + days * DAY
        await self._set(
            key, state=PENDING_DELETION, deletion_date=deletion, pending_window_days=days
        )
        return {
            "KeyId": key.arn,
            "DeletionDate": deletion,
            "KeyState": PENDING_DELETION,
            "PendingWindowInDays": days,
        }

    async def cancel_key_deletion(self, account_id: str, key_id: str) -> dict[str, Any]:
        """The key returns Disabled, as in AWS: re-enabling it is a separate decision."""
        key = await self.key(account_id, key_id, allow_alias=False)
        if key.state != PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        await self._set(key, state=DISABLED, deletion_date=None, pending_window_days=None)
        return {"KeyId": key.arn}

    async def destroy_due_keys(self, now: float | None = None) -> list[str]:
        """The periodic job: keys whose deletion date has passed lose their material, aliases
        and record (crypto-shredding: whatever was encrypted under them is unreadable from
        then on). Returns the ARNs destroyed."""
        now = self.clock() if now is None else now
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(K.c.id, K.c.account_id, K.c.region).where(
                        K.c.state == PENDING_DELETION, K.c.deletion_date <= now
                    )
                )
            ).all()
            ids = [row.id for row in rows]
            if ids:
                # Overwrite before deleting, so the sealed bytes do not linger in free pages.
                await conn.execute(update(M).where(M.c.key_id.in_(ids)).values(sealed=""))
                await conn.execute(delete(M).where(M.c.key_id.in_(ids)))
                await conn.execute(delete(A).where(A.c.key_id.in_(ids)))
                grants = schema.kms_grants
                await conn.execute(delete(grants).where(grants.c.key_id.in_(ids)))
                await conn.execute(delete(K).where(K.c.id.in_(ids)))
        for key_id in ids:
            self.materials.forget(key_id)
        return [f"arn:aws:kms:{r.region}:{r.account_id}:key/{r.id}" for r in rows]

    # ---------------------------------------------------------------- policies

    def check_policy(
        self, text: str, account_id: str, caller_arn: str | None, bypass_lockout_check: bool
    ) -> None:
        """A key policy must parse as a resource policy and (unless the caller bypasses the
        lockout safety check) still let the caller change it later."""
        try:
            policy = parse_policy(text, resource_policy=True)
        except PolicyError as exc:
            raise MalformedPolicyDocumentException(str(exc)) from None
        if caller_arn is None or bypass_lockout_check:
            return
        request = AuthRequest(
            principal_arn=caller_arn,
            principal_account=account_id,
            action="kms:PutKeyPolicy",
            resource_arn="*",
            resource_account=account_id,
        )
        if statement_effect(policy, request, as_resource_policy=True) != "Allow":
            raise MalformedPolicyDocumentException(
                "The new key policy will not allow you to update the key policy in the future."
            )

    async def get_key_policy(
        self, account_id: str, key_id: str, *, policy_name: str | None = None
    ) -> dict[str, Any]:
        _check_policy_name(policy_name)
        key = await self.key(account_id, key_id, allow_alias=False)
        return {"Policy": key.policy_text, "PolicyName": "default"}

    async def put_key_policy(
        self,
        account_id: str,
        key_id: str,
        policy: str,
        *,
        policy_name: str | None = None,
        bypass_policy_lockout_safety_check: bool = False,
        caller_arn: str | None = None,
    ) -> dict[str, Any]:
        _check_policy_name(policy_name)
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "PutKeyPolicy")
        self.require_not_pending(key)
        self.check_policy(policy, key.account_id, caller_arn, bypass_policy_lockout_safety_check)
        await self._set(key, policy_text=policy)
        return {}


def _check_policy_name(name: str | None) -> None:
    if name not in (None, "default"):
        raise NotFoundException(f"Policy {name} does not exist: the only key policy is default")


def _limit(limit: int | None) -> int:
    if limit is None:
        return 100
    if not 1 <= limit <= 1000:
        raise ValidationException("Limit must be between 1 and 1000")
    return limit
