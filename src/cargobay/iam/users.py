"""IAM users, their access keys and inline policies: what `cargobay admin` manages."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cargobay.errors import DeleteConflict, LimitExceeded, UserNotFound
from cargobay.errors import UserAlreadyExists as UserExists
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.policy import parse_policy
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert

#: IAM's quota on the aggregate size of a user's inline policies; whitespace does not count.
MAX_USER_POLICY_SIZE = 2048


def policy_size(document: str) -> int:
    """A policy's size as IAM counts it against its quotas: characters other than whitespace."""
    return sum(1 for ch in document if not ch.isspace())


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class User:
    id: int
    account_id: str
    name: str
    is_admin: bool
    created_at: float

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"

    def shape(self) -> dict[str, object]:
        """As `aws iam get-user` shows a user."""
        return {
            "Path": "/",
            "UserName": self.name,
            "UserId": f"AIDA{self.id:016d}",
            "Arn": self.arn,
            "CreateDate": iso(self.created_at),
        }


class UserService:
    def __init__(self, db: Database, credentials: CredentialStore) -> None:
        self.db = db
        self.credentials = credentials

    async def get(self, account_id: str, name: str) -> User:
        u = schema.users
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(u.c.id, u.c.account_id, u.c.name, u.c.is_admin, u.c.created_at).where(
                        u.c.account_id == account_id, u.c.name == name
                    )
                )
            ).first()
        if row is None:
            raise UserNotFound(f"The user with name {name} cannot be found.")
        return User(row.id, row.account_id, row.name, bool(row.is_admin), row.created_at)

    async def create(
        self, account_id: str, name: str, *, is_admin: bool = False, tags: dict | None = None
    ) -> User:
        u = schema.users
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    u.insert().values(
                        account_id=account_id,
                        name=name,
                        is_admin=is_admin,
                        tags=json.dumps(tags) if tags else None,
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            raise UserExists(f"User with name {name} already exists.") from None
        return await self.get(account_id, name)

    async def list(self, account_id: str | None = None) -> list[User]:
        u = schema.users
        query = select(u.c.id, u.c.account_id, u.c.name, u.c.is_admin, u.c.created_at).order_by(
            u.c.account_id, u.c.name
        )
        if account_id:
            query = query.where(u.c.account_id == account_id)
        async with self.db.read() as conn:
            return [
                User(r.id, r.account_id, r.name, bool(r.is_admin), r.created_at)
                for r in await conn.execute(query)
            ]

    async def delete(self, account_id: str, name: str, *, cascade: bool = True) -> None:
        """Delete a user. With `cascade` (what `cargobay admin` does) its access keys and
        policies go with it; without, DeleteConflict while it has any, as IAM answers."""
        user = await self.get(account_id, name)
        k, p = schema.access_keys, schema.user_policies
        async with self.db.write() as conn:
            await conn.execute(
                select(schema.users.c.id).where(schema.users.c.id == user.id).with_for_update()
            )
            keys = [r.id for r in await conn.execute(select(k.c.id).where(k.c.user_id == user.id))]
            if not cascade:
                if keys:
                    raise DeleteConflict("Cannot delete entity, must delete access keys first.")
                policy = await conn.execute(select(p.c.name).where(p.c.user_id == user.id).limit(1))
                if policy.first() is not None:
                    raise DeleteConflict("Cannot delete entity, must delete policies first.")
            for table in (schema.access_keys, schema.user_policies):
                await conn.execute(table.delete().where(table.c.user_id == user.id))
            await conn.execute(schema.users.delete().where(schema.users.c.id == user.id))
            await self.credentials.changing(conn)
        self.credentials.forget(*keys)

    async def create_access_key(
        self, account_id: str, name: str, *, limit: int | None = None
    ) -> dict[str, object]:
        """A new key; with `limit` (IAM's is 2), LimitExceeded when the user has that many."""
        user = await self.get(account_id, name)
        key_id, secret = await self.credentials.add_access_key(user.id, limit=limit)
        return {
            "AccessKey": {
                "UserName": user.name,
                "AccessKeyId": key_id,
                "Status": "Active",
                "SecretAccessKey": secret,
                "CreateDate": iso(time.time()),
            }
        }

    async def list_access_keys(self, account_id: str, name: str) -> list[dict[str, object]]:
        user = await self.get(account_id, name)
        k = schema.access_keys
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(k.c.id, k.c.status, k.c.created_at).where(k.c.user_id == user.id)
            )
            return [
                {
                    "UserName": user.name,
                    "AccessKeyId": r.id,
                    "Status": r.status,
                    "CreateDate": iso(r.created_at),
                }
                for r in rows
            ]

    async def delete_access_key(self, account_id: str, name: str, key_id: str) -> None:
        user = await self.get(account_id, name)
        k = schema.access_keys
        async with self.db.write() as conn:
            result = await conn.execute(k.delete().where(k.c.id == key_id, k.c.user_id == user.id))
            if result.rowcount:
                await self.credentials.changing(conn)
        if not result.rowcount:
            raise UserNotFound(f"The Access Key with id {key_id} cannot be found.")
        self.credentials.forget(key_id)

    async def set_access_key_status(
        self, account_id: str, name: str, key_id: str, status: str
    ) -> None:
        """Make a key Active or Inactive, with a new credentials generation in the same
        transaction: SigV4 refuses an Inactive key at once in every process and node, Basic
        checks within about a second (see CredentialStore)."""
        user = await self.get(account_id, name)
        k = schema.access_keys
        async with self.db.write() as conn:
            result = await conn.execute(
                k.update().where(k.c.id == key_id, k.c.user_id == user.id).values(status=status)
            )
            if result.rowcount:
                await self.credentials.changing(conn)
        if not result.rowcount:
            raise UserNotFound(f"The Access Key with id {key_id} cannot be found.")
        self.credentials.forget(key_id)

    async def tags(self, account_id: str, name: str) -> dict[str, str]:
        """The user's tags (what `aws:PrincipalTag/*` conditions read), in insertion order."""
        user = await self.get(account_id, name)
        async with self.db.read() as conn:
            text = (
                await conn.execute(select(schema.users.c.tags).where(schema.users.c.id == user.id))
            ).scalar_one_or_none()
        return json.loads(text) if text else {}

    async def update_tags(
        self,
        account_id: str,
        name: str,
        add: dict[str, str] | None = None,
        remove: tuple[str, ...] | list[str] = (),
        *,
        limit: int = 50,
    ) -> dict[str, str]:
        """Add (overwriting, keys compared case-insensitively as IAM does) and remove tags in
        one transaction; LimitExceeded if the user would end with more than `limit`."""
        user = await self.get(account_id, name)
        u = schema.users
        async with self.db.write() as conn:
            text = (
                await conn.execute(select(u.c.tags).where(u.c.id == user.id).with_for_update())
            ).scalar_one_or_none()
            tags: dict[str, str] = json.loads(text) if text else {}
            drop = {key.lower() for key in (*remove, *(add or {}))}
            tags = {k: v for k, v in tags.items() if k.lower() not in drop}
            tags.update(add or {})
            if len(tags) > limit:
                raise LimitExceeded(f"Cannot exceed quota for TagsPerUser: {limit}")
            await conn.execute(
                u.update().where(u.c.id == user.id).values(tags=json.dumps(tags) if tags else None)
            )
        return tags

    async def identity(self, account_id: str, name: str) -> tuple[list[str], dict[str, str]]:
        """The user's inline policy documents and tags: what its identity-based decisions read.
        Nothing for a user that does not exist."""
        u, p = schema.users, schema.user_policies
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(u.c.tags, p.c.document)
                    .select_from(u.outerjoin(p, p.c.user_id == u.c.id))
                    .where(u.c.account_id == account_id, u.c.name == name)
                )
            ).all()
        tags = json.loads(rows[0].tags) if rows and rows[0].tags else {}
        return [row.document for row in rows if row.document], tags

    async def put_policy(self, account_id: str, name: str, policy_name: str, document: str) -> None:
        """Attach an inline identity policy; the document must parse (PolicyError if not)."""
        parse_policy(document, resource_policy=False)
        user = await self.get(account_id, name)
        async with self.db.write() as conn:
            p = schema.user_policies
            others = await conn.execute(
                select(p.c.document).where(p.c.user_id == user.id, p.c.name != policy_name)
            )
            size = policy_size(document) + sum(policy_size(r.document) for r in others)
            if size > MAX_USER_POLICY_SIZE:
                raise LimitExceeded(
                    f"Maximum policy size of {MAX_USER_POLICY_SIZE} bytes exceeded for user {name}"
                )
            await upsert(
                conn,
                schema.user_policies,
                ["user_id", "name"],
                user_id=user.id,
                name=policy_name,
                document=document,
            )

    async def get_policy(self, account_id: str, name: str, policy_name: str) -> str:
        user = await self.get(account_id, name)
        p = schema.user_policies
        async with self.db.read() as conn:
            doc = (
                await conn.execute(
                    select(p.c.document).where(p.c.user_id == user.id, p.c.name == policy_name)
                )
            ).scalar_one_or_none()
        if doc is None:
            raise UserNotFound(f"The user policy with name {policy_name} cannot be found.")
        return doc

    async def list_policies(self, account_id: str, name: str) -> list[str]:
        user = await self.get(account_id, name)
        p = schema.user_policies
        async with self.db.read() as conn:
            return [
                r.name
                for r in await conn.execute(
                    select(p.c.name).where(p.c.user_id == user.id).order_by(p.c.name)
                )
            ]

    async def delete_policy(self, account_id: str, name: str, policy_name: str) -> None:
        user = await self.get(account_id, name)
        p = schema.user_policies
        async with self.db.write() as conn:
            result = await conn.execute(
                p.delete().where(p.c.user_id == user.id, p.c.name == policy_name)
            )
        if not result.rowcount:
            raise UserNotFound(f"The user policy with name {policy_name} cannot be found.")

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(schema.users))).scalar_one()
            )
