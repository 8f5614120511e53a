"""The SigV4 signing-key cache and the canonical request built without botocore's objects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from cargobay.iam.credentials import CredentialStore
from cargobay.iam.keygeneration import Remembered
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.iam.sigv4keys import KeyedMac, SigningKeys, canonical_request, derive_key
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _aws_reference_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key derivation exactly as AWS's documentation spells it out."""
    k_date = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    k_region = hmac.new(k_date, region.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_region, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, b"aws4_request", hashlib.sha256).digest()


def test_derived_key_is_awss_documented_chain() -> None:
    # AWS's published example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215,
    # us-east-1, iam.
    key = derive_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    assert key == _aws_reference_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"
    )


def test_cache_returns_the_derived_key_and_remembers_it() -> None:
    keys = SigningKeys()
    first = keys.get(SECRET, "20260101", "us-east-1", "ecr")
    assert first == _aws_reference_key(SECRET, "20260101", "us-east-1", "ecr")
    assert keys.get(SECRET, "20260101", "us-east-1", "ecr") is first
    assert len(keys) == 1


@pytest.mark.parametrize(
    "changed",
    [
        (SECRET + "x", "20260101", "us-east-1", "ecr"),  # a changed secret
        (SECRET, "20260102", "us-east-1", "ecr"),  # the next day
        (SECRET, "20260101", "eu-west-1", "ecr"),
        (SECRET, "20260101", "us-east-1", "iam"),
    ],
)
def test_any_changed_part_of_the_scope_misses_the_cache(changed: tuple[str, ...]) -> None:
    keys = SigningKeys()
    stale = keys.get(SECRET, "20260101", "us-east-1", "ecr")
    fresh = keys.get(*changed)
    assert fresh != stale
    assert fresh == _aws_reference_key(*changed)
    assert len(keys) == 2


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    keys = SigningKeys(max_entries=3)
    for day in ("01", "02", "03"):
        keys.get(SECRET, f"202601{day}", "us-east-1", "ecr")
    keys.get(SECRET, "20260101", "us-east-1", "ecr")  # used again: now the most recent
    for day in range(4, 40):
        keys.get(SECRET, f"202601{day:02d}", "us-east-1", "ecr")
        assert len(keys) <= 3
    assert len(keys) == 3
    with pytest.raises(ValueError):
        SigningKeys(max_entries=0)


def test_cache_never_holds_the_plaintext_secret() -> None:
    keys = SigningKeys()
    keys.get(SECRET, "20260101", "us-east-1", "ecr")
    assert all(SECRET.encode() not in slot[0] for slot in keys._keys)
    assert all(SECRET not in slot for slot in keys._keys)


# -- the canonical request is botocore's, byte for byte ----------------------------------------

_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=12)
# A request's path never holds a raw `?` or `#` (they would start the query or fragment; a client
# sends them as %3F and %23), so the generated paths leave them out.
_PATH_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="?#"), max_size=12
)
_PATH = st.lists(
    st.one_of(st.sampled_from(["", ".", "..", "a b", "%20", "~x", "v2", "é"]), _PATH_TEXT),
    max_size=5,
).map(lambda parts: "/" + "/".join(parts))
_NAMES = st.sampled_from(["host", "x-amz-date", "x-amz-target", "content-type", "x-custom"])


def _botocore(method, path, params, signed, headers, payload) -> str:
    class Signer(SigV4Auth):
        def headers_to_sign(self, request):
            selected = HTTPHeaders()
            for name in signed:
                for value in headers.get(name, ()):
                    selected[name] = value
            return selected

        def payload(self, request):
            return payload

    signer = Signer(Credentials("AKIA", SECRET), "ecr", "us-east-1")
    request = AWSRequest(method=method, url="https://verifier.invalid" + path, params=params)
    return signer.canonical_request(request)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "post", "PUT"]),
    path=_PATH,
    params=st.lists(st.tuples(_TEXT, _TEXT), max_size=4),
    signed=st.lists(_NAMES, min_size=1, max_size=5),
    headers=st.dictionaries(_NAMES, st.lists(_TEXT, min_size=1, max_size=2), max_size=5),
)
def test_canonical_request_matches_botocore(method, path, params, signed, headers) -> None:
    payload = hashlib.sha256(b"body").hexdigest()
    ours = canonical_request(method, path, params, tuple(signed), headers, payload)
    assert ours == _botocore(method, path, params, tuple(signed), headers, payload)


# -- the access key behind a signature: remembered per credentials generation -----------------


