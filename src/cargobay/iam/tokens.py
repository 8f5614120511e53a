"""ECR authorization tokens: what `GetAuthorizationToken` hands out and `/v2/` accepts.

`GetAuthorizationToken` returns base64(`AWS:<token>`), valid 12 hours; `docker login -u AWS -p
<token>` then sends HTTP Basic `AWS:<token>`. A token verifies itself, with no database round
trip, on every worker and node and across restarts:

    1.<key id>.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, "1.<key id>.<claims>"))>

It has no `:` (the Basic user/password separator) and no padding. The MAC is checked, in
constant time, before the claims are parsed.

Keys are random 32-byte secrets in the `server_keys` table, one per 30-day rotation period:
row `token-key:<n>` is the key of period n (period n covers [n * 30 days, (n + 1) * 30 days) of
Unix time), so every process derives the same key id from the clock and concurrent first starts
settle on one row with INSERT ... ON CONFLICT DO NOTHING. A key issues for its own period only
(never once it is 30 days into service) and still verifies for 13 hours after it (longer than a
token lives). `load_signer` also creates the next period's key ahead of time, so a process that
loaded keys before a rotation still verifies tokens signed with the new key; reload (call
`load_signer` again) before `TokenSigner.refresh_at`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_text

from sqlalchemy import delete, select

from cargobay.iam.principal import Principal
from cargobay.iam.sigv4keys import KeyedMac
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore

VERSION = "1"
TOKEN_LIFETIME = 12 * 3600.0
ROTATION_PERIOD = 30 * 24 * 3600.0
GRACE = 13 * 3600.0  # a retired key still verifies this long: more than TOKEN_LIFETIME
KEY_BYTES = 32
KEY_PREFIX = "token-key:"
MAX_TOKEN_LENGTH = 4096
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class TokenClaims:
    account_id: str
    user_name: str
    access_key_id: str
    is_admin: bool
    expires_at: float
    issued_at: float
    # Empty for an ECR authorization token (a login); `blob_scope(...)` for the token inside a
    # GetDownloadUrlForLayer URL, which must fetch that one blob and nothing else.
    scope: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(self.account_id, self.user_name, self.access_key_id, self.is_admin)

    @classmethod
    def for_principal(
        cls,
        principal: Principal,
        *,
        now: float | None = None,
        lifetime: float = TOKEN_LIFETIME,
        scope: str = "",
    ) -> TokenClaims:
        issued = time.time() if now is None else now
        return cls(
            principal.account_id,
            principal.user_name,
            principal.access_key_id,
            principal.is_admin,
            issued + lifetime,
            issued,
            scope,
        )


class TokenError(Exception):
    """A token that is malformed, forged, expired or signed with a key we do not hold.

    `reason` is one of "malformed", "unknown-key", "bad-signature", "expired" (for logs; tell
    the client only that the token is invalid).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64e(data: bytes) -> str:
    """base64url without padding (`base64.urlsafe_b64encode`'s text, unpadded, in one step)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ecr_authorization_token(token: str) -> str:
    """The `authorizationToken` of GetAuthorizationToken: base64 of `AWS:<token>`."""
    return base64.b64encode(f"AWS:{token}".encode("ascii")).decode("ascii")


class TokenSigner:
    def __init__(
        self, keys: Mapping[str, bytes], current_key_id: str, *, refresh_at: float = math.inf
    ) -> None:
        for key_id, key in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"invalid token key id {key_id!r}")
            if len(key) < 16:
                raise ValueError(f"token key {key_id!r} is shorter than 16 bytes")
        if current_key_id not in keys:
            raise ValueError(f"current token key {current_key_id!r} is not among the keys")
        self._keys = dict(keys)
        # Each key's HMAC-SHA256 with its padded key blocks hashed once (`KeyedMac`): a token
        # copies two hash states instead of setting the key up (a third of the MAC's cost for
        # a download URL's short message), all of it in C.
        self._macs = {k: KeyedMac(key) for k, key in keys.items()}
        self.current_key_id = current_key_id
        self.refresh_at = refresh_at  # reload keys (load_signer) before this Unix time

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def _mac(self, key_id: str, signed: str) -> bytes:
        return self._macs[key_id].digest(signed.encode("ascii"))

    def issue(self, claims: TokenClaims) -> str:
        return self._signed(claims_json(claims))

    def issue_for(self, principal: Principal, lifetime: float, scope: str) -> str:
        """`issue(TokenClaims.for_principal(principal, lifetime=lifetime, scope=scope))`,
        the same text without building the claims (every download URL issues one)."""
        issued = time.time()
        p = principal
        return self._signed(
            _claims_text(
                p.account_id,
                p.is_admin,
                issued + lifetime,
                issued,
                p.access_key_id,
                scope,
                p.user_name,
            )
        )

    def _signed(self, claims_text: str) -> str:
        payload = _b64e(claims_text.encode())
        signed = f"{VERSION}.{self.current_key_id}.{payload}"
        return f"{signed}.{_b64e(self._mac(self.current_key_id, signed))}"

    def verify(self, token: str, *, now: float | None = None) -> TokenClaims:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed", "malformed token")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise TokenError("malformed", "malformed token")
        _, key_id, payload, mac_text = parts
        if key_id not in self._keys:
            raise TokenError("unknown-key", "token signed with an unknown key")
        # Compare the encoded MAC, not its decoding: base64 leaves spare bits in the last
        # character, and a token must have exactly one valid spelling.
        expected = _b64e(self._mac(key_id, f"{VERSION}.{key_id}.{payload}"))
        if not hmac.compare_digest(expected.encode(), mac_text.encode("utf-8", "replace")):
            raise TokenError("bad-signature", "token signature does not match")
        try:
            body = json.loads(_b64d(payload))
            claims = TokenClaims(
                account_id=_str(body["a"]),
                user_name=_str(body["u"]),
                access_key_id=_str(body["k"]),
                is_admin=_bool(body["adm"]),
                expires_at=_num(body["exp"]),
                issued_at=_num(body["iat"]),
                scope=_str(body.get("s", "")),
            )
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise TokenError("malformed", "malformed token claims") from None
        if (time.time() if now is None else now) >= claims.expires_at:
            raise TokenError("expired", "token has expired")
        return claims


def claims_json(claims: TokenClaims) -> str:
    """The claims' JSON as `json.dumps(..., sort_keys=True, separators=(",", ":"))` writes
    it, written directly: every download URL issues a token, and the encoder's walk of a dict
    built for it cost more than the MAC."""
    c = claims
    return _claims_text(
        c.account_id, c.is_admin, c.expires_at, c.issued_at, c.access_key_id, c.scope, c.user_name
    )


def _claims_text(
    account_id: str,
    is_admin: bool,
    expires_at: float,
    issued_at: float,
    access_key_id: str,
    scope: str,
    user_name: str,
) -> str:
    text = (
        f'{{"a":{_json_text(account_id)},"adm":{"true" if is_admin else "false"},'
        f'"exp":{float(expires_at)!r},"iat":{float(issued_at)!r},'
        f'"k":{_json_text(access_key_id)}'
    )
    if scope:
        text += f',"s":{_json_text(scope)}'
    return f'{text},"u":{_json_text(user_name)}}}'


def blob_scope(registry_id: str, repository: str, digest: str, region: str = "") -> str:
    """The scope of a download URL's token: one blob of one repository of one registry (in
    `region`, a repository region key: "" for the deployment's default region)."""
    scope = f"blob:{registry_id}/{repository}@{digest}"
    return f"{scope}#{region}" if region else scope


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a boolean")
    return value


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError("expected a number")
    return float(value)


