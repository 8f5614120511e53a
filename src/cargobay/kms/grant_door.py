"""The KMS door's grant operations (CreateGrant, ListGrants, RetireGrant, RevokeGrant,
ListRetirableGrants): their input checked against botocore's `kms` model first, then
translated to `kms.grants`; and the authorization rules only grants have (RetireGrant decided
by the grant, CreateGrant through a grant no wider than that grant)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cargobay.awsjson.door import JsonCall
from cargobay.kms.errors import AccessDeniedException, ValidationException
from cargobay.kms.grants import Grant, at_least_as_strict, can_retire, check_tokens

Handler = Callable[[JsonCall, dict[str, Any]], Awaitable[dict[str, Any]]]
# Operations of this module, and the implemented ones whose input has GrantTokens.
OPERATIONS = frozenset(
    {"CreateGrant", "ListGrants", "RetireGrant", "RevokeGrant", "ListRetirableGrants"}
)
TOKEN_OPERATIONS = frozenset(
    {
        "CreateGrant",
        "Decrypt",
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GetPublicKey",
        "ReEncrypt",
        "Sign",
        "Verify",
    }
)


def validate(operation: str, payload: dict[str, Any]) -> None:
    """Grant tokens wherever they appear must be tokens this registry issued (the door has
    checked every input against botocore's shapes already)."""
    if operation in TOKEN_OPERATIONS:  # elsewhere an unknown member, ignored as AWS does
        check_tokens(payload.get("GrantTokens"))


def _one_principal(p: dict[str, Any], role: str, *, required: bool) -> str | None:
    arn, service = p.get(f"{role}Principal"), p.get(f"{role}ServicePrincipal")
    if arn is not None and service is not None:
        raise ValidationException(
            f"Specify either {role}Principal or {role}ServicePrincipal, not both"
        )
    if required and arn is None and service is None:
        raise ValidationException(f"{role}Principal is required")
    return arn if arn is not None else service


async def create_grant(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await call.services.kms.create_grant(
        call.account_id,
        p["KeyId"],
        list(p["Operations"]),
        grantee=_one_principal(p, "Grantee", required=True),
        retiring=_one_principal(p, "Retiring", required=False),
        constraints=p.get("Constraints"),
        name=p.get("Name"),
    )


async def list_grants(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await call.services.kms.list_grants(
        call.account_id,
        p["KeyId"],
        grant_id=p.get("GrantId"),
        grantee=_one_principal(p, "Grantee", required=False),
        limit=p.get("Limit"),
        marker=p.get("Marker"),
    )


async def list_retirable_grants(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    retiring = _one_principal(p, "Retiring", required=True)
    assert retiring is not None
    return await call.services.kms.list_retirable_grants(
        call.account_id, retiring, limit=p.get("Limit"), marker=p.get("Marker")
    )


async def _retired(call: JsonCall, p: dict[str, Any]) -> Grant:
    return await call.services.kms.find_grant(
        call.account_id, token=p.get("GrantToken"), key_id=p.get("KeyId"), grant_id=p.get("GrantId")
    )


async def retire_grant(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await call.services.kms.retire_grant(await _retired(call, p))


async def revoke_grant(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await call.services.kms.revoke_grant(call.account_id, p["KeyId"], p["GrantId"])


HANDLERS: dict[str, Handler] = {
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
    "ListRetirableGrants": list_retirable_grants,
}


async def authorize_retire(call: JsonCall, p: dict[str, Any]) -> None:
    """RetireGrant: the grant decides who may retire it, not the key policy."""
    grant = await _retired(call, p)
    principal = call.principal
    # An account administrator acts for the account (its root user) here.
    if not can_retire(grant, principal.arn, principal.account_id, principal.is_admin):
        raise AccessDeniedException(
            f"User: {principal.arn} is not authorized to perform: kms:RetireGrant on grant "
            f"{grant.id}: it is neither its retiring principal, a grantee allowed to retire "
            "it, nor its issuing account"
        )


def create_grant_check(p: dict[str, Any]) -> Callable[[Grant], bool]:
    """A grant that allows CreateGrant allows only grants no wider than itself."""
    operations = p.get("Operations") or []
    constraints = p.get("Constraints")
    return lambda parent: at_least_as_strict(operations, constraints, parent)