def test_lookup_remembers_a_key_until_the_credentials_generation_changes(tmp_path: Path) -> None:
    """Two stores on one database stand for two processes: a change committed through one
    (with its new generation, as every IAM path makes it) is seen by the other at once, while
    an unchanged generation costs no read of the key's row and no opening of its secret."""
    url = "sqlite:///" + str(tmp_path / "meta.db")

    async def main() -> None:
        await migrations.upgrade(url)
        db, other_db = Database(url), Database(url)
        try:
            box = SecretBox(new_key())
            store, other = CredentialStore(db, box), CredentialStore(other_db, box)
            user = await other.create_user("000000000000", "alice")
            key_id, secret = await other.add_access_key(user)
            opened, rows = [], []
            real_open, real_row = box.open, store._key_row
            box.open = lambda sealed: opened.append(sealed) or real_open(sealed)

            async def counted_row(kid: str) -> object:
                rows.append(kid)
                return await real_row(kid)

            store._key_row = counted_row  # type: ignore[method-assign]
            for _ in range(3):
                record = await store.lookup(key_id)
                assert record is not None and record.secret == secret and record.active
            assert (len(opened), len(rows)) == (1, 1)

            k = schema.access_keys
            async with other_db.write() as conn:  # deactivated by another process
                await conn.execute(k.update().where(k.c.id == key_id).values(status="Inactive"))
                await other.changing(conn)
            record = await store.lookup(key_id)
            assert record is not None and not record.active
            assert len(rows) == 2
            async with other_db.write() as conn:  # deleted and re-created under the same id
                await conn.execute(k.delete().where(k.c.id == key_id))
                await other.changing(conn)
            assert await store.lookup(key_id) is None
            _, new = await other.add_access_key(user, key_id, "a-new-secret-for-the-same-id")
            record = await store.lookup(key_id)
            assert record is not None and record.secret == new != secret
            assert len(opened) == 2
        finally:
            store.close()
            other.close()
            await db.dispose()
            await other_db.dispose()

    asyncio.run(main())


def test_a_row_read_before_a_change_is_not_kept_after_it(tmp_path: Path) -> None:
    """The generation is read before the row: a change committing between the two leaves the
    row remembered under the old generation, so the next lookup reads it again."""
    url = "sqlite:///" + str(tmp_path / "meta.db")

    async def main() -> None:
        await migrations.upgrade(url)
        db = Database(url)
        store = CredentialStore(db, SecretBox(new_key()))
        try:
            user = await store.create_user("000000000000", "bob")
            key_id, _ = await store.add_access_key(user)
            real_row = store._key_row

            async def row_then_deactivate(kid: str) -> object:
                row = await real_row(kid)  # read while still Active ...
                k = schema.access_keys
                async with db.write() as conn:  # ... then deactivated before it is remembered
                    await conn.execute(k.update().where(k.c.id == kid).values(status="Inactive"))
                    await store.changing(conn)
                return row

            store._key_row = row_then_deactivate  # type: ignore[method-assign]
            first = await store.lookup(key_id)
            assert first is not None and first.active
            store._key_row = real_row  # type: ignore[method-assign]
            second = await store.lookup(key_id)
            assert second is not None and not second.active
        finally:
            store.close()
            await db.dispose()

    asyncio.run(main())


def test_remembered_keys_are_bounded_and_per_generation() -> None:
    remembered: Remembered[int] = Remembered(max_entries=3)
    for i in range(5):
        remembered.put(f"AKIA{i}", "g1", i)
    assert len(remembered) == 3
    assert remembered.get("AKIA0", "g1") is None  # the least recently used went first
    assert remembered.get("AKIA4", "g1") == 4
    assert remembered.get("AKIA4", "g2") is None  # another generation: not used, and dropped
    assert remembered.get("AKIA4", "g1") is None
    remembered.discard("AKIA3")
    assert remembered.get("AKIA3", "g1") is None


@pytest.mark.parametrize("key_size", [0, 1, 32, 63, 64, 65, 200])
def test_a_keyed_mac_is_hmac_sha256(key_size: int) -> None:
    key = bytes(range(256))[:key_size]
    mac = KeyedMac(key)
    for message in (b"", b"x", b"AWS4-HMAC-SHA256\n20260101T000000Z\n" * 9):
        assert mac.digest(message) == hmac.digest(key, message, "sha256")
        assert mac.digest(message) == mac.digest(message)  # the prepared states stay as made


def test_the_cached_mac_signs_with_the_derived_key() -> None:
    keys = SigningKeys()
    mac = keys.mac("secret", "20260101", "us-east-1", "ecr")
    assert mac.key == derive_key("secret", "20260101", "us-east-1", "ecr")
    assert keys.get("secret", "20260101", "us-east-1", "ecr") == mac.key
    assert mac.digest(b"m") == hmac.digest(mac.key, b"m", "sha256")
