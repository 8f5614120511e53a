"""ECR authorization tokens: self-verifying, rotating, shared through the database."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from cargobay.iam.principal import Principal
from cargobay.iam.tokens import (
    GRACE,
    ROTATION_PERIOD,
    TOKEN_LIFETIME,
    TokenClaims,
    TokenError,
    TokenSigner,
    claims_json,
    ecr_authorization_token,
    load_signer,
)
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PRINCIPAL = Principal("123456789012", "ci:builder", "AKIAEXAMPLEKEY000001", is_admin=False)
CLAIMS = TokenClaims.for_principal(PRINCIPAL, now=NOW)


def signer(**keys: bytes) -> TokenSigner:
    keys = keys or {"k1": secrets.token_bytes(32)}
    return TokenSigner(keys, next(iter(keys)))


def _reason(sign: TokenSigner, token: str, now: float = NOW + 60) -> str:
    with pytest.raises(TokenError) as info:
        sign.verify(token, now=now)
    return info.value.reason


def test_round_trip() -> None:
    s = signer()
    token = s.issue(CLAIMS)
    assert s.verify(token, now=NOW + 60) == CLAIMS
    assert CLAIMS.expires_at - CLAIMS.issued_at == TOKEN_LIFETIME == 12 * 3600
    assert CLAIMS.principal == PRINCIPAL


def test_a_scoped_token_round_trips_with_its_scope_and_lifetime() -> None:
    s = signer()
    claims = TokenClaims.for_principal(PRINCIPAL, now=NOW, lifetime=1200.0, scope="blob:x/y@z")
    assert (claims.scope, claims.expires_at, claims.principal) == (
        "blob:x/y@z",
        NOW + 1200,
        PRINCIPAL,
    )
    token = s.issue(claims)
    body = json.loads(base64.urlsafe_b64decode(token.split(".")[2] + "=="))
    assert list(body) == sorted(body)  # one spelling of the claims: keys in order, no spaces
    assert s.verify(token, now=NOW + 60) == claims


def test_issue_for_writes_the_token_issue_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A download URL's token (`issue_for`, no claims object) is the very text `issue` signs
    for the same principal, lifetime, scope and time."""
    s = signer()
    monkeypatch.setattr("cargobay.iam.tokens.time.time", lambda: NOW)
    for principal in (PRINCIPAL, Principal("000000000000", 'ünï"user', "AKIA2", is_admin=True)):
        for scope in ("", "blob:x/y@sha256:00"):
            claims = TokenClaims.for_principal(principal, now=NOW, lifetime=1200.0, scope=scope)
            token = s.issue_for(principal, 1200.0, scope)
            assert token == s.issue(claims)
            assert s.verify(token, now=NOW + 60) == claims


def test_round_trip_admin_and_odd_names() -> None:
    s = signer()
    claims = TokenClaims("000000000000", "ünïcode:user/with.dots", "AKIA2", True, NOW + 5.5, NOW)
    assert s.verify(s.issue(claims), now=NOW) == claims


@pytest.mark.parametrize(
    "claims",
    [
        CLAIMS,
        TokenClaims("000000000000", "root", "AKIA0", True, 1e16, 0.1, "blob:0/a@sha256:00#r"),
        TokenClaims("1", 'us"er\\é\u2028\U0001f600', "k\x00", False, 1.5, 1.0, ""),
    ],
)
def test_claims_are_written_as_the_json_encoder_writes_them(claims: TokenClaims) -> None:
    body = {
        "a": claims.account_id,
        "u": claims.user_name,
        "k": claims.access_key_id,
        "adm": claims.is_admin,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
    }
    if claims.scope:
        body["s"] = claims.scope
    assert claims_json(claims) == json.dumps(body, sort_keys=True, separators=(",", ":"))
    signer = TokenSigner({"k1": b"k" * 32}, "k1")
    token = signer.issue(claims)
    assert signer.verify(token, now=claims.issued_at) == claims
    # A download URL carries the token as it is (`Services.download_url`): nothing to quote.
    assert quote(token, safe="") == token


