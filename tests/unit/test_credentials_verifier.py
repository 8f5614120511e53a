"""Access-key verifiers: Basic credentials are checked without opening the sealed secret, so
serving processes need not load `cryptography`; keys from before the verifier still work."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text

import cargobay
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import SecretBox, load_box, new_key
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

KEY = new_key()


def _url(path: Path) -> str:
    return "sqlite:///" + str(path / "meta.db")


def run(tmp_path: Path, scenario: Callable[[CredentialStore], Awaitable[None]]) -> None:
    """Run `scenario` against a migrated database of its own."""

    async def main() -> None:
        await migrations.upgrade(_url(tmp_path))
        db = Database(_url(tmp_path))
        try:
            await scenario(CredentialStore(db, SecretBox(KEY)))
        finally:
            await db.dispose()

    asyncio.run(main())


async def _new_key(store: CredentialStore) -> tuple[str, str]:
    user_id = await store.create_user("123456789012", "ci")
    return await store.add_access_key(user_id)


async def _stored_verifier(store: CredentialStore, key_id: str) -> str | None:
    k = schema.access_keys
    async with store.db.read() as conn:
        return (
            await conn.execute(select(k.c.secret_verifier).where(k.c.id == key_id))
        ).scalar_one()


async def _forget_verifier(store: CredentialStore, key_id: str) -> None:
    """Make the key look as if it was created before revision 0005."""
    k = schema.access_keys
    async with store.db.write() as conn:
        await conn.execute(k.update().where(k.c.id == key_id).values(secret_verifier=None))


def _refuse_to_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: SecretBox, sealed: str) -> str:
        raise AssertionError("the secret was opened")

    monkeypatch.setattr(SecretBox, "open", refuse)


def test_new_key_verifies_without_opening_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(store: CredentialStore) -> None:
        key_id, secret = await _new_key(store)
        assert await _stored_verifier(store, key_id) == store.box.verifier(secret)
        _refuse_to_open(monkeypatch)
        principal = await store.verify(key_id, secret)
        assert principal is not None and principal.access_key_id == key_id
        assert await store.verify(key_id, secret + "x") is None
        assert await store.verify(key_id, "") is None
        assert await store.verify("AKIANOSUCHKEY0000000", secret) is None
        # Tokens are checked against their key's standing, which needs no secret either.
        fresh = CredentialStore(store.db, store.box)
        assert await fresh.active_principal(key_id) == principal

    run(tmp_path, scenario)


def test_verifier_depends_on_the_deployment_key() -> None:
    box, other = SecretBox(KEY), SecretBox(new_key())
    assert box.verifier("s3cret") == box.verifier("s3cret")
    assert box.verifier("s3cret") != other.verifier("s3cret")
    assert box.verifier("s3cret") != box.verifier("s3cret ")
    assert len(box.verifier("s3cret")) == 64


def test_key_without_verifier_verifies_and_gets_one(tmp_path: Path) -> None:
    async def scenario(store: CredentialStore) -> None:
        key_id, secret = await _new_key(store)
        await _forget_verifier(store, key_id)
        # A wrong secret is refused, yet the verifier (of the stored secret) is written back.
        assert await store.verify(key_id, secret + "x") is None
        assert await _stored_verifier(store, key_id) == store.box.verifier(secret)
        await _forget_verifier(store, key_id)
        principal = await store.verify(key_id, secret)
        assert principal is not None and principal.access_key_id == key_id
        assert await _stored_verifier(store, key_id) == store.box.verifier(secret)

    run(tmp_path, scenario)


def test_verifier_is_not_written_over_a_recreated_key(tmp_path: Path) -> None:
    """A process that opened an old sealed secret must not store its verifier for a key
    re-created under the same id meanwhile (what `ensure_admin` does on a new secret)."""

    async def scenario(store: CredentialStore) -> None:
        key_id, secret = await _new_key(store)
        k = schema.access_keys
        async with store.db.read() as conn:
            old_sealed = (await conn.execute(select(k.c.secret).where(k.c.id == key_id))).scalar()
        await store._store_verifier(key_id, old_sealed, store.box.verifier("old secret"))
        assert await _stored_verifier(store, key_id) == store.box.verifier(secret)

    run(tmp_path, scenario)


def test_backfill_fills_keys_made_before_revision_0005(tmp_path: Path) -> None:
    box = SecretBox(KEY)

    async def scenario() -> None:
        url = _url(tmp_path)
        await migrations.upgrade(url, "0004")
        db = Database(url)
        try:
            async with db.write() as conn:  # what a 0004 cargobay stored
                await conn.execute(
                    text(
                        "INSERT INTO users (id, account_id, name, is_admin, created_at) "
                        "VALUES (1, '123456789012', 'old', 0, 0)"
                    )
                )
                for key_id in ("AKIAOLD0000000000001", "AKIAOLD0000000000002"):
                    await conn.execute(
                        text(
                            "INSERT INTO access_keys (id, user_id, secret, status, created_at) "
                            "VALUES (:id, 1, :secret, 'Active', 0)"
                        ),
                        {"id": key_id, "secret": box.seal(f"secret of {key_id}")},
                    )
        finally:
            await db.dispose()
        await migrations.upgrade(url)
        db = Database(url)
        try:
            store = CredentialStore(db, box)
            new_id, new_secret = await _new_key(store)
            assert await store.backfill_verifiers() == 2
            for key_id in ("AKIAOLD0000000000001", "AKIAOLD0000000000002"):
                expected = box.verifier(f"secret of {key_id}")
                assert await _stored_verifier(store, key_id) == expected
            assert await _stored_verifier(store, new_id) == box.verifier(new_secret)
            assert await store.backfill_verifiers() == 0  # idempotent
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_verify_in_a_fresh_process_does_not_import_cryptography(tmp_path: Path) -> None:
    """What a worker does for a Basic check, in a process of its own, where sys.modules
    shows whether `cryptography` was loaded."""

    async def scenario(store: CredentialStore) -> None:
        key_id, secret = await _new_key(store)
        (tmp_path / "key.json").write_text(json.dumps([key_id, secret]))

    run(tmp_path, scenario)
    program = f"""
