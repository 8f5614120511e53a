"""Console sign-ins kept server-side, so signing out (or an expiry) ends a session everywhere.

The cookie holds a random id; the database holds only its SHA-256, the access key it signed in
with, and when it expires. The principal is looked up through the credential store on every
request, so deactivating or deleting the key ends its console sessions too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database

SESSION_LIFETIME = 8 * 3600.0
_ID_LENGTH = 43  # token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    access_key_id: str
    expires_at: float


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def plausible_id(value: str | None) -> bool:
    """Whether a cookie value could be a session id (anything else costs no database read)."""
    return (
        value is not None
        and len(value) == _ID_LENGTH
        and all(c.isalnum() or c in "-_" for c in value)
    )


class SessionStore:
    def __init__(self, db: Database, lifetime: float = SESSION_LIFETIME) -> None:
        self.db = db
        self.lifetime = lifetime

    async def create(self, access_key_id: str) -> Session:
        """A new session for a verified key (and expired sessions swept on the way)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        s = schema.console_sessions
        async with self.db.write() as conn:
            await conn.execute(delete(s).where(s.c.expires_at < now))
            await conn.execute(
                s.insert().values(
                    id_hash=_hash(session_id),
                    access_key_id=access_key_id,
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
        return Session(session_id, access_key_id, now + self.lifetime)

    async def find(self, session_id: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, signed out or expired)."""
        if not plausible_id(session_id):
            return None
        assert session_id is not None
        s = schema.console_sessions
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(s.c.access_key_id, s.c.expires_at).where(
                        s.c.id_hash == _hash(session_id)
                    )
                )
            ).first()
        if row is None or row.expires_at <= time.time():
            return None
        return Session(session_id, row.access_key_id, row.expires_at)

    async def end(self, session_id: str) -> None:
        s = schema.console_sessions
        async with self.db.write() as conn:
            await conn.execute(delete(s).where(s.c.id_hash == _hash(session_id)))
