"""The administrator credential every deployment starts with."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import write_private
from cargobay.metadata import schema

log = logging.getLogger("cargobay")
ADMIN_USER = "admin"


def credentials_text(key_id: str, secret: str) -> str:
    return f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"


async def ensure_admin(
    store: CredentialStore,
    account_id: str,
    credentials_file: Path,
    key_id: str = "",
    secret: str = "",
) -> str:
    """Make sure the account has an administrator with a usable access key.

    With a configured key id and secret, that key is (re)installed. Otherwise a key is created
    once and written to `credentials_file` (0600) in the AWS shared-credentials format.
    Returns the administrator's access key id.
    """
    # Nodes sharing a database may start together: whoever inserts second finds the first's row.
    user_id = await store.find_user(account_id, ADMIN_USER)
    if user_id is None:
        try:
            user_id = await store.create_user(account_id, ADMIN_USER, is_admin=True)
        except IntegrityError:
            user_id = await store.find_user(account_id, ADMIN_USER)
            assert user_id is not None
    if key_id:
        record = await store.lookup(key_id)
        if record is None:
            try:
                await store.add_access_key(user_id, key_id, secret)
            except IntegrityError:
                record = await store.lookup(key_id)
        if record is not None and (
            record.secret != secret or record.principal.user_name != ADMIN_USER
        ):
            async with store.db.write() as conn:
                await conn.execute(
                    schema.access_keys.delete().where(schema.access_keys.c.id == key_id)
                )
                await store.changing(conn)  # no process may keep the old secret
            store.forget(key_id)
            await store.add_access_key(user_id, key_id, secret)
        log.info("administrator access key %s taken from the environment", key_id)
        return key_id

    async with store.db.read() as conn:
        existing = (
            await conn.execute(
                select(schema.access_keys.c.id).where(schema.access_keys.c.user_id == user_id)
            )
        ).first()
    if existing is not None:
        if credentials_file.exists():
            log.info("administrator credentials are in %s", credentials_file)
        else:
            log.warning(
                "administrator key %s exists but %s is missing; create a new key with "
                "`cargobay admin create-access-key admin`",
                existing.id,
                credentials_file,
            )
        return str(existing.id)
    key_id, secret = await store.add_access_key(user_id)
    credentials_file.unlink(missing_ok=True)
    write_private(credentials_file, credentials_text(key_id, secret).encode())
    log.info("administrator credentials written to %s (mode 0600)", credentials_file)
    return key_id
