"""Reading the audit trail with CloudTrail's LookupEvents semantics: one account's records only,
a time range, attribute filters, newest first, and a pagination token tied to the filters.

`lookup_events(db, account_id, request)` takes and returns botocore's `cloudtrail` shapes
(LookupEventsRequest -> LookupEventsResponse): it is the whole handler a door needs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database

ATTRIBUTE_KEYS = (
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
)
MAX_RESULTS = 50


class AuditQueryError(ValueError):
    """A LookupEvents request CloudTrail would refuse; `code` is its error shape's name."""

    code = "InvalidParameterException"


class InvalidLookupAttributes(AuditQueryError):
    code = "InvalidLookupAttributesException"


class InvalidTimeRange(AuditQueryError):
    code = "InvalidTimeRangeException"


class InvalidMaxResults(AuditQueryError):
    code = "InvalidMaxResultsException"


class InvalidNextToken(AuditQueryError):
    code = "InvalidNextTokenException"


class InvalidEventCategory(AuditQueryError):
    code = "InvalidEventCategoryException"


@dataclass
class Record:
    id: int
    event_id: str
    event_time: float
    event_name: str
    event_source: str
    read_only: bool
    user_name: str | None
    access_key_id: str | None
    record: str
    resources: list[tuple[str, str]]

    def shape(self) -> dict[str, Any]:
        """botocore's cloudtrail `Event`."""
        event: dict[str, Any] = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
        }
        if self.access_key_id:
            event["AccessKeyId"] = self.access_key_id
        event["EventTime"] = self.event_time
        event["EventSource"] = self.event_source
        if self.user_name:
            event["Username"] = self.user_name
        event["Resources"] = [{"ResourceType": t, "ResourceName": n} for t, n in self.resources]
        event["CloudTrailEvent"] = self.record
        return event


def _condition(key: str, value: str) -> Any:
    t, r = schema.audit_records, schema.audit_resources
    if key not in ATTRIBUTE_KEYS:
        raise InvalidLookupAttributes(f"{key!r} is not one of {', '.join(ATTRIBUTE_KEYS)}")
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise InvalidLookupAttributes(f"the value for {key} must be 1-2000 characters")
    if key == "ReadOnly":
        if value not in ("true", "false"):
            raise InvalidLookupAttributes("ReadOnly takes true or false")
        return t.c.read_only.is_(value == "true")
    if key in ("ResourceType", "ResourceName"):
        column = r.c.resource_type if key == "ResourceType" else r.c.resource_name
        return select(r.c.record_id).where(r.c.record_id == t.c.id, column == value).exists()
    column = {
        "EventId": t.c.event_id,
        "EventName": t.c.event_name,
        "Username": t.c.user_name,
        "EventSource": t.c.event_source,
        "AccessKeyId": t.c.access_key_id,
    }[key]
    return column == value


def _fingerprint(
    account_id: str, attributes: Sequence[tuple[str, str]], start, end, region: str | None
) -> str:
    text = json.dumps([account_id, sorted(attributes), start, end, region])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token(fingerprint: str, last: Record) -> str:
    data = json.dumps({"f": fingerprint, "t": last.event_time, "i": last.id})
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _untoken(token: str, fingerprint: str) -> tuple[float, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = float(data["t"]), int(data["i"])
        same = data["f"] == fingerprint
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidNextToken("the pagination token is not valid") from None
    if not same:
        raise InvalidNextToken("the pagination token was issued for other parameters")
    return position


async def lookup(
    db: Database,
    account_id: str,
    *,
    attributes: Sequence[tuple[str, str]] = (),
    start: float | None = None,
    end: float | None = None,
    max_results: int = MAX_RESULTS,
    next_token: str | None = None,
    page_limit: int = MAX_RESULTS,
    region: str | None = None,
) -> tuple[list[Record], str | None]:
    """One page of the account's records, newest first, and the token of the next page.
    Several attributes all apply (LookupEvents itself allows one); `page_limit` caps
    `max_results` (the CLI reads bigger pages than the API allows); `region`, when given,
    keeps that region's records only (LookupEvents is regional; the CLI may read all)."""
    if not 1 <= max_results <= page_limit:
        raise InvalidMaxResults(f"MaxResults must be between 1 and {page_limit}")
    if start is not None and end is not None and start > end:
        raise InvalidTimeRange("StartTime is after EndTime")
    t = schema.audit_records
    conditions = [t.c.account_id == account_id]
    if region is not None:
        conditions.append(t.c.region == region)
    conditions += [_condition(key, value) for key, value in attributes]
    if start is not None:
        conditions.append(t.c.event_time >= start)
    if end is not None:
        conditions.append(t.c.event_time <= end)
    fingerprint = _fingerprint(account_id, attributes, start, end, region)
    if next_token:
        at, last_id = _untoken(next_token, fingerprint)
        conditions.append(or_(t.c.event_time < at, and_(t.c.event_time == at, t.c.id < last_id)))
    query = (
        select(t)
        .where(*conditions)
        .order_by(t.c.event_time.desc(), t.c.id.desc())
        .limit(max_results + 1)
    )
    r = schema.audit_resources
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
        page = rows[:max_results]
        resources: dict[int, list[tuple[str, str]]] = {}
        if page:
            for res in (
                await conn.execute(
                    select(r)
                    .where(r.c.record_id.in_([row.id for row in page]))
                    .order_by(r.c.record_id, r.c.resource_type, r.c.resource_name)
                )
            ).all():
                resources.setdefault(res.record_id, []).append(
                    (res.resource_type, res.resource_name)
                )
    records = [
        Record(
            id=row.id,
            event_id=row.event_id,
            event_time=row.event_time,
            event_name=row.event_name,
            event_source=row.event_source,
            read_only=bool(row.read_only),
            user_name=row.user_name,
            access_key_id=row.access_key_id,
            record=row.record,
            resources=resources.get(row.id, []),
        )
        for row in page
    ]
    token = _token(fingerprint, records[-1]) if len(rows) > max_results else None
    return records, token


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTimeRange(f"{name} must be a timestamp")
    return float(value)


async def lookup_events(
    db: Database, account_id: str, request: dict[str, Any], *, region: str
) -> dict[str, Any]:
    """LookupEvents in `region` (the request's: CloudTrail's event history is regional):
    botocore's request shape in, its response shape out (JSON-ready: times as epoch seconds,
    as the AWS JSON protocol sends them)."""
    raw = request.get("LookupAttributes") or []
    if not isinstance(raw, list) or len(raw) > 1:
        raise InvalidLookupAttributes("LookupAttributes can contain only one item")
    attributes = []
    for item in raw:
        if not isinstance(item, dict) or "AttributeKey" not in item or "AttributeValue" not in item:
            raise InvalidLookupAttributes("an attribute needs AttributeKey and AttributeValue")
        attributes.append((item["AttributeKey"], item["AttributeValue"]))
    if request.get("EventCategory") not in (None, "insight"):
        raise InvalidEventCategory("EventCategory must be insight")
    if request.get("EventCategory") == "insight":
        return {"Events": []}  # cargobay records no Insights events
    start = _time(request.get("StartTime"), "StartTime")
    end = _time(request.get("EndTime"), "EndTime")
    max_results = request.get("MaxResults", MAX_RESULTS)
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidMaxResults("MaxResults must be an integer")
    records, token = await lookup(
        db,
        account_id,
        attributes=attributes,
        start=start,
        end=end,
        max_results=max_results,
        next_token=request.get("NextToken"),
        region=region,
    )
    response: dict[str, Any] = {"Events": [record.shape() for record in records]}
    if token:
        response["NextToken"] = token
    return response