def test_token_has_no_colon_and_docker_login_form_decodes() -> None:
    s = signer()
    for name in ("a:b", "::", "user"):
        token = s.issue(TokenClaims("1", name, "AKIA:X", False, NOW + 10, NOW))
        assert ":" not in token
        assert "=" not in token and "/" not in token and "+" not in token
        user, _, password = base64.b64decode(ecr_authorization_token(token)).decode().partition(":")
        assert (user, password) == ("AWS", token)
        assert s.verify(password, now=NOW).user_name == name


def test_expiry() -> None:
    s = signer()
    token = s.issue(CLAIMS)
    assert s.verify(token, now=CLAIMS.expires_at - 1)
    assert _reason(s, token, now=CLAIMS.expires_at) == "expired"
    assert _reason(s, token, now=CLAIMS.expires_at + 3600) == "expired"


def _flip(text: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = text[index]
    return text[:index] + alphabet[(alphabet.index(char) + 1) % 64] + text[index + 1 :]


def test_tampering_any_part() -> None:
    s = signer()
    token = s.issue(CLAIMS)
    version, key_id, payload, mac = token.split(".")
    # Every character of the claims and of the MAC matters.
    for i in range(len(payload)):
        tampered = ".".join([version, key_id, _flip(payload, i), mac])
        assert _reason(s, tampered) in {"bad-signature", "malformed"}
    for i in range(len(mac)):
        tampered = ".".join([version, key_id, payload, _flip(mac, i)])
        assert _reason(s, tampered) in {"bad-signature", "malformed"}
    assert _reason(s, ".".join(["2", key_id, payload, mac])) == "malformed"


def test_forged_claims_with_a_recomputed_looking_payload() -> None:
    s = signer()
    _, key_id, payload, mac = s.issue(CLAIMS).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["adm"] = True
    body["exp"] = NOW + 10 * 365 * 86400
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert _reason(s, f"1.{key_id}.{forged}.{mac}") == "bad-signature"


def test_wrong_key() -> None:
    token = signer(k1=b"a" * 32).issue(CLAIMS)
    assert _reason(signer(k1=b"b" * 32), token) == "bad-signature"


def test_unknown_key_id() -> None:
    token = signer(k1=b"a" * 32).issue(CLAIMS)
    assert _reason(signer(k2=b"a" * 32), token) == "unknown-key"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "1.k1", "1.k1.a.b.c", "1.k1.!!.??", "x" * 10_000, "1.k1..", "1..a.b"],
)
def test_malformed(token: str) -> None:
    assert _reason(signer(), token) in {"malformed", "unknown-key", "bad-signature"}


def test_several_keys_verify_and_current_issues() -> None:
    old, new = b"o" * 32, b"n" * 32
    before = TokenSigner({"1": old}, "1").issue(CLAIMS)
    both = TokenSigner({"1": old, "2": new}, "2")
    after = both.issue(CLAIMS)
    assert after.split(".")[1] == "2"
    assert both.verify(before, now=NOW) == both.verify(after, now=NOW) == CLAIMS


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        TokenSigner({"k1": b"x" * 32}, "k2")
    with pytest.raises(ValueError):
        TokenSigner({"a.b": b"x" * 32}, "a.b")
    with pytest.raises(ValueError):
        TokenSigner({"k1": b"short"}, "k1")


# -- keys in the database ---------------------------------------------------------------------


async def _database(path: Path) -> Database:
    await migrations.upgrade("sqlite:///" + str(path))
    return Database("sqlite:///" + str(path))


async def _rows(db: Database) -> dict[str, tuple[str, float]]:
    t = schema.server_keys
    async with db.read() as conn:
        rows = (await conn.execute(select(t.c.name, t.c.value, t.c.created_at))).all()
    return {r.name: (r.value, r.created_at) for r in rows}


