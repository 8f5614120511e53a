"""Users and access keys: creation, the administrator bootstrap, and checking a presented
key id and secret.

Verification never hashes a password per request: a successful check is remembered for a short
time under a SHA-256 of (key id, secret), so the next request with the same credentials costs a
dictionary lookup, and a wrong secret never matches a cached entry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from cargobay.iam.principal import Principal
from cargobay.iam.secrets import SecretBox
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import upsert

_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CACHE_SECONDS = 30.0
# How often a process checks whether any key was revoked anywhere (see `revoke`).
EPOCH_CHECK_SECONDS = 1.0
EPOCH_KEY = "credentials-epoch"


def new_access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    principal: Principal
    secret: str
    active: bool


class CredentialStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._epoch: str | None = None
        self._epoch_checked_at = float("-inf")

    async def create_user(self, account_id: str, name: str, *, is_admin: bool = False) -> int:
        async with self.db.write() as conn:
            result = await conn.execute(
                schema.users.insert().values(
                    account_id=account_id, name=name, is_admin=is_admin, created_at=time.time()
                )
            )
            return int(result.inserted_primary_key[0])

    async def find_user(self, account_id: str, name: str) -> int | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(schema.users.c.id).where(
                        schema.users.c.account_id == account_id, schema.users.c.name == name
                    )
                )
            ).first()
        return None if row is None else int(row.id)

    async def add_access_key(
        self,
        user_id: int,
        key_id: str | None = None,
        secret: str | None = None,
        *,
        limit: int | None = None,
    ) -> tuple[str, str]:
        """A new Active key for the user; with `limit`, LimitExceeded if the user already has
        that many (checked in the inserting transaction, under a lock on the user's row)."""
        key_id = key_id or new_access_key_id()
        secret = secret or new_secret()
        async with self.db.write() as conn:
            if limit is not None:
                u, k = schema.users, schema.access_keys
                await conn.execute(select(u.c.id).where(u.c.id == user_id).with_for_update())
                count = (
                    await conn.execute(
                        select(func.count()).select_from(k).where(k.c.user_id == user_id)
                    )
                ).scalar_one()
                if count >= limit:
                    raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {limit}")
            await conn.execute(
                schema.access_keys.insert().values(
                    id=key_id,
                    user_id=user_id,
                    secret=self.box.seal(secret),
                    status="Active",
                    created_at=time.time(),
                )
            )
        return key_id, secret

    async def lookup(self, key_id: str) -> KeyRecord | None:
        """The principal and plaintext secret behind an access key id."""
        k, u = schema.access_keys, schema.users
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(k.c.secret, k.c.status, u.c.account_id, u.c.name, u.c.is_admin)
                    .join(u, u.c.id == k.c.user_id)
                    .where(k.c.id == key_id)
                )
            ).first()
        if row is None:
            return None
        principal = Principal(row.account_id, row.name, key_id, bool(row.is_admin))
        return KeyRecord(principal, self.box.open(row.secret), row.status == "Active")

    async def active_principal(self, key_id: str) -> Principal | None:
        """The current principal of an Active access key, or None. Tokens issued for a key
        are checked with this, so deleting or deactivating the key (or its user) ends them
        too; remembered like verifications, and dropped with them on any revocation."""
        now = time.monotonic()
        if now >= self._epoch_checked_at + EPOCH_CHECK_SECONDS:
            await self._check_epoch(now)
        cache_key = b"key:" + key_id.encode()
        cached = self._verified.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.lookup(key_id)
        if record is None or not record.active:
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[cache_key] = (now + CACHE_SECONDS, record.principal)
        return record.principal

    async def verify(self, key_id: str, secret: str) -> Principal | None:
        """The principal for a key id and secret, or None; constant-time on the secret."""
        fingerprint = hashlib.sha256(f"{key_id}\0{secret}".encode()).digest()
        now = time.monotonic()
        if now >= self._epoch_checked_at + EPOCH_CHECK_SECONDS:
            await self._check_epoch(now)
        cached = self._verified.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.lookup(key_id)
        if record is None or not record.active:
            hmac.compare_digest(secret.encode(), secret.encode())  # keep timing uniform
            return None
        if not hmac.compare_digest(record.secret.encode(), secret.encode()):
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[fingerprint] = (now + CACHE_SECONDS, record.principal)
        return record.principal

    async def _check_epoch(self, now: float) -> None:
        """Drop every remembered verification when any process revoked a key since the last
        look: revocations reach every worker and node within EPOCH_CHECK_SECONDS."""
        self._epoch_checked_at = now
        t = schema.server_keys
        async with self.db.read() as conn:
            epoch = (
                await conn.execute(select(t.c.value).where(t.c.name == EPOCH_KEY))
            ).scalar_one_or_none()
        if epoch != self._epoch:
            self._epoch = epoch
            self._verified.clear()

    async def revoke(self, *key_ids: str) -> None:
        """A key was deleted or made Inactive: forget it here at once and tell every other
        process, through the shared epoch, to drop what it remembers."""
        self.forget(*key_ids)
        async with self.db.write() as conn:
            await upsert(
                conn,
                schema.server_keys,
                ["name"],
                name=EPOCH_KEY,
                value=secrets.token_hex(8),
                created_at=time.time(),
            )

    def forget(self, *key_ids: str) -> None:
        """Drop this process's remembered verifications of these keys (deleted or made
        Inactive), so it refuses them from the next request on. Other processes keep theirs
        for at most CACHE_SECONDS."""
        gone = set(key_ids)
        if gone and self._verified:
            self._verified = {
                fingerprint: entry
                for fingerprint, entry in self._verified.items()
                if entry[1].access_key_id not in gone
            }


class UserExists(ValueError):
    pass


class UserNotFound(LookupError):
    pass


class LimitExceeded(ValueError):
    """An IAM quota (access keys per user, tags per user) would be exceeded."""


class DeleteConflict(ValueError):
    """The user still has access keys or policies (IAM deletes only an empty user)."""
