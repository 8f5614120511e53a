"""Secrets Manager's operations as business rules: each method takes the caller's account and
the request's parameters (botocore's member names, snake_cased) and returns the result dict
shaped as botocore's `secretsmanager` output, or raises a `cargobay.secrets.errors` error.
Timestamps are epoch seconds (what the JSON protocol carries); SecretBinary is bytes.

Values are sealed at rest with the deployment key (`iam.secrets.SecretBox`), as access-key
secrets are; only GetSecretValue (and the pull-through credential helper) opens them.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete

from cargobay import regions
from cargobay.iam.secrets import SecretBox
from cargobay.metadata.db import Database
from cargobay.metadata.schema import secret_tags, secrets_table
from cargobay.metadata.sql import upsert
from cargobay.secrets import rules, store
from cargobay.secrets.access import PolicyOperations, owner
from cargobay.secrets.errors import (
    DecryptionFailure,
    InvalidParameterException,
    InvalidRequestException,
    LimitExceededException,
    ResourceExistsException,
    ResourceNotFoundException,
)
from cargobay.secrets.listing import describe, list_page

DAY = 86400.0


class SecretsService(PolicyOperations):
    def __init__(
        self, db: Database, box: SecretBox, *, region: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.box = box
        self.default_region = region
        self.clock = clock

    @property
    def region(self) -> str:
        """The region of the request being served (`regions_served`): secrets are regional."""
        return regions.current(self.default_region)

    def _names(self, row: Any) -> dict[str, Any]:
        return {"ARN": row.arn, "Name": row.name}

    async def _find(self, conn: Any, account_id: str, secret_id: Any) -> Any:
        ref = rules.parse_secret_id(secret_id)
        return await store.find(conn, account_id, self.region, ref, self.clock())

    # -- create and change -----------------------------------------------------------------------

    async def create_secret(
        self,
        account_id: str,
        *,
        name: Any,
        secret_string: Any = None,
        secret_binary: Any = None,
        description: Any = None,
        kms_key_id: Any = None,
        tags: Any = None,
        client_request_token: Any = None,
    ) -> dict[str, Any]:
        rules.check_name(name)
        kind, plain = rules.check_value(secret_string, secret_binary, required=False)
        description = rules.check_description(description)
        kms_key_id = rules.check_kms_key_id(kms_key_id)
        tag_map = rules.check_tags(tags) if tags is not None else {}
        if len(tag_map) > rules.MAX_TAGS:
            raise LimitExceededException("A secret can have at most 50 tags.")
        version_id = None
        if kind:
            version_id = (
                rules.check_version_id(client_request_token)
                if client_request_token is not None
                else rules.new_version_id()
            )
        now = self.clock()
        arn = rules.new_arn(self.region, account_id, name)
        t = secrets_table
        async with self.db.write() as conn:
            await store.purge_if_expired(conn, account_id, self.region, name, now)
            try:
                existing = await store.find(
                    conn, account_id, self.region, rules.SecretRef(name=name), now
                )
            except ResourceNotFoundException:
                existing = None
            if existing is not None and existing.deletion_date is not None:
                raise InvalidRequestException(
                    "You can't create this secret because a secret with this name is already "
                    "scheduled for deletion."
                )
            if existing is not None:
                raise ResourceExistsException(f"The operation failed because the secret {name} "
                                              "already exists.")  # fmt: skip
            secret_id = (
                await conn.execute(
                    t.insert().values(
                        account_id=account_id, region=self.region, name=name, arn=arn,
                        description=description, kms_key_id=kms_key_id, created_at=now,
                        last_changed_at=now,
                    ).returning(t.c.id)
                )
            ).scalar_one()  # fmt: skip
            for key, value in tag_map.items():
                await conn.execute(
                    secret_tags.insert().values(secret_id=secret_id, key=key, value=value)
                )
            if version_id is not None:
                await store.add_version(
                    conn, secret_id, version_id, kind, self.box.seal(plain), now
                )
                await store.label(conn, secret_id, version_id, [rules.CURRENT])
        result = {"ARN": arn, "Name": name}
        if version_id is not None:
            result["VersionId"] = version_id
        return result

    async def put_secret_value(
        self,
        account_id: str,
        *,
        secret_id: Any,
        secret_string: Any = None,
        secret_binary: Any = None,
        client_request_token: Any = None,
        version_stages: Any = None,
    ) -> dict[str, Any]:
        kind, plain = rules.check_value(secret_string, secret_binary, required=True)
        stages = (
            rules.check_stages(version_stages) if version_stages is not None else [rules.CURRENT]
        )
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            store.require_live(row)
            version_id = await self._new_version(
                conn, row, kind, plain, client_request_token, stages
            )
            labels = (await store.stages_by_version(conn, [row.id]))[row.id].get(version_id, [])
        return {**self._names(row), "VersionId": version_id, "VersionStages": labels}

    async def _new_version(
        self, conn: Any, row: Any, kind: str, plain: str, token: Any, stages: list[str]
    ) -> str:
        """Add a version (idempotent for a repeated ClientRequestToken with the same value)."""
        version_id = rules.check_version_id(token) if token is not None else rules.new_version_id()
        existing = await store.version(conn, row.id, version_id)
        if existing is not None:
            same = existing.kind == kind and hmac.compare_digest(
                self._open(existing.sealed_value).encode(), plain.encode()
            )
            if not same:
                raise ResourceExistsException(
                    "You can't modify an existing version, you can only create a new version."
                )
            return version_id
        now = self.clock()
        await store.add_version(conn, row.id, version_id, kind, self.box.seal(plain), now)
        await store.label(conn, row.id, version_id, stages)
        await store.prune_versions(conn, row.id)
        await store.touch(conn, row.id, last_changed_at=now)
        return version_id

    async def update_secret(
        self,
        account_id: str,
        *,
        secret_id: Any,
        description: Any = None,
        kms_key_id: Any = None,
        secret_string: Any = None,
        secret_binary: Any = None,
        client_request_token: Any = None,
    ) -> dict[str, Any]:
        description = rules.check_description(description)
        kms_key_id = rules.check_kms_key_id(kms_key_id)
        kind, plain = rules.check_value(secret_string, secret_binary, required=False)
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            store.require_live(row)
            changes: dict[str, Any] = {}
            if description is not None:
                changes["description"] = description
            if kms_key_id is not None:
                changes["kms_key_id"] = kms_key_id
            if changes:
                await store.touch(conn, row.id, last_changed_at=self.clock(), **changes)
            version_id = None
            if kind:
                version_id = await self._new_version(
                    conn, row, kind, plain, client_request_token, [rules.CURRENT]
                )
        result = self._names(row)
        if version_id is not None:
            result["VersionId"] = version_id
        return result

    # -- read --------------------------------------------------------------------------------------

    async def get_secret_value(
        self, account_id: str, *, secret_id: Any, version_id: Any = None, version_stage: Any = None
    ) -> dict[str, Any]:
        if version_id is not None:
            rules.check_version_id(version_id, "VersionId")
        if version_stage is not None and (
            not isinstance(version_stage, str) or not 1 <= len(version_stage) <= 256
        ):
            raise InvalidParameterException("VersionStage must be 1 to 256 characters long.")
        stage = (
            version_stage if version_stage is not None or version_id is not None else rules.CURRENT
        )
        async with self.db.read_now() as conn:
            # A full ARN of another account is read there: the door authorized this call on
            # that ARN, which across accounts needs the secret's policy (`secrets.access`).
            row = await self._find(conn, owner(account_id, secret_id), secret_id)
            store.require_live(row)
            if stage is not None:
                staged = await store.version_with_stage(conn, row.id, stage)
                if staged is None or (version_id is not None and staged != version_id):
                    raise ResourceNotFoundException(
                        "Secrets Manager can't find the specified secret value for staging "
                        f"label: {stage}"
                    )
                version_id = staged
            found = await store.version(conn, row.id, version_id)
            if found is None:
                raise ResourceNotFoundException(
                    "Secrets Manager can't find the specified secret value for VersionId: "
                    f"{version_id}"
                )
            labels = (await store.stages_by_version(conn, [row.id]))[row.id].get(version_id, [])
        plain = self._open(found.sealed_value)
        await self._record_access(row)
        result: dict[str, Any] = {**self._names(row), "VersionId": version_id}
        if found.kind == "binary":
            result["SecretBinary"] = base64.b64decode(plain)
        else:
            result["SecretString"] = plain
        result["VersionStages"] = labels
        result["CreatedDate"] = found.created_at
        return result

    def _open(self, sealed: str) -> str:
        try:
            return self.box.open(sealed)
        except ValueError:
            raise DecryptionFailure(
                "Secrets Manager can't decrypt the protected secret text using the provided key."
            ) from None

    async def _record_access(self, row: Any) -> None:
        """LastAccessedDate, which AWS keeps to the day: one write per secret per day."""
        today = self.clock() // DAY * DAY
        if row.last_accessed_at == today:
            return
        async with self.db.write() as conn:
            await store.touch(conn, row.id, last_accessed_at=today)

    async def describe_secret(self, account_id: str, *, secret_id: Any) -> dict[str, Any]:
        async with self.db.read_now() as conn:
            row = await self._find(conn, account_id, secret_id)
            return (await describe(conn, [row], "VersionIdsToStages"))[0]

    async def list_secrets(
        self,
        account_id: str,
        *,
        filters: Any = None,
        max_results: Any = None,
        next_token: Any = None,
        include_planned_deletion: Any = False,
        sort_order: Any = None,
        sort_by: Any = None,
    ) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await list_page(
                conn, account_id, self.region, self.clock(),
                filters=filters, max_results=max_results, next_token=next_token,
                include_planned_deletion=include_planned_deletion,
                sort_order=sort_order, sort_by=sort_by,
            )  # fmt: skip

    # -- delete and restore ------------------------------------------------------------------------

    async def delete_secret(
        self,
        account_id: str,
        *,
        secret_id: Any,
        recovery_window_in_days: Any = None,
        force_delete_without_recovery: Any = None,
    ) -> dict[str, Any]:
        window = rules.check_recovery(recovery_window_in_days, force_delete_without_recovery)
        now = self.clock()
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            if window is None:
                await conn.execute(delete(secrets_table).where(secrets_table.c.id == row.id))
                deletion_date = now
            else:
                if row.deletion_date is not None:
                    raise InvalidRequestException(
                        "You tried to perform the operation on a secret that's currently "
                        "marked deleted."
                    )
                deletion_date = now + window * DAY
                await store.touch(conn, row.id, deleted_at=now, deletion_date=deletion_date)
        return {**self._names(row), "DeletionDate": deletion_date}

    async def restore_secret(self, account_id: str, *, secret_id: Any) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            if row.deletion_date is not None:
                await store.touch(conn, row.id, deleted_at=None, deletion_date=None,
                                  last_changed_at=self.clock())  # fmt: skip
        return self._names(row)

    async def purge_expired(self) -> int:
        """Remove secrets whose recovery window has passed (for a periodic job)."""
        t = secrets_table
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(t).where(t.c.deletion_date.is_not(None), t.c.deletion_date <= self.clock())
            )
        return int(result.rowcount or 0)

    # -- tags (resource policies: secrets.access) -------------------------------------------------

    async def tag_resource(self, account_id: str, *, secret_id: Any, tags: Any) -> dict[str, Any]:
        tag_map = rules.check_tags(tags)
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            current = {t["Key"] for t in (await store.tags_of(conn, [row.id]))[row.id]}
            if len(current | set(tag_map)) > rules.MAX_TAGS:  # not a LimitExceeded in the model
                raise InvalidParameterException("A secret can have at most 50 tags.")
            for key, value in tag_map.items():
                await upsert(conn, secret_tags, ["secret_id", "key"], secret_id=row.id, key=key,
                             value=value)  # fmt: skip
        return {}

    async def untag_resource(
        self, account_id: str, *, secret_id: Any, tag_keys: Any
    ) -> dict[str, Any]:
        keys = rules.check_tag_keys(tag_keys)
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            if keys:
                t = secret_tags
                await conn.execute(delete(t).where(t.c.secret_id == row.id, t.c.key.in_(keys)))
        return {}
