"""Building and storing audit records.

Hook for the doors (after the call, whether it succeeded, failed or was denied):

    await audit.record.record(services.db, AuditEvent(...), flush_ms=settings.audit_flush_ms)

Records are buffered per process and written in one transaction every `flush_ms` (default
200 ms) or every `MAX_BATCH` records: a request never waits for the audit insert, and on SQLite
one write-lock turn per batch instead of per call keeps pushes fast. A batch runs on the event
loop (~33 µs a record: 15 to encode, 18 to insert), so it is kept short for the requests in
flight: records are encoded `ENCODE_CHUNK` at a time with a turn of the loop between, and
inserted in a turn of their own; a transaction inserts at most `MAX_BATCH` (500 stalled a
worker serving 2,000 calls/s for ~17 ms every flush, the ECR API's p99). That insert turn is
still the longest a worker has under the ECR read load (~45 µs a record on a large table, 200
records ~9 ms of CPU). Smaller transactions shorten it but cost ~0.6 ms a commit: 25 records
held the loop under 2 ms but cost 20 µs more CPU a record, ~4% of a BatchGetImage, a
throughput trade not taken (benchmarks/RESULTS.md, stop 25). The trade-off, chosen
knowingly: a process killed with SIGKILL loses the records of its last `flush_ms` (graceful
stops flush; `audit_flush_ms = 0` writes each record before the call returns, at the cost of a
write transaction per call). The buffer only delays writes of records this process made; nothing
is decided in it, so a second node needs nothing from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _text
from typing import Any

from sqlalchemy import String, bindparam, insert, select

from cargobay import jsontext
from cargobay.audit.redact import redact, service_of
from cargobay.iam.principal import Principal
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hotwrite import HotWrite
from cargobay.requestids import new_id

log = logging.getLogger("cargobay.audit")

MAX_BATCH = 200
ENCODE_CHUNK = 50  # records encoded between two turns of the event loop
MAX_BUFFER = 20_000  # beyond this (database down for long), the oldest records are dropped
# One encoder for every record, made once (`cargobay.jsontext`).
_ENCODE = jsontext.compact


@dataclass
class Resource:
    type: str  # e.g. AWS::ECR::Repository
    name: str  # e.g. team/app
    arn: str | None = None


@dataclass
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
    its encoding were about 110,000 instructions of a read's ~830,000, callgrind). The
    caller's identity is encoded once per principal."""
    account = event.account_id
    parameters = redact(service_of(event.event_source), event.request_parameters)
    response = redact(service_of(event.event_source), event.response_elements)
    parts = [
        '{"eventVersion":"1.08","userIdentity":',
        _identity_json(event.principal, account),
        ',"eventTime":"',
        _iso_time(event.event_time or time.time()),
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
        "null" if parameters is None else _ENCODE(parameters),
        ',"responseElements":',
        "null" if response is None else _ENCODE(response),
    ]
    if event.error_code:
        parts += [',"errorCode":', _json(event.error_code)]
        parts += [',"errorMessage":', _json(event.error_message or "")]
    parts += [
        ',"requestID":',
        _json(event.request_id),
        ',"eventID":',
        _json(event.event_id),
        ',"readOnly":',
        "true" if event.read_only else "false",
        ',"resources":',
        _ENCODE([_resource(r, account) for r in event.resources]),
        ',"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":',
        _json(account),
        ',"eventCategory":"Management"}',
    ]
    return "".join(parts)


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