import asyncio, json, sys
from pathlib import Path
from cargobay.iam.credentials import CredentialStore
from cargobay.iam.secrets import load_box
from cargobay.metadata.db import Database

async def main():
    db = Database({_url(tmp_path)!r})
    store = CredentialStore(db, load_box({KEY.decode()!r}, Path({str(tmp_path)!r})))
    key_id, secret = json.loads(Path({str(tmp_path / "key.json")!r}).read_text())
    good = await store.verify(key_id, secret)
    bad = await store.verify(key_id, secret + "x")
    await db.dispose()
    print(good is not None, bad is None, "cryptography" in sys.modules)

asyncio.run(main())
"""
    src = str(Path(cargobay.__file__).parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
        timeout=60,
    ).stdout
    assert out.split() == ["True", "True", "False"]


@pytest.mark.parametrize("setting", ["not-a-key", "c2hvcnQ=", new_key().decode()[:-4]])
def test_bad_secret_key_setting_fails_at_load(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ValueError) as info:
        load_box(setting, tmp_path)
    assert str(info.value) == "CARGOBAY_SECRET_KEY must be a 32-byte url-safe base64 key"
    assert not (tmp_path / "secret.key").exists()


def test_generated_key_file_is_a_fernet_key(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    box = load_box("", tmp_path)
    key = (tmp_path / "secret.key").read_bytes().strip()
    assert Fernet(key).decrypt(box.seal("hello").encode()) == b"hello"
    assert load_box("", tmp_path).open(box.seal("again")) == "again"
    assert load_box(key.decode(), tmp_path).verifier("x") == box.verifier("x")


def test_cache_still_skips_the_database(tmp_path: Path) -> None:
    async def scenario(store: CredentialStore) -> None:
        key_id, secret = await _new_key(store)
        assert await store.verify(key_id, secret) is not None
        calls = 0
        original = store._key_row

        async def counting(key: str) -> object:
            nonlocal calls
            calls += 1
            return await original(key)

        store._key_row = counting  # type: ignore[method-assign]
        assert await store.verify(key_id, secret) is not None
        assert calls == 0
        assert await store.verify(key_id, secret + "x") is None
        assert calls == 1  # a wrong secret never matches a remembered check

    run(tmp_path, scenario)
