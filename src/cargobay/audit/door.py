"""CloudTrail's LookupEvents over the audit trail, through the generic AWS JSON door, so
`aws cloudtrail lookup-events --endpoint-url ...` and boto3's `cloudtrail` client read it.

Only LookupEvents is served. A caller reads its own account's records only, and only as an
administrator or with an identity policy that allows `cloudtrail:LookupEvents` (on `*`, the
only resource CloudTrail accepts for it); the call itself is audited by the door, as
CloudTrail records its own LookupEvents calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cargobay import regions
from cargobay.audit.query import AuditQueryError, lookup_events
from cargobay.awsjson.door import JsonCall, JsonService, Operation

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
LOOKUP_EVENTS = "cloudtrail:LookupEvents"


@dataclass(frozen=True, slots=True)
class TrailResource:
    """What LookupEvents is authorized on: every trail record of one account (`*`)."""

    account_id: str

    @property
    def arn(self) -> str:
        return "*"


async def authorize(call: JsonCall, payload: dict[str, Any]) -> None:
    action = SERVICE.operations[call.operation].action
    resource = TrailResource(call.account_id)
    await call.services.authorizer.require(call.principal, action, resource, call.context())


async def lookup(call: JsonCall, payload: dict[str, Any]) -> dict[str, Any]:
    region = regions.current(call.services.settings.region)  # the request's SigV4 scope
    return await lookup_events(call.services.db, call.account_id, payload, region=region)


def map_error(exc: Exception) -> tuple[str, int] | None:
    if isinstance(exc, AuditQueryError):
        return exc.code, 400
    return None


SERVICE = JsonService(
    target_prefix=TARGET_PREFIX,
    signing_name="cloudtrail",
    operations={"LookupEvents": Operation(lookup, LOOKUP_EVENTS, "`*` (the caller's account)")},
    authorize=authorize,
    map_error=map_error,
    shapes="cloudtrail",
)
