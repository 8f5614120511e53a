"""The ECR reads' one statement confirms the key row a worker remembered (`ecr.caller`): the
key's status, user, administrator standing and secret verifier, against a real SQLite file.
And the credential store's side: the remembered row (any generation), the forced reload and
the verifier of the opened secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import create_engine

from cargobay.iam.authz import Resource
from cargobay.iam.awsrequest import signed_caller
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.keygeneration import Remembered
from cargobay.iam.principal import Principal
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.iam.sigv4 import SigV4Error
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database
from cargobay.registry.ecrreads import CallerUnconfirmed, read
from unit import seedrows

ACCOUNT = "123456789012"
KEY = "AKIACONFIRMCONFIRM00"
VERIFIER = "f" * 64
DEV = Principal(ACCOUNT, "dev", KEY, False)
REPO = Resource(ACCOUNT, "us-east-1", "team/app")


@pytest.fixture
def db(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(seedrows.repository(1, ACCOUNT, "team/app"))
        user_id = conn.execute(
            schema.users.insert().values(account_id=ACCOUNT, name="dev", created_at=0)
        ).inserted_primary_key[0]
        conn.execute(
            schema.access_keys.insert().values(
                id=KEY,
                user_id=user_id,
                secret="sealed",
                secret_verifier=VERIFIER,
                status="Active",
                created_at=0,
            )
        )
    engine.dispose()
    database = Database(url)
    yield database
    asyncio.run(database.dispose())


def _set_key(db: Database, **values: object) -> None:
    async def change() -> None:
        k = schema.access_keys
        async with db.write() as conn:
            await conn.execute(k.update().where(k.c.id == KEY).values(**values))

    asyncio.run(change())


def test_the_remembered_secret_and_standing_are_confirmed(db: Database) -> None:
    found = asyncio.run(read(db, REPO, DEV, confirm=VERIFIER))
    assert found is not None and found.repository.name == "team/app"
    with pytest.raises(CallerUnconfirmed):  # the key holds another secret now
        asyncio.run(read(db, REPO, DEV, confirm="e" * 64))
    with pytest.raises(CallerUnconfirmed):  # the remembered row said administrator
        asyncio.run(read(db, REPO, Principal(ACCOUNT, "dev", KEY, True), confirm=VERIFIER))
    with pytest.raises(CallerUnconfirmed):  # another user's key, by the remembered row
        asyncio.run(read(db, REPO, Principal(ACCOUNT, "ops", KEY), confirm=VERIFIER))
    with pytest.raises(CallerUnconfirmed):  # no row to say anything: the long way decides
        missing = Resource(ACCOUNT, "us-east-1", "team/none")
        asyncio.run(read(db, missing, DEV, confirm=VERIFIER))
    # Without `confirm` (the generation was read), the verifier is not the statement's matter.
    assert asyncio.run(read(db, REPO, DEV, confirm=None)) is not None
    assert asyncio.run(read(db, Resource(ACCOUNT, "us-east-1", "team/none"), DEV)) is None


@pytest.mark.parametrize(
    "change", [{"status": "Inactive"}, {"secret_verifier": None}, {"id": "AKIAANOTHERKEY000000"}]
)
def test_a_changed_or_gone_key_is_not_confirmed(db: Database, change: dict) -> None:
    _set_key(db, **change)
    with pytest.raises(CallerUnconfirmed):
        asyncio.run(read(db, REPO, DEV, confirm=VERIFIER))
    if "secret_verifier" not in change:  # revoked: the long way, as before
        assert asyncio.run(read(db, REPO, DEV)) is None


def test_the_store_remembers_rows_across_generations_and_reloads_on_demand(
    tmp_path: Path,
) -> None:
    url = "sqlite:///" + str(tmp_path / "meta.db")

    async def main() -> None:
        await migrations.upgrade(url)
        db = Database(url)
        box = SecretBox(new_key())
        store = CredentialStore(db, box)
        try:
            user = await store.create_user(ACCOUNT, "alice")
            key_id, secret = await store.add_access_key(user)
            assert store.remembered(key_id) is None
            record = await store.lookup(key_id)
            assert record is not None and record.verifier == box.verifier(secret)
            k = schema.access_keys
            async with db.write() as conn:  # re-installed with a new secret, a new generation
                await conn.execute(k.delete().where(k.c.id == key_id))
                await store.changing(conn)
            await store.add_access_key(user, key_id, "the-re-installed-secret-0123456789")
            # The remembered row is still offered (for a statement to confirm) ...
            assert store.remembered(key_id) == record
            # ... and `reload` reads the key again, even within one generation.
            fresh = await store.reload(key_id)
            assert fresh is not None and fresh.secret == "the-re-installed-secret-0123456789"
            assert fresh.verifier == box.verifier(fresh.secret) != record.verifier
            assert store.remembered(key_id) == fresh
            async with db.write() as conn:  # changed without a new generation
                await conn.execute(k.update().where(k.c.id == key_id).values(status="Inactive"))
            assert (await store.lookup(key_id)) == fresh  # the generation says nothing changed
            reloaded = await store.reload(key_id)
            assert reloaded is not None and not reloaded.active
        finally:
            store.close()
            await db.dispose()

    asyncio.run(main())


def test_peek_ignores_the_generation_and_keeps_the_entry() -> None:
    remembered: Remembered[int] = Remembered(max_entries=2)
    remembered.put("a", "g1", 1)
    assert remembered.peek("a") == 1
    assert remembered.get("a", "g2") is None  # `get` drops it in another generation
    assert remembered.peek("a") is None
    remembered.put("a", "g1", 1)
    remembered.put("b", "g1", 2)
    assert remembered.peek("a") == 1
    remembered.put("c", "g1", 3)  # `peek` did not make "a" recent
    assert remembered.peek("a") is None and remembered.peek("b") == 2


def _request(key_id: str, secret: str, body: bytes):
    """A request botocore signs now, as aiohttp hands it to the door."""
    aws = AWSRequest(
        method="POST",
        url="http://registry.test/",
        data=body,
        headers={"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.BatchGetImage"},
    )
    SigV4Auth(Credentials(key_id, secret), "ecr", "us-east-1").add_auth(aws)
    headers = {"Host": "registry.test", **dict(aws.prepare().headers)}
    return make_mocked_request("POST", "/", headers=headers)


def test_signed_caller_skips_the_generation_read_and_re_reads_before_refusing(
    tmp_path: Path,
) -> None:
    """With a remembered row, no generation read and the row's verifier to confirm; a
    signature the remembered secret does not verify (the key re-installed with a new secret)
    is checked with the key re-read, and accepted with nothing left to confirm; a wrong secret
    is still refused."""
    url = "sqlite:///" + str(tmp_path / "meta.db")
    body = b'{"repositoryName": "a/b"}'

    async def main() -> None:
        await migrations.upgrade(url)
        db = Database(url)
        store = CredentialStore(db, SecretBox(new_key()))
        reads: list[None] = []
        real = store.generation.current

        async def counted() -> str | None:
            reads.append(None)
            return await real()

        store.generation.current = counted  # type: ignore[method-assign]
        try:
            user = await store.create_user(ACCOUNT, "carol")
            key_id, secret = await store.add_access_key(user)
            principal, pending = await signed_caller(
                _request(key_id, secret, body), store, body, "ecr"
            )
            assert principal.user_name == "carol" and pending is None  # not remembered yet
            assert len(reads) == 1
            principal, pending = await signed_caller(
                _request(key_id, secret, body), store, body, "ecr"
            )
            assert pending == store.box.verifier(secret) and len(reads) == 1
            k = schema.access_keys
            async with db.write() as conn:  # re-installed elsewhere: this store still remembers
                await conn.execute(k.delete().where(k.c.id == key_id))
            new = "a-new-secret-for-the-same-key-id-0123"
            await store.add_access_key(user, key_id, new)
            principal, pending = await signed_caller(
                _request(key_id, new, body), store, body, "ecr"
            )
            assert principal.access_key_id == key_id and pending is None and len(reads) == 2
            with pytest.raises(SigV4Error) as refused:
                await signed_caller(_request(key_id, "not-the-secret", body), store, body, "ecr")
            assert refused.value.code == "InvalidSignatureException"
        finally:
            store.close()
            await db.dispose()

    asyncio.run(main())
