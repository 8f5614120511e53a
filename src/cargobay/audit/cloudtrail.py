"""The CloudTrail record of one call: the event a door hands over (`AuditEvent`), its record
JSON (what LookupEvents returns as CloudTrailEvent, byte for byte the encoding of
`cloudtrail_record`), and its event id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _text
from typing import Any

from cargobay import jsontext
from cargobay.audit.redact import encode_redacted, redact, service_of
from cargobay.iam.principal import Principal
from cargobay.requestids import random16

# One encoder for every record, made once (`cargobay.jsontext`).
_ENCODE = jsontext.compact


@dataclass(slots=True)
class Resource:
    type: str  # e.g. AWS::ECR::Repository
    name: str  # e.g. team/app
    arn: str | None = None


@dataclass(slots=True)
class AuditEvent:
    """One API call, as the door saw it."""

    account_id: str
    event_source: str  # ecr.amazonaws.com, iam.amazonaws.com, registry.cargobay (/v2/)
    event_name: str  # PutImage, CreateUser, ...
    read_only: bool
    region: str
    principal: Principal | None = None
    source_ip: str | None = None  # after trusted proxies (requestinfo.request_context)
    user_agent: str | None = None
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    resources: list[Resource] = field(default_factory=list)
    event_time: float | None = None
    event_id: str | None = None


def user_identity(principal: Principal | None, account_id: str) -> dict[str, Any]:
    if principal is None:
        return {"type": "Unknown", "accountId": account_id}
    root = principal.is_admin and principal.user_name == "root"
    identity = {
        "type": "Root" if root else "IAMUser",
        "arn": principal.arn,
        "accountId": principal.account_id,
        "accessKeyId": principal.access_key_id,
    }
    if not root:
        identity["userName"] = principal.user_name
    return identity


def cloudtrail_record(event: AuditEvent) -> dict[str, Any]:
    """The CloudTrail event JSON (what LookupEvents returns as CloudTrailEvent), redacted."""
    service = service_of(event.event_source)
    account = event.account_id
    # Keys in CloudTrail's order, assigned one by one (no intermediate dicts: every call's
    # record is built here).
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": user_identity(event.principal, account),
        "eventTime": _iso_time(event.event_time or time.time()),
        "eventSource": event.event_source,
        "eventName": event.event_name,
        "awsRegion": event.region,
        "sourceIPAddress": event.source_ip,
        "userAgent": event.user_agent,
        "requestParameters": redact(service, event.request_parameters),
        "responseElements": redact(service, event.response_elements),
    }
    if event.error_code:
        record["errorCode"] = event.error_code
        record["errorMessage"] = event.error_message or ""
    record["requestID"] = event.request_id
    record["eventID"] = event.event_id
    record["readOnly"] = event.read_only
    record["resources"] = [_resource(r, account) for r in event.resources]
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    record["eventCategory"] = "Management"
    return record


def record_json(event: AuditEvent) -> str:
    """`cloudtrail_record(event)` as compact JSON, written piece by piece: the same text as
    encoding the dict, without building it (every call's record is written here; the dict and
    its encoding were about 110,000 instructions of a read's ~830,000, callgrind). What repeats
    from call to call is encoded once: the caller's identity, the run from eventSource to
    userAgent, a single resource with the record's tail, the time's text within a second."""
    account = event.account_id
    service = service_of(event.event_source)
    parts = [
        '{"eventVersion":"1.08","userIdentity":',
        _identity_json(event.principal, account),
        ',"eventTime":"',
        _iso_time(event.event_time or time.time()),
        _call_json(event),
        encode_redacted(service, event.request_parameters, _ENCODE),
        ',"responseElements":',
        encode_redacted(service, event.response_elements, _ENCODE),
    ]
    if event.error_code:
        parts += [',"errorCode":', _json(event.error_code)]
        parts += [',"errorMessage":', _json(event.error_message or "")]
    parts += [
        ',"requestID":',
        _json(event.request_id),
        ',"eventID":',
        _json(event.event_id),
        ',"readOnly":true' if event.read_only else ',"readOnly":false',
        _tail_json(event.resources, account),
    ]
    return "".join(parts)


_CALLS: dict[tuple[Any, ...], str] = {}
_TAILS: dict[tuple[str | None, str, str], str] = {}
_CACHED = 256  # entries a cache of pieces holds before it starts over
_LONG = 256  # a user agent longer than this is encoded each time (the cache stays small)


def _call_json(event: AuditEvent) -> str:
    """From the time's closing quote to `"requestParameters":`."""
    key = (event.event_source, event.event_name, event.region, event.source_ip, event.user_agent)
    found = _CALLS.get(key)
    if found is None:
        found = "".join(
            [
                '","eventSource":',
                _json(event.event_source),
                ',"eventName":',
                _json(event.event_name),
                ',"awsRegion":',
                _json(event.region),
                ',"sourceIPAddress":',
                _json(event.source_ip),
                ',"userAgent":',
                _json(event.user_agent),
                ',"requestParameters":',
            ]
        )
        if len(event.user_agent or "") <= _LONG:
            if len(_CALLS) >= _CACHED:
                _CALLS.clear()
            _CALLS[key] = found
    return found


def _tail_json(resources: list[Resource], account: str) -> str:
    """From `,"resources":` to the record's end; remembered for a single resource."""
    if len(resources) != 1:
        return _tail(resources, account)
    one = resources[0]
    key = (one.arn, one.type, account)
    found = _TAILS.get(key)
    if found is None:
        if len(_TAILS) >= _CACHED:
            _TAILS.clear()
        found = _TAILS[key] = _tail(resources, account)
    return found


def _tail(resources: list[Resource], account: str) -> str:
    return "".join(
        [
            ',"resources":',
            _ENCODE([_resource(r, account) for r in resources]),
            ',"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":',
            _json(account),
            ',"eventCategory":"Management"}',
        ]
    )


def _json(value: Any) -> str:
    """One JSON value; a string (the usual case) without the encoder's dispatch."""
    return _text(value) if type(value) is str else _ENCODE(value)


_IDENTITIES: dict[tuple[Principal | None, str], str] = {}


def _identity_json(principal: Principal | None, account: str) -> str:
    key = (principal, account)
    found = _IDENTITIES.get(key)
    if found is None:
        if len(_IDENTITIES) >= 1024:
            _IDENTITIES.clear()
        found = _IDENTITIES[key] = _ENCODE(user_identity(principal, account))
    return found


def _resource(resource: Resource, account: str) -> dict[str, str]:
    """A resource as CloudTrail lists it: ARN, accountId and type, each only when set."""
    out: dict[str, str] = {}
    if resource.arn:
        out["ARN"] = resource.arn
    if account:
        out["accountId"] = account
    if resource.type:
        out["type"] = resource.type
    return out


_SECOND: list[Any] = [None, ""]  # the last whole second written, and its text


def _iso_time(epoch: float) -> str:
    """`events.model.iso_time` (whole seconds, UTC, with a Z) without building a datetime,
    remembered for the second (a batch's records share a few)."""
    second = epoch // 1
    if second != _SECOND[0]:
        _SECOND[:] = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return _SECOND[1]


def new_event_id(epoch: float) -> str:
    """An event id: a UUID version 7 (RFC 9562), the call's time in milliseconds then 74
    random bits, in the text form AWS's ids take. Ids made in time order go in at the end of
    the records' unique index, as the time indexes' entries do: a random (version 4) id's
    entry lands on a random page of a large index, which the batch's commit then writes out
    (and the WAL checkpoint copies) whole: on a table of 300,000 records the batch insert
    cost 45 µs a record with random ids, 19 with these (benchmarks/RESULTS.md, stop 26)."""
    h = f"{int(epoch * 1000) & 0xFFFFFFFFFFFF:012x}{random16().hex()[:20]}"
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
