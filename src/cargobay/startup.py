"""Start-up preparation, run once before any worker of a node starts (`server.py` runs it in a
short-lived child): the data directory, the schema, the administrator credential, this node's
orphaned leases and the webhooks configured in the settings.

Its own module, not the worker's: the child that prepares then never imports the serving
application (aiohttp's server, every door and service), about half a second of every start."""

from __future__ import annotations

import asyncio

from cargobay.config import Settings
from cargobay.events import jobs as event_jobs
from cargobay.iam.bootstrap import ensure_admin
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import load_box
from cargobay.metadata.db import Database
from cargobay.metadata.leases import node_id, release_node


async def prepare(settings: Settings) -> None:
    """Create the data directory, schema and administrator credential, drop the leases this
    node's previous run left, and fill in access-key verifiers missing since before revision
    0005 (idempotent). Raises SchemaOutOfDate when the schema is behind and may not be
    upgraded here."""
    from cargobay.metadata import migrations  # Alembic: loaded only where schemas change

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
    db = Database(settings.database_url)
    try:
        # No worker of this node runs yet: leases its previous run held are orphans.
        await release_node(db, node_id(settings.data_dir))
        store = CredentialStore(db, load_box(settings.secret_key, settings.data_dir))
        await ensure_admin(
            store,
            settings.account_id,
            settings.credentials_file,
            settings.admin_access_key_id,
            settings.admin_secret_access_key,
        )
        # Here, not in workers: opening old keys' secrets loads `cryptography`, which workers
        # checking Basic credentials by verifier then never need.
        await store.backfill_verifiers()
        await event_jobs.sync_webhooks(settings, db)
    finally:
        await db.dispose()


def prepare_sync(settings: Settings) -> None:
    asyncio.run(prepare(settings))