def _iso_time(epoch: float) -> str:
    """`events.model.iso_time` (whole seconds, UTC, with a Z) without building a datetime."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# The records' columns, in the order `_rows` builds each row's values.
_COLUMNS = (
    "event_id",
    "account_id",
    "event_time",
    "event_source",
    "event_name",
    "read_only",
    "user_name",
    "access_key_id",
    "region",
    "record",
)
_RESOURCE_PARAMS = ("event_id", "resource_type", "resource_name")

Row = tuple[Any, ...]


def _rows(event: AuditEvent) -> tuple[Row, list[Row]]:
    """A record's values (in `_COLUMNS` order) and its resources' (`_RESOURCE_PARAMS`)."""
    event.event_time = event.event_time or time.time()
    event_id = event.event_id = event.event_id or new_id()
    principal = event.principal
    row = (
        event_id,
        event.account_id,
        event.event_time,
        event.event_source,
        event.event_name,
        event.read_only,
        principal.user_name[:128] if principal else None,
        principal.access_key_id[:128] if principal else None,
        event.region,
        record_json(event),
    )
    # Names come from requests (also refused ones): cut to the columns' sizes and without NUL
    # (which PostgreSQL's text refuses), so one odd request cannot make its batch fail.
    resources = [
        (event_id, r.type[:64], r.name[:1024].replace("\x00", "\ufffd")) for r in event.resources
    ]
    return row, resources


# A record's resources, found by its event id: no ids to read back from the records' insert,
# so both inserts are plain executemany statements.
_t, _r = schema.audit_records, schema.audit_resources
_INSERT_RECORDS = insert(_t)
_INSERT_RESOURCES = insert(_r).from_select(
    ["record_id", "resource_type", "resource_name"],
    select(
        _t.c.id,
        bindparam("resource_type", type_=String),
        bindparam("resource_name", type_=String),
    ).where(_t.c.event_id == bindparam("event_id")),
)


_RECORDS = HotWrite.of(_INSERT_RECORDS, names=_COLUMNS)
_RESOURCES = HotWrite.of(_INSERT_RESOURCES, names=_RESOURCE_PARAMS)


async def write(db: Database, events: list[AuditEvent]) -> None:
    """Insert records (and the resources they name) in one transaction: two executemany
    statements, at the driver level on SQLite (`metadata.hotwrite`)."""
    if not events:
        return
    records: list[Row] = []
    named: list[Row] = []
    for index, event in enumerate(events):
        if index and not index % ENCODE_CHUNK:
            await asyncio.sleep(0)  # the requests in flight go on between chunks
        row, resources = _rows(event)
        records.append(row)
        if resources:
            named.extend(resources)
    # A resource named twice by one call is one row (the table's key); sorted, so concurrent
    # batches take their locks in one order.
    resources = sorted(set(named)) if named else []
    await asyncio.sleep(0)  # and between the encoding and the transaction
    async with db.write() as conn:
        await _RECORDS.run_many(conn, records)
        await _RESOURCES.run_many(conn, resources)


class AuditRecorder:
    """One process's buffer of records, flushed every `flush_ms` (see the module's note)."""

    def __init__(self, db: Database, flush_ms: int = 200) -> None:
        self.db = db
        self.flush_ms = flush_ms
        self._buffer: list[AuditEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self.dropped = 0

    async def record(self, event: AuditEvent) -> None:
        if self.flush_ms <= 0:
            await write(self.db, [event])
            return
        self._buffer.append(event)
        if len(self._buffer) > MAX_BUFFER:
            excess = len(self._buffer) - MAX_BUFFER
            del self._buffer[:excess]
            self.dropped += excess
            log.error("audit buffer full: dropped %d records", excess)
        if len(self._buffer) >= MAX_BATCH:
            self._schedule(0.0)
        elif self._timer is None:
            self._schedule(self.flush_ms / 1000)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
        if not batch:
            return
        try:
            await write(self.db, batch)
        except Exception:
            kept = await self._one_by_one(batch) if len(batch) > 1 else batch
            if kept:
                log.exception(
                    "writing %d audit records failed; keeping them for the next flush", len(kept)
                )
                self._buffer[:0] = kept
                self._schedule(max(self.flush_ms / 1000, 1.0))
                return
        if self._buffer:
            self._schedule(0.0 if len(self._buffer) >= MAX_BATCH else self.flush_ms / 1000)

    async def _one_by_one(self, batch: list[AuditEvent]) -> list[AuditEvent]:
        """After a failed batch: write each record alone. When some succeed, the database is up
        and the others are refused for what they hold: drop those (loudly) rather than retry
        them forever. When none does, the database is down: keep them all."""
        failed: list[AuditEvent] = []
        for event in batch:
            try:
                await write(self.db, [event])
            except Exception:
                failed.append(event)
        if len(failed) == len(batch):
            return batch
        for event in failed:
            log.error("dropped an audit record the database refuses: %s", event.event_name)
        self.dropped += len(failed)
        return []

    async def close(self) -> None:
        """Write what is buffered (graceful stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        while self._buffer:
            before = len(self._buffer)
            await self.flush()
            if len(self._buffer) >= before:  # the database refuses: give up, loudly
                log.error("lost %d audit records at shutdown", len(self._buffer))
                self._buffer.clear()


_recorders: weakref.WeakKeyDictionary[Database, AuditRecorder] = weakref.WeakKeyDictionary()


def recorder_for(db: Database, flush_ms: int = 200) -> AuditRecorder:
    """The process's recorder for a database (one per `Services`, built on first use)."""
    recorder = _recorders.get(db)
    if recorder is None:
        recorder = _recorders[db] = AuditRecorder(db, flush_ms)
    return recorder


async def record(db: Database, event: AuditEvent, *, flush_ms: int = 200) -> None:
    """Record one call: cheap (an append) unless `flush_ms` is 0."""
    await recorder_for(db, flush_ms).record(event)


async def close_for(db: Database) -> None:
    """Flush and forget the recorder of one database (its `Services` is closing)."""
    recorder = _recorders.pop(db, None)
    if recorder is not None:
        await recorder.close()


async def close_all() -> None:
    """Flush every recorder of this process (the worker calls this when it stops)."""
    for recorder in list(_recorders.values()):
        await recorder.close()
