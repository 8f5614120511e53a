"""The audit flush's cheaper paths store and say exactly what the plain ones did: a batch's
multi-row inserts (run in a thread on a SQLite file), time-ordered event ids, the redaction
that skips values with nothing to redact, and the record JSON's remembered pieces."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_audit_write import ACCOUNT, _database, _events, _SqlAlchemyOnly, _stored

import pgcluster
from cargobay import jsontext
from cargobay.audit import cloudtrail, record
from cargobay.audit.record import AuditEvent, Resource, cloudtrail_record, record_json, write
from cargobay.audit.redact import SENSITIVE, encode_redacted, redact
from cargobay.iam.principal import Principal
from cargobay.metadata import roundtrips

pytestmark = pytest.mark.backend


def _many(count: int) -> list[AuditEvent]:
    """`count` events like `_events()`' (each kind in turn), with ids of their own."""
    out = []
    for index in range(count):
        event = _events()[index % 3]
        out.append(
            dataclasses.replace(
                event,
                event_id=f"00000000-0000-0000-0000-{index:012d}",
                event_time=(event.event_time or 0) + index,
                resources=[*event.resources, Resource("AWS::ECR::Repository", f"r{index}")],
            )
        )
    return out


def test_a_batch_written_in_the_thread_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    count = record.OFF_LOOP_ROWS * 12 + 7  # over MAX_BATCH too: `write` takes what it is given

    async def scenario() -> None:
        fast, plain = await _database(tmp_path, "fast"), await _database(tmp_path, "plain")
        try:
            with roundtrips.counting() as counted:
                await write(fast, _many(count))
            with roundtrips.counting() as plain_counted:
                await write(_SqlAlchemyOnly(plain), _many(count))  # type: ignore[arg-type]
            assert counted.value == plain_counted.value > 0
            stored = await _stored(fast)
            assert stored == await _stored(plain)
            records, resources = stored
            assert len(records) == count
            # each its own resource, plus the first kind's repository named twice (one row)
            # and the second kind's user
            assert len(resources) == count + (count + 2) // 3 + (count + 1) // 3
            fresh = AuditEvent(ACCOUNT, "ecr.amazonaws.com", "BatchGetImage", True, "us-east-1")
            await write(fast, [fresh])  # the database is usable after it
            assert len((await _stored(fast))[0]) == count + 1
        finally:
            await fast.dispose()
            await plain.dispose()

    asyncio.run(scenario())


def test_a_failed_batch_in_the_thread_writes_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, "dup")
        try:
            events = _many(record.OFF_LOOP_ROWS * 2)
            await write(db, events[-1:])
            with pytest.raises(Exception):  # noqa: B017 - the driver's or SQLAlchemy's error
                await write(db, _many(record.OFF_LOOP_ROWS * 2))  # the last id again
            records, _ = await _stored(db)
            assert len(records) == 1
            await write(db, _many(record.OFF_LOOP_ROWS * 2)[:-1])  # and writes after it
            records, _ = await _stored(db)
            assert len(records) == record.OFF_LOOP_ROWS * 2
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_event_ids_are_uuid7_of_the_event_time() -> None:
    epoch = 1_764_525_600.123
    times = [epoch + i / 500 for i in range(1000)]
    ids = [cloudtrail.new_event_id(t) for t in times]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # one every 2 ms here: in time order
    for index, text in enumerate(ids):
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == int(times[index] * 1000)


def test_event_ids_differ_in_a_forked_child() -> None:
    cloudtrail.new_event_id(1.0)  # random digits drawn before the fork
    read, written = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(written, cloudtrail.new_event_id(1.0).encode())
        os._exit(0)
    os.close(written)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert len(child) == 36 and child != cloudtrail.new_event_id(1.0)


_KEYS = st.sampled_from(
    [
        *("repositoryName", "imageTag", "Password", "SECRETSTRING", "policyText"),
        *("imageManifest", "Plaintext", "Policy", "\u212aey", "Private\u212aey", "ke\u0131"),
        *("x", "ñame"),
    ]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    service=st.sampled_from([*SENSITIVE, "cloudtrail", ""]),
    value=st.dictionaries(_KEYS, _VALUES, max_size=5) | st.none(),
)
def test_redacted_encoding_is_the_walks(service: str, value: object) -> None:
    walked = "null" if value is None else jsontext.compact(redact(service, value))
    assert encode_redacted(service, value, jsontext.compact) == walked


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(["ecr.amazonaws.com", "iam.amazonaws.com", "kms.amazonaws.com"]),
    name=st.sampled_from(["BatchGetImage", "PutImage"]),
    region=st.sampled_from(["us-east-1", "eu-west-1"]),
    ip=st.sampled_from([None, "10.0.0.1"]),
    agent=st.sampled_from([None, "aws-cli/2", "é\u2028", "long/" * 80]),
    parameters=st.dictionaries(_KEYS, _VALUES, max_size=3) | st.none(),
    resources=st.lists(
        st.builds(
            Resource,
            st.sampled_from(["AWS::ECR::Repository", ""]),
            st.sampled_from(["a", "b/c"]),
            st.sampled_from([None, "", "arn:a", "arn:b"]),
        ),
        max_size=2,
    ),
    account=st.sampled_from(["111111111111", "222222222222"]),
    time=st.floats(min_value=0, max_value=4_102_444_799),
)
def test_the_record_json_with_remembered_pieces_is_the_encoded_record(
    source, name, region, ip, agent, parameters, resources, account, time
) -> None:
    principal = Principal(account, "alice", "AKIAALICE")
    event = AuditEvent(
        account, source, name, name.startswith("Batch"), region, principal, ip, agent,
        parameters, request_id="r", resources=resources, event_time=time, event_id="e",
    )  # fmt: skip
    assert record_json(event) == jsontext.compact(cloudtrail_record(event))


def test_stored_record_ids_are_the_records_event_ids(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, "ids")
        try:
            events = [
                AuditEvent(ACCOUNT, "ecr.amazonaws.com", "BatchGetImage", True, "us-east-1")
                for _ in range(record.OFF_LOOP_ROWS + 1)
            ]
            await write(db, events)
            records, _ = await _stored(db)
            assert sorted(r[0] for r in records) == sorted(e.event_id for e in events)
            assert all(uuid.UUID(r[0]).version == 7 for r in records)
        finally:
            await db.dispose()

    if pgcluster.backend() == "postgres":
        pytest.skip("the same on PostgreSQL: the SQLAlchemy path, tested above")
    asyncio.run(scenario())
