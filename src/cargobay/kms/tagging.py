"""Aliases and tags: CreateAlias/UpdateAlias/DeleteAlias/ListAliases and
TagResource/UntagResource/ListResourceTags, with AWS's rules for both."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select, update

from cargobay.kms.core import KmsCore
from cargobay.kms.errors import (
    AlreadyExistsException,
    InvalidMarkerException,
    LimitExceededException,
    NotFoundException,
    TagException,
    ValidationException,
)
from cargobay.kms.model import alias_arn, alias_entry, check_alias_name
from cargobay.metadata import schema
from cargobay.metadata.sql import insert_ignore

K, A = schema.kms_keys, schema.kms_aliases
MAX_TAGS = 50


class AliasAndTagOperations(KmsCore):
    # ---------------------------------------------------------------- aliases

    async def create_alias(
        self, account_id: str, alias_name: str, target_key_id: str
    ) -> dict[str, Any]:
        check_alias_name(alias_name, creating=True)
        key = await self.key(account_id, target_key_id, allow_alias=False)
        self._alias_target(key, account_id)
        now = self.clock()
        # Insert-if-absent, so that two racing CreateAlias calls cannot both succeed.
        async with self.db.write() as conn:
            result = await insert_ignore(
                conn,
                A,
                account_id=account_id,
                region=self.region,
                name=alias_name,
                key_id=key.id,
                created_at=now,
                updated_at=now,
            )
        if result.rowcount == 0:
            arn = alias_arn(self.region, account_id, alias_name)
            raise AlreadyExistsException(f"An alias with the name {arn} already exists")
        return {}

    async def update_alias(
        self, account_id: str, alias_name: str, target_key_id: str
    ) -> dict[str, Any]:
        """Point an alias at another key of the same spec and usage (AWS's rule, so that
        what works with the alias keeps working)."""
        check_alias_name(alias_name, creating=True)
        current = await self.key(account_id, alias_name)
        key = await self.key(account_id, target_key_id, allow_alias=False)
        self._alias_target(key, account_id)
        if (key.key_spec, key.key_usage) != (current.key_spec, current.key_usage):
            raise ValidationException(
                f"{key.arn} has a different key spec or key usage than the alias's current key"
            )
        async with self.db.write() as conn:
            await conn.execute(
                update(A)
                .where(*self._alias_is(account_id, alias_name))
                .values(key_id=key.id, updated_at=self.clock())
            )
        return {}

    async def delete_alias(self, account_id: str, alias_name: str) -> dict[str, Any]:
        check_alias_name(alias_name, creating=True)
        async with self.db.write() as conn:
            result = await conn.execute(delete(A).where(*self._alias_is(account_id, alias_name)))
        if result.rowcount == 0:
            arn = alias_arn(self.region, account_id, alias_name)
            raise NotFoundException(f"Alias {arn} is not found.")
        return {}

    async def list_aliases(
        self,
        account_id: str,
        *,
        key_id: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        limit = 100 if limit is None else limit
        if not 1 <= limit <= 100:
            raise ValidationException("Limit must be between 1 and 100")
        query = (
            select(A)
            .where(A.c.account_id == account_id, A.c.region == self.region)
            .order_by(A.c.name)
            .limit(limit + 1)
        )
        if key_id is not None:
            key = await self.key(account_id, key_id, allow_alias=False)
            query = query.where(A.c.key_id == key.id)
        if marker is not None:
            if not marker.startswith("alias/"):
                raise InvalidMarkerException("Invalid marker")
            query = query.where(A.c.name > marker)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        page = rows[:limit]
        result: dict[str, Any] = {
            "Aliases": [
                alias_entry(self.region, account_id, r.name, r.key_id, r.created_at, r.updated_at)
                for r in page
            ],
            "Truncated": len(rows) > limit,
        }
        if len(rows) > limit:
            result["NextMarker"] = page[-1].name
        return result

    def _alias_is(self, account_id: str, name: str) -> tuple[Any, ...]:
        return (A.c.account_id == account_id, A.c.region == self.region, A.c.name == name)

    def _alias_target(self, key: Any, account_id: str) -> None:
        if key.account_id != account_id:
            raise NotFoundException(f"Key '{key.arn}' does not exist")
        self.require_customer_managed(key, "CreateAlias")
        self.require_not_pending(key)

    # ---------------------------------------------------------------- tags

    @staticmethod
    def check_tags(tags: list[dict[str, str]], existing: dict[str, str]) -> dict[str, str]:
        """The tag set after adding `tags` to `existing`; TagException for a bad tag."""
        merged = dict(existing)
        for tag in tags:
            key, value = tag.get("TagKey"), tag.get("TagValue")
            if not isinstance(key, str) or not 1 <= len(key) <= 128:
                raise TagException("TagKey must be 1 to 128 characters")
            if not isinstance(value, str) or len(value) > 256:
                raise TagException("TagValue must be 0 to 256 characters")
            if key.lower().startswith("aws:"):
                raise TagException("Tags beginning with aws: are reserved")
            merged[key] = value
        if len(merged) > MAX_TAGS:
            raise LimitExceededException(f"A key can have at most {MAX_TAGS} tags")
        return merged

    async def tag_resource(
        self, account_id: str, key_id: str, tags: list[dict[str, str]]
    ) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "TagResource")
        self.require_not_pending(key)
        await self._set(key, tags=json.dumps(self.check_tags(tags, key.tag_map)))
        return {}

    async def untag_resource(
        self, account_id: str, key_id: str, tag_keys: list[str]
    ) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_customer_managed(key, "UntagResource")
        self.require_not_pending(key)
        remaining = {k: v for k, v in key.tag_map.items() if k not in set(tag_keys)}
        await self._set(key, tags=json.dumps(remaining))
        return {}

    async def list_resource_tags(
        self, account_id: str, key_id: str, *, limit: int | None = None, marker: str | None = None
    ) -> dict[str, Any]:
        limit = 50 if limit is None else limit
        if not 1 <= limit <= 50:
            raise ValidationException("Limit must be between 1 and 50")
        key = await self.key(account_id, key_id, allow_alias=False)
        items = sorted(key.tag_map.items())
        if marker is not None:
            items = [item for item in items if item[0] > marker]
        page = items[:limit]
        result: dict[str, Any] = {
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in page],
            "Truncated": len(items) > limit,
        }
        if len(items) > limit:
            result["NextMarker"] = page[-1][0]
        return result
