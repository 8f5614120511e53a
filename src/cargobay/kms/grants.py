"""KMS grants: CreateGrant, ListGrants, RetireGrant, RevokeGrant, ListRetirableGrants, and the
rule that lets a grantee use a key without a key-policy statement (`grant_permits`).

A grant names one key, one grantee principal and the grant operations it allows, optionally
with an encryption-context constraint (keys compared case-insensitively, values exactly, as
AWS does; operations without an encryption context ignore it). Grants are rows of
`kms_grants`, read on every authorization, so a revoke applies at once on every node: a
grant token is then only a well-formed reference to a grant (accepted, never needed; AWS
issues tokens for its eventual consistency, which a single database does not have). Grants
are deleted with their key. Grant operations name a key by key id or key ARN, never by alias
(botocore's `kms` model), and match it by its id whichever the caller used; a key holds at
most `grants_per_key` grants (AWS's quota: 50,000; CreateGrant raises LimitExceededException).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select

from cargobay.kms.core import KmsCore
from cargobay.kms.errors import (
    InvalidArnException,
    InvalidGrantIdException,
    InvalidGrantTokenException,
    InvalidMarkerException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from cargobay.kms.model import SYMMETRIC, KeyRecord, key_arn
from cargobay.metadata import schema

G = schema.kms_grants
_GRANT_ID = re.compile(r"^[0-9a-f]{64}$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\w+=,.@:/-]+$")
_TOKEN_PREFIX = "CBGT1."
# Grant operations whose requests carry an encryption context (constraints apply to them).
CONTEXT_OPERATIONS = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
    }
)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
K = schema.kms_keys


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    key_id: str
    issuing_account: str
    name: str | None
    grantee: str
    retiring: str | None
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str]] | None
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> Grant:
        return cls(
            row.id,
            row.key_id,
            row.issuing_account,
            row.name,
            row.grantee_principal,
            row.retiring_principal,
            tuple(json.loads(row.operations)),
            json.loads(row.constraints) if row.constraints else None,
            row.created_at,
        )

    def entry(self, region: str) -> dict[str, Any]:
        """A GrantListEntry."""
        out: dict[str, Any] = {
            "KeyId": key_arn(region, self.issuing_account, self.key_id),
            "GrantId": self.id,
            "CreationDate": datetime.fromtimestamp(self.created_at, UTC).isoformat(),
            _principal_member("Grantee", self.grantee): self.grantee,
            "IssuingAccount": f"arn:aws:iam::{self.issuing_account}:root",
            "Operations": list(self.operations),
        }
        if self.name:
            out["Name"] = self.name
        if self.retiring:
            out[_principal_member("Retiring", self.retiring)] = self.retiring
        if self.constraints:
            out["Constraints"] = self.constraints
        return out


def _principal_member(role: str, value: str) -> str:
    """GranteePrincipal for an ARN, GranteeServicePrincipal for a service name."""
    return f"{role}Principal" if value.startswith("arn:") else f"{role}ServicePrincipal"


def _folded(context: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in context.items()}


def constraint_holds(
    constraints: Mapping[str, Mapping[str, str]] | None, context: Mapping[str, str] | None
) -> bool:
    """Whether a request's encryption context satisfies a grant's constraints."""
    if not constraints:
        return True
    request = _folded(context or {})
    equals = constraints.get("EncryptionContextEquals")
    if equals is not None and _folded(equals) != request:
        return False
    subset = constraints.get("EncryptionContextSubset")
    return subset is None or all(request.get(k) == v for k, v in _folded(subset).items())


def grant_permits(grant: Grant, operation: str, context: Mapping[str, str] | None) -> bool:
    """Whether `grant` allows `operation` (a GrantOperation name) with this context."""
    if operation not in grant.operations:
        return False
    return operation not in CONTEXT_OPERATIONS or constraint_holds(grant.constraints, context)


def at_least_as_strict(
    operations: Iterable[str],
    constraints: Mapping[str, Mapping[str, str]] | None,
    parent: Grant,
) -> bool:
    """A grant created through `parent`'s CreateGrant permission may allow no more than the
    parent does: its operations a subset, its constraint equally strict or stricter."""
    if not set(operations) <= set(parent.operations):
        return False
    if not parent.constraints:
        return True
    if not constraints:
        return False
    mine = constraints.get("EncryptionContextEquals")
    if mine is not None:
        return constraint_holds(parent.constraints, mine)
    parent_subset = parent.constraints.get("EncryptionContextSubset")
    subset = _folded(constraints.get("EncryptionContextSubset") or {})
    if parent.constraints.get("EncryptionContextEquals") is not None or parent_subset is None:
        return False
    return all(subset.get(k) == v for k, v in _folded(parent_subset).items())


def can_retire(grant: Grant, principal_arn: str, principal_account: str, is_root: bool) -> bool:
    """RetireGrant is decided by the grant: its retiring principal, its grantee when it allows
    RetireGrant, or the account that issued it."""
    if principal_arn == grant.retiring:
        return True
    if principal_arn == grant.grantee and "RetireGrant" in grant.operations:
        return True
    return is_root and principal_account == grant.issuing_account


def new_token(grant_id: str) -> str:
    raw = bytes.fromhex(grant_id) + secrets.token_bytes(16)
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_grant_id(token: str) -> str:
    """The grant a token names; InvalidGrantTokenException unless this registry issued it."""
    if not token.startswith(_TOKEN_PREFIX):
        raise InvalidGrantTokenException("Invalid grant token")
    body = token[len(_TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidGrantTokenException("Invalid grant token") from None
    if len(raw) != 48:
        raise InvalidGrantTokenException("Invalid grant token")
    return raw[:32].hex()


def check_tokens(tokens: Any) -> None:
    """The GrantTokens member of a request: at most 10 tokens this registry issued."""
    if tokens is None:
        return
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValidationException("GrantTokens must be a list of strings")
    if len(tokens) > 10:
        raise ValidationException("GrantTokens may hold at most 10 tokens")
    for token in tokens:
        token_grant_id(token)


async def grants_of(db: Any, key_id: str, grantee: str) -> list[Grant]:
    async with db.read_now() as conn:
        rows = (
            await conn.execute(
                select(G).where(G.c.key_id == key_id, G.c.grantee_principal == grantee)
            )
        ).all()
    return [Grant.from_row(row) for row in rows]


def _check_principal(member: str, value: str | None) -> None:
    if value is not None and value.startswith("arn:") and not _PRINCIPAL_ARN.match(value):
        raise InvalidArnException(f"{member} {value} is not a valid principal ARN")


def _check_constraints(
    constraints: Mapping[str, Any] | None, key: KeyRecord
) -> dict[str, dict[str, str]] | None:
    if not constraints:
        return None
    out: dict[str, dict[str, str]] = {}
    for member in ("EncryptionContextEquals", "EncryptionContextSubset"):
        value = constraints.get(member)
        if value:
            if len(value) > 8:
                raise ValidationException(f"{member} may hold at most 8 pairs")
            out[member] = dict(value)
    if out and key.key_spec != SYMMETRIC:
        raise ValidationException(
            "Encryption context grant constraints are not supported for asymmetric KMS keys"
        )
    return out or None


class GrantOperations(KmsCore):
    async def create_grant(
        self,
        account_id: str,
        key_id: str,
        operations: list[str],
        *,
        grantee: str,
        retiring: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        self.require_usable(key)
        if not operations:
            raise ValidationException("Operations must name at least one grant operation")
        _check_principal("GranteePrincipal", grantee)
        _check_principal("RetiringPrincipal", retiring)
        stored_constraints = _check_constraints(constraints, key)
        ops = sorted(set(operations))
        values = {
            "key_id": key.id,
            "issuing_account": key.account_id,
            "name": name,
            "grantee_principal": grantee,
            "retiring_principal": retiring,
            "operations": json.dumps(ops),
            "constraints": json.dumps(stored_constraints, sort_keys=True)
            if stored_constraints
            else None,
        }
        async with self.db.write() as conn:
            if name is not None:
                # AWS's idempotence: the same named grant again is the existing grant.
                match = [G.c[k].is_(None) if v is None else G.c[k] == v for k, v in values.items()]
                same = (await conn.execute(select(G.c.id).where(*match))).first()
                if same is not None:
                    return {"GrantToken": new_token(same.id), "GrantId": same.id}
            await self._check_quota(conn, key)
            grant_id = secrets.token_hex(32)
            await conn.execute(G.insert().values(id=grant_id, created_at=self.clock(), **values))
        return {"GrantToken": new_token(grant_id), "GrantId": grant_id}

    async def _check_quota(self, conn: Any, key: KeyRecord) -> None:
        """AWS's grants-per-key quota. The key's row is locked first (PostgreSQL; SQLite
        serializes writers anyway), so concurrent CreateGrants cannot both take the last one."""
        await conn.execute(select(K.c.id).where(K.c.id == key.id).with_for_update())
        count = await conn.scalar(select(func.count()).select_from(G).where(G.c.key_id == key.id))
        if count >= self.grants_per_key:
            raise LimitExceededException(
                f"The KMS key {key.arn} already has {count} grants, the most a key may have "
                f"({self.grants_per_key}): retire or revoke grants before creating more"
            )

    async def list_grants(
        self,
        account_id: str,
        key_id: str,
        *,
        grant_id: str | None = None,
        grantee: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        if grant_id is not None and not _GRANT_ID.match(grant_id):
            raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")
        query = select(G).where(G.c.key_id == key.id)
        if grant_id is not None:
            query = query.where(G.c.id == grant_id)
        if grantee is not None:
            query = query.where(G.c.grantee_principal == grantee)
        return await self._page(query, limit, marker)

    async def list_retirable_grants(
        self,
        account_id: str,
        retiring: str,
        *,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        _check_principal("RetiringPrincipal", retiring)
        return await self._page(select(G).where(G.c.retiring_principal == retiring), limit, marker)

    async def _page(self, query: Any, limit: int | None, marker: str | None) -> dict[str, Any]:
        if marker is not None:
            if not _GRANT_ID.match(marker):
                raise InvalidMarkerException("Invalid marker")
            query = query.where(G.c.id > marker)
        count = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= count <= MAX_LIMIT:
            raise ValidationException(f"Limit must be between 1 and {MAX_LIMIT}")
        async with self.db.read_now() as conn:
            rows = (await conn.execute(query.order_by(G.c.id).limit(count + 1))).all()
        grants = [Grant.from_row(row) for row in rows[:count]]
        out: dict[str, Any] = {
            "Grants": [g.entry(self.region) for g in grants],
            "Truncated": len(rows) > count,
        }
        if len(rows) > count:
            out["NextMarker"] = grants[-1].id
        return out

    async def find_grant(
        self,
        account_id: str,
        *,
        token: str | None = None,
        key_id: str | None = None,
        grant_id: str | None = None,
    ) -> Grant:
        """The grant RetireGrant names, by token or by key and grant id."""
        if token is not None:
            grant_id = token_grant_id(token)
        elif key_id is None or grant_id is None:
            raise ValidationException("Specify either GrantToken or both KeyId and GrantId")
        elif not _GRANT_ID.match(grant_id):
            raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")
        query = select(G).where(G.c.id == grant_id)
        if key_id is not None:
            key = await self.key(account_id, key_id, allow_alias=False)
            query = query.where(G.c.key_id == key.id)
        async with self.db.read_now() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundException(f"Grant ID {grant_id} not found")
        return Grant.from_row(row)

    async def retire_grant(self, grant: Grant) -> dict[str, Any]:
        await self._delete_grant(grant.id)
        return {}

    async def revoke_grant(self, account_id: str, key_id: str, grant_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id, allow_alias=False)
        if not _GRANT_ID.match(grant_id):
            raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")
        async with self.db.write() as conn:
            result = await conn.execute(delete(G).where(G.c.key_id == key.id, G.c.id == grant_id))
        if not result.rowcount:
            raise NotFoundException(f"Grant ID {grant_id} not found")
        return {}

    async def _delete_grant(self, grant_id: str) -> None:
        async with self.db.write() as conn:
            result = await conn.execute(delete(G).where(G.c.id == grant_id))
        if not result.rowcount:
            raise NotFoundException(f"Grant ID {grant_id} not found")
