"""Users and access keys: creation, the administrator bootstrap, and checking a presented
key id and secret.

Verification never hashes a password per request: a successful check is remembered for a short
time under a SHA-256 of (key id, secret), so the next request with the same credentials costs a
dictionary lookup, and a wrong secret never matches a cached entry.

Nor does it open the sealed secret: each key stores a keyed verifier of its secret
(SecretBox.verifier) that a presented secret is compared against, so serving processes never
load `cryptography`. Only SigV4 (`lookup`) needs the plaintext.

SigV4 (`lookup`, on every ECR, IAM and AWS JSON call) remembers a key's row, with its opened
secret, for as long as the credentials generation (`keygeneration`) is unchanged: every status
change or deletion writes a new generation in its own transaction, so it is refused by every
worker and node from the next request on, at the cost of one tiny read per request.

A door whose one statement re-reads the caller's key anyway (the ECR reads, `ecr.context`)
skips that read: it verifies with the key's `remembered` row, whatever generation it was read
in, and has the statement confirm the row's status, user and secret (`KeyRecord.verifier`); when
the statement does not, it goes the long way with `reload`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Update, func, select
from sqlalchemy.exc import SQLAlchemyError

from cargobay.errors import LimitExceeded, UserAlreadyExists, UserNotFound
from cargobay.iam import keygeneration
from cargobay.iam.keygeneration import EPOCH_KEY, Generation, Remembered
from cargobay.iam.principal import Principal
from cargobay.iam.secrets import SecretBox
from cargobay.metadata import schema
from cargobay.metadata.db import Conn, Database

log = logging.getLogger("cargobay")

_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CACHE_SECONDS = 30.0
# How often a process checks whether any key was revoked anywhere (see `revoke`).
EPOCH_CHECK_SECONDS = 1.0
OPENED_SECRETS = 1024
REMEMBERED_KEYS = 1024


def new_access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    principal: Principal
    secret: str
    active: bool
    # The keyed digest (SecretBox.verifier) of `secret`: a statement that compares it with the
    # row's `secret_verifier` confirms the row still holds the secret this record was opened from.
    verifier: str


@dataclass(frozen=True, slots=True)
class _KeyRow:
    """An access key as stored: its secret still sealed, its verifier NULL if it predates
    revision 0005 and start-up has not filled it in yet."""

    principal: Principal
    active: bool
    sealed: str
    verifier: str | None


class CredentialStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        # Sealed secret -> plaintext, so SigV4 does not decrypt on every request. Keyed by the
        # ciphertext, the key's row is still read each time: status changes apply at once.
        self._opened: OrderedDict[str, str] = OrderedDict()
        self._epoch: str | None = None
        self._epoch_checked_at = float("-inf")
        self.generation = Generation(db)
        # Key id -> its row and opened secret, valid in the generation it was read in.
        self._records: Remembered[KeyRecord] = Remembered(REMEMBERED_KEYS)

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
                    secret_verifier=self.box.verifier(secret),
                    status="Active",
                    created_at=time.time(),
                )
            )
        return key_id, secret

    async def _key_row(self, key_id: str) -> _KeyRow | None:
        """The key and its principal, without opening the secret (no `cryptography`)."""
        k, u = schema.access_keys, schema.users
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(
                        k.c.secret,
                        k.c.secret_verifier,
                        k.c.status,
                        u.c.account_id,
                        u.c.name,
                        u.c.is_admin,
                    )
                    .join(u, u.c.id == k.c.user_id)
                    .where(k.c.id == key_id)
                )
            ).first()
        if row is None:
            return None
        principal = Principal(row.account_id, row.name, key_id, bool(row.is_admin))
        return _KeyRow(principal, row.status == "Active", row.secret, row.secret_verifier)

    async def lookup(self, key_id: str) -> KeyRecord | None:
        """The principal, plaintext secret and status behind an access key id (SigV4 needs
        them): remembered while the credentials generation is unchanged (read first, so a row
        read before a change is never kept under the generation after it)."""
        generation = await self._generation()
        record = self._records.get(key_id, generation)
        if record is not None:
            return record
        return await self._load(key_id, generation)

    async def reload(self, key_id: str) -> KeyRecord | None:
        """`lookup` that reads the key's row even when one is remembered in this generation:
        the long way of a caller whose statement did not confirm the `remembered` row."""
        self._records.discard(key_id)
        return await self._load(key_id, await self._generation())

    def remembered(self, key_id: str) -> KeyRecord | None:
        """The key's last row read here, in whatever generation: only for a caller that has a
        statement confirm it (`KeyRecord.verifier`, status, user) before it answers anything."""
        return self._records.peek(key_id)

    async def _generation(self) -> str | None:
        generation = await self.generation.current()
        if generation != self._epoch:  # a revocation somewhere: Basic checks are dropped too
            self._epoch, self._epoch_checked_at = generation, time.monotonic()
            self._verified.clear()
        return generation

    async def _load(self, key_id: str, generation: str | None) -> KeyRecord | None:
        row = await self._key_row(key_id)
        if row is None:
            return None
        secret = self._open(row.sealed)
        record = KeyRecord(row.principal, secret, row.active, self.box.verifier(secret))
        self._records.put(key_id, generation, record)
        return record

    def _open(self, sealed: str) -> str:
        """The plaintext of a sealed secret, remembered for the OPENED_SECRETS most recent."""
        secret = self._opened.get(sealed)
        if secret is not None:
            self._opened.move_to_end(sealed)
            return secret
        secret = self.box.open(sealed)
        self._opened[sealed] = secret
        if len(self._opened) > OPENED_SECRETS:
            self._opened.popitem(last=False)
        return secret

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
        row = await self._key_row(key_id)
        if row is None or not row.active:
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[cache_key] = (now + CACHE_SECONDS, row.principal)
        return row.principal

    async def verify(self, key_id: str, secret: str) -> Principal | None:
        """The principal for a key id and secret, or None; constant-time on the secret."""
        fingerprint = hashlib.sha256(f"{key_id}\0{secret}".encode()).digest()
        now = time.monotonic()
        if now >= self._epoch_checked_at + EPOCH_CHECK_SECONDS:
            await self._check_epoch(now)
        cached = self._verified.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        presented = self.box.verifier(secret)
        row = await self._key_row(key_id)
        if row is None or not row.active:
            hmac.compare_digest(presented, presented)  # keep timing uniform
            return None
        if not await self._secret_matches(key_id, row, secret, presented):
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[fingerprint] = (now + CACHE_SECONDS, row.principal)
        return row.principal

    async def _secret_matches(self, key_id: str, row: _KeyRow, secret: str, presented: str) -> bool:
        """Whether `secret` (whose verifier is `presented`) is the key's, in constant time."""
        if row.verifier is not None:
            return hmac.compare_digest(row.verifier, presented)
        # A key from before revision 0005 that start-up has not filled in (another node ran an
        # older version): open it this once, and store its verifier so no process must again.
        plaintext = self.box.open(row.sealed)
        await self._store_verifier(key_id, row.sealed, self.box.verifier(plaintext))
        return hmac.compare_digest(plaintext.encode(), secret.encode())

    async def _store_verifier(self, key_id: str, sealed: str, verifier: str) -> None:
        """Best effort: a failure only means the next process opens the secret again."""
        try:
            async with self.db.write() as conn:
                await conn.execute(_set_verifier(key_id, sealed, verifier))
        except SQLAlchemyError:
            log.warning("could not store the verifier of access key %s", key_id, exc_info=True)

    async def backfill_verifiers(self) -> int:
        """Store the verifier of every key made before revision 0005; returns how many. Runs at
        start-up, before any worker, so workers never need to open a secret for a Basic check."""
        k = schema.access_keys
        async with self.db.read() as conn:
            rows = (
                await conn.execute(select(k.c.id, k.c.secret).where(k.c.secret_verifier.is_(None)))
            ).all()
        filled: list[tuple[str, str, str]] = []
        for row in rows:
            try:
                filled.append((row.id, row.secret, self.box.verifier(self.box.open(row.secret))))
            except ValueError:  # sealed under another deployment key: it cannot verify anyway
                log.warning("access key %s cannot be opened with this deployment key", row.id)
        if not filled:
            return 0
        count = 0
        async with self.db.write() as conn:
            for key_id, sealed, verifier in filled:
                count += (await conn.execute(_set_verifier(key_id, sealed, verifier))).rowcount
        log.info("stored verifiers for %d access keys created before this version", count)
        return count

    async def _check_epoch(self, now: float) -> None:
        """Drop every remembered verification when any process revoked a key since the last
        look: revocations reach every worker and node within EPOCH_CHECK_SECONDS."""
        self._epoch_checked_at = now
        t = schema.server_keys
        async with self.db.read_now() as conn:
            epoch = (
                await conn.execute(select(t.c.value).where(t.c.name == EPOCH_KEY))
            ).scalar_one_or_none()
        if epoch != self._epoch:
            self._epoch = epoch
            self._verified.clear()

    async def revoke(self, *key_ids: str) -> None:
        """A key was deleted or made Inactive: forget it here at once and tell every other
        process, through the shared epoch, to drop what it remembers. Prefer `changing` inside
        the transaction that makes the change, which leaves no gap between the two."""
        self.forget(*key_ids)
        async with self.db.write() as conn:
            await keygeneration.bump(conn)

    async def changing(self, conn: Conn) -> None:
        """Inside the write transaction that changes or deletes keys or users: start a new
        credentials generation with it, so no process uses what it remembers of them once the
        change commits. Call `forget` for the keys after the commit."""
        await keygeneration.bump(conn)

    def close(self) -> None:
        self.generation.close()

    def forget(self, *key_ids: str) -> None:
        """Drop this process's remembered verifications of these keys (deleted or made
        Inactive), so it refuses them from the next request on. Other processes keep theirs
        for at most CACHE_SECONDS."""
        gone = set(key_ids)
        self._records.discard(*gone)
        if gone and self._verified:
            self._verified = {
                fingerprint: entry
                for fingerprint, entry in self._verified.items()
                if entry[1].access_key_id not in gone
            }


def _set_verifier(key_id: str, sealed: str, verifier: str) -> Update:
    """Fill in a key's missing verifier, only while the row still holds the sealed secret it
    was computed from: a key deleted and re-created under the same id keeps its own."""
    k = schema.access_keys
    return (
        k.update()
        .where(k.c.id == key_id, k.c.secret == sealed, k.c.secret_verifier.is_(None))
        .values(secret_verifier=verifier)
    )


# The IAM user errors are domain errors (cargobay.errors); these are the names callers import.
UserExists = UserAlreadyExists
__all__ = ["CredentialStore", "UserExists", "UserNotFound"]