def test_load_signer_creates_keys_and_two_signers_agree(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = await _database(tmp_path / "meta.db")
        second = Database("sqlite:///" + str(tmp_path / "meta.db"))  # another process
        try:
            a, b = await asyncio.gather(load_signer(first, now=NOW), load_signer(second, now=NOW))
            assert a.current_key_id == b.current_key_id == str(int(NOW // ROTATION_PERIOD))
            assert a.key_ids == b.key_ids
            assert b.verify(a.issue(CLAIMS), now=NOW) == CLAIMS
            assert a.verify(b.issue(CLAIMS), now=NOW) == CLAIMS
            rows = await _rows(first)
            period = int(NOW // ROTATION_PERIOD)
            assert set(rows) == {f"token-key:{period}", f"token-key:{period + 1}"}
            for value, created_at in rows.values():
                assert len(base64.b64decode(value, validate=True)) == 32
                assert created_at == NOW
            # A restart reads the same keys and writes nothing.
            again = await load_signer(Database("sqlite:///" + str(tmp_path / "meta.db")), now=NOW)
            assert again.verify(a.issue(CLAIMS), now=NOW) == CLAIMS
            assert await _rows(first) == rows
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(scenario())


def test_many_concurrent_first_starts_agree(tmp_path: Path) -> None:
    async def scenario() -> None:
        await (await _database(tmp_path / "meta.db")).dispose()
        dbs = [Database("sqlite:///" + str(tmp_path / "meta.db")) for _ in range(6)]
        try:
            signers = await asyncio.gather(*(load_signer(db, now=NOW) for db in dbs))
            tokens = [s.issue(CLAIMS) for s in signers]
            for s in signers:
                for token in tokens:
                    assert s.verify(token, now=NOW) == CLAIMS
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(scenario())


def test_rotation(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path / "meta.db")
        try:
            start = (int(NOW // ROTATION_PERIOD) + 1) * ROTATION_PERIOD  # a period boundary
            old = await load_signer(db, now=start - 60)
            token_old = old.issue(TokenClaims.for_principal(PRINCIPAL, now=start - 60))
            assert old.refresh_at == start

            # Not yet reloaded across the boundary: the next period's key is already known.
            new = await load_signer(db, now=start + 60)
            assert new.current_key_id != old.current_key_id
            token_new = new.issue(TokenClaims.for_principal(PRINCIPAL, now=start + 60))
            assert old.verify(token_new, now=start + 120).user_name == PRINCIPAL.user_name
            # The retired key no longer issues but still verifies its live tokens.
            assert new.verify(token_old, now=start + 60).user_name == PRINCIPAL.user_name

            # Past the grace period a freshly loaded signer drops the retired key.
            later = await load_signer(db, now=start + GRACE + 1)
            assert old.current_key_id not in later.key_ids
            with pytest.raises(TokenError) as info:
                later.verify(token_old, now=start + GRACE + 1)
            assert info.value.reason == "unknown-key"

            # Two periods on, the oldest rows are cleaned up.
            await load_signer(db, now=start + 2 * ROTATION_PERIOD)
            names = set(await _rows(db))
            assert f"token-key:{old.current_key_id}" not in names
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_no_key_issues_beyond_thirty_days(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path / "meta.db")
        try:
            issuing: dict[str, list[float]] = {}
            t = NOW
            for _ in range(12):
                s = await load_signer(db, now=t)
                issuing.setdefault(s.current_key_id, []).append(t)
                t += 7 * 86400
            assert len(issuing) >= 3
            for key_id, times in issuing.items():
                # Key n issues only within its own 30-day period.
                start = int(key_id) * ROTATION_PERIOD
                assert all(start <= when < start + ROTATION_PERIOD for when in times)
        finally:
            await db.dispose()

    asyncio.run(scenario())


@pytest.mark.parametrize("key_size", [16, 32, 64, 65, 100])
def test_a_token_is_the_documented_form_with_an_hmac_sha256_and_base64url(key_size: int) -> None:
    import hashlib
    import hmac

    key = secrets.token_bytes(key_size)
    claims = TokenClaims.for_principal(PRINCIPAL, now=NOW, scope="blob:1/a@sha256:" + "f" * 64)
    token = TokenSigner({"k1": key}, "k1").issue(claims)
    version, key_id, payload, mac = token.split(".")
    signed = f"{version}.{key_id}.{payload}"
    expected = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    assert (version, key_id) == ("1", "k1")
    assert mac == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert payload == base64.urlsafe_b64encode(claims_json(claims).encode()).rstrip(b"=").decode()