def _period(t: float) -> int:
    return int(t // ROTATION_PERIOD)


async def _read_keys(db: Database) -> dict[int, bytes]:
    t = schema.server_keys
    async with db.read() as conn:
        rows = (
            await conn.execute(select(t.c.name, t.c.value).where(t.c.name.like(KEY_PREFIX + "%")))
        ).all()
    keys: dict[int, bytes] = {}
    for name, value in rows:
        suffix = name[len(KEY_PREFIX) :]
        if not suffix.isdigit():
            continue
        try:
            key = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(key) >= 16:
            keys[int(suffix)] = key
    return keys


async def load_signer(db: Database, *, now: float | None = None) -> TokenSigner:
    """The token signer for this moment, creating this and the next period's keys if missing."""
    now = time.time() if now is None else now
    current = _period(now)
    keys = await _read_keys(db)
    if current not in keys or current + 1 not in keys:
        t = schema.server_keys
        async with db.write() as conn:
            for period in (current, current + 1):
                if period not in keys:
                    await insert_ignore(
                        conn,
                        t,
                        name=f"{KEY_PREFIX}{period}",
                        value=base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii"),
                        created_at=now,
                    )
            # Keys whose grace period is over can never verify a live token again.
            stale = [f"{KEY_PREFIX}{p}" for p in keys if p < current - 1]
            if stale:
                await conn.execute(delete(t).where(t.c.name.in_(stale)))
        keys = await _read_keys(db)  # whatever won the race, every process now reads the same
    in_grace = now < current * ROTATION_PERIOD + GRACE
    usable = {
        str(p): key
        for p, key in keys.items()
        if current <= p <= current + 1 or (p == current - 1 and in_grace)
    }
    return TokenSigner(usable, str(current), refresh_at=(current + 1) * ROTATION_PERIOD)
