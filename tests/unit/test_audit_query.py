"""The audit store on the selected metadata backend: buffered recording, LookupEvents filters,
newest-first pagination, account isolation, botocore's shapes, retention, and the CLI export."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.validate import ParamValidator

import pgcluster
from cargobay.audit import jobs, query
from cargobay.audit.record import AuditEvent, AuditRecorder, Resource, write
from cargobay.iam.principal import Principal
from cargobay.metadata import migrations
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend

ACCOUNT = "111111111111"
OTHER = "222222222222"
T0 = 1_700_000_000.0


async def _database(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    await migrations.upgrade(url)
    return url


def _call(i: int, name: str, user: str, account: str = ACCOUNT, **extra) -> AuditEvent:
    return AuditEvent(
        account_id=account,
        event_source="ecr.amazonaws.com",
        event_name=name,
        read_only=name.startswith(("Describe", "List", "Get")),
        region="us-east-1",
        principal=Principal(account, user, f"AKIA{user.upper()}"),
        source_ip="10.0.0.1",
        user_agent="aws-cli/2",
        request_parameters={"repositoryName": f"repo{i % 3}"},
        request_id=f"req-{i}",
        resources=[Resource("AWS::ECR::Repository", f"repo{i % 3}")],
        event_time=T0 + i,
        **extra,
    )


def test_lookup_filters_paginates_and_isolates_accounts(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            calls = [
                _call(
                    i,
                    ["CreateRepository", "PutImage", "DescribeImages"][i % 3],
                    ["alice", "bob"][i % 2],
                )
                for i in range(30)
            ]
            denied = _call(
                40, "DeleteRepository", "bob", error_code="AccessDenied", error_message="no"
            )
            foreign = _call(50, "PutImage", "alice", account=OTHER)
            await write(db, [*calls, denied, foreign])

            # Newest first, across pages, with no duplicates or gaps.
            seen: list[str] = []
            token = None
            while True:
                page, token = await query.lookup(db, ACCOUNT, max_results=7, next_token=token)
                seen += [r.event_id for r in page]
                if token is None:
                    break
            times = {e.event_id: e.event_time for e in [*calls, denied]}
            assert len(seen) == 31 == len(set(seen))
            assert [times[i] for i in seen] == sorted(times.values(), reverse=True)
            assert foreign.event_id not in seen  # only the account's own records

            async def names(*attrs, **kw) -> list[str]:
                page, _ = await query.lookup(db, ACCOUNT, attributes=attrs, **kw)
                return [r.event_name for r in page]

            assert await names(("EventName", "DeleteRepository")) == ["DeleteRepository"]
            assert len(await names(("Username", "alice"))) == 15
            assert len(await names(("AccessKeyId", "AKIABOB"))) == 16
            assert len(await names(("ReadOnly", "true"))) == 10
            assert len(await names(("ResourceName", "repo0"))) == 10
            assert len(await names(("ResourceType", "AWS::ECR::Repository"))) == 31
            assert await names(("EventId", denied.event_id)) == ["DeleteRepository"]
            assert len(await names(("EventSource", "ecr.amazonaws.com"))) == 31
            assert await names(start=T0 + 28, end=T0 + 29) == ["DescribeImages", "PutImage"]
            assert await names(("Username", "alice"), ("EventName", "PutImage"), start=T0) == [
                c.event_name
                for c in reversed(calls)
                if c.principal.user_name == "alice" and c.event_name == "PutImage"
            ]

            with pytest.raises(query.InvalidLookupAttributes):
                await query.lookup(db, ACCOUNT, attributes=[("Colour", "red")])
            with pytest.raises(query.InvalidLookupAttributes):
                await query.lookup(db, ACCOUNT, attributes=[("ReadOnly", "maybe")])
            with pytest.raises(query.InvalidTimeRange):
                await query.lookup(db, ACCOUNT, start=T0 + 5, end=T0)
            with pytest.raises(query.InvalidMaxResults):
                await query.lookup(db, ACCOUNT, max_results=51)
            with pytest.raises(query.InvalidNextToken):
                await query.lookup(db, ACCOUNT, next_token="garbage!")
            _, token = await query.lookup(db, ACCOUNT, max_results=2)
            with pytest.raises(query.InvalidNextToken):  # issued for other parameters
                await query.lookup(db, OTHER, max_results=2, next_token=token)
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_lookup_events_speaks_botocore_shapes(tmp_path: Path) -> None:
    async def scenario() -> dict:
        db = Database(await _database(tmp_path))
        try:
            await write(db, [_call(i, "PutImage", "alice") for i in range(3)])
            request = {
                "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
                "StartTime": T0,
                "MaxResults": 2,
            }
            first = await query.lookup_events(db, ACCOUNT, request, region="us-east-1")
            second = await query.lookup_events(
                db, ACCOUNT, {**request, "NextToken": first["NextToken"]}, region="us-east-1"
            )
            assert "NextToken" not in second
            assert len(first["Events"]) + len(second["Events"]) == 3
            with pytest.raises(query.InvalidLookupAttributes):
                await query.lookup_events(
                    db,
                    ACCOUNT,
                    {"LookupAttributes": request["LookupAttributes"] * 2},
                    region="us-east-1",
                )
            return first
        finally:
            await db.dispose()

    response = asyncio.run(scenario())
    session = botocore.session.get_session()
    model = session.get_service_model("cloudtrail")
    operation = model.operation_model("LookupEvents")
    # What boto3 would send is valid input; what we answer parses as boto3 would parse it.
    report = ParamValidator().validate(
        {"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}]},
        operation.input_shape,
    )
    assert not report.has_errors()
    parsed = create_parser("json").parse(
        {"status_code": 200, "headers": {}, "body": json.dumps(response).encode()},
        operation.output_shape,
    )
    event = parsed["Events"][0]
    assert set(event) == {
        "EventId",
        "EventName",
        "ReadOnly",
        "AccessKeyId",
        "EventTime",
        "EventSource",
        "Username",
        "Resources",
        "CloudTrailEvent",
    }
    assert event["ReadOnly"] == "false"
    assert event["EventTime"].timestamp() == T0 + 2
    assert event["Resources"] == [{"ResourceType": "AWS::ECR::Repository", "ResourceName": "repo2"}]
    assert json.loads(event["CloudTrailEvent"])["eventID"] == event["EventId"]
    assert set(parsed) >= {"Events", "NextToken"}


def test_buffered_recorder_writes_in_batches_and_on_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        recorder = AuditRecorder(db, flush_ms=20)
        try:
            for i in range(5):
                await recorder.record(_call(i, "PutImage", "alice"))
            for _ in range(200):  # the timer flushes without anyone asking
                page, _ = await query.lookup(db, ACCOUNT)
                if len(page) == 5:
                    break
                await asyncio.sleep(0.01)
            assert len(page) == 5
            await recorder.record(_call(9, "PutImage", "alice"))
            await recorder.close()  # a graceful stop writes what is buffered
            page, _ = await query.lookup(db, ACCOUNT)
            assert len(page) == 6
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_retention_purges_old_records(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            await write(db, [_call(i, "PutImage", "alice") for i in range(4)])
            removed = await jobs.purge(db, retention_days=1, now=T0 + 86400 + 1.5)
            assert removed == 2  # T0 and T0+1 are more than a day old
            page, _ = await query.lookup(db, ACCOUNT)
            assert [r.event_time for r in page] == [T0 + 3, T0 + 2]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_cli_exports_json_lines_for_one_principal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = dict(os.environ)
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        env["CARGOBAY_DATABASE"] = cluster.url(cluster.database_for(data_dir))
        env["CARGOBAY_AUTO_UPGRADE"] = "true"
        url = env["CARGOBAY_DATABASE"]
    else:
        url = f"sqlite:///{data_dir / 'metadata.db'}"

    async def seed() -> None:
        await migrations.upgrade(url)
        db = Database(url)
        try:
            now = time.time()
            events = [
                _call(i, "PutImage", ["alice", "bob"][i % 2], account="000000000000")
                for i in range(6)
            ]
            for i, event in enumerate(events):
                event.event_time = now - 60 * i
            old = _call(7, "PutImage", "alice", account="000000000000")
            old.event_time = now - 7200
            await write(db, [*events, old])
        finally:
            await db.dispose()

    asyncio.run(seed())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cargobay",
            "audit",
            "--data-dir",
            str(data_dir),
            "--since",
            "1h",
            "--principal",
            "alice",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3  # alice's within the hour, not the one two hours ago
    assert {r["userIdentity"]["userName"] for r in records} == {"alice"}
    assert [r["eventTime"] for r in records] == sorted(
        (r["eventTime"] for r in records), reverse=True
    )


def test_a_record_the_database_refuses_does_not_block_its_batch(tmp_path: Path) -> None:
    """One record that cannot be written (here: parameters that are not JSON) is dropped after
    the batch fails; the others are written, not retried forever; NUL in a name is replaced."""

    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            recorder = AuditRecorder(db, flush_ms=10_000)
            await recorder.record(_call(1, "PutImage", "alice"))
            bad = _call(2, "PutImage", "bob")
            bad.request_parameters = {"x": {1, 2}}
            await recorder.record(bad)
            odd = _call(3, "DescribeImages", "carol")
            odd.resources = [Resource("AWS::ECR::Repository", "a\x00b" + "c" * 2000)]
            await recorder.record(odd)
            await recorder.flush()
            assert recorder.dropped == 1 and recorder._buffer == []
            records, _ = await query.lookup(db, ACCOUNT)
            assert sorted(r.user_name for r in records) == ["alice", "carol"]
            (carol,) = [r for r in records if r.user_name == "carol"]
            ((_, name),) = carol.resources
            assert name.startswith("a\ufffdbc") and len(name) == 1024
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_lookup_events_is_regional(tmp_path: Path) -> None:
    """LookupEvents answers the records of the region it is called in (CloudTrail's event
    history is regional); a page token of one region is refused in another."""

    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            calls = [_call(i, "PutImage", "alice") for i in range(4)]
            for call in calls[2:]:
                call.region = "eu-west-1"
            await write(db, calls)
            here = await query.lookup_events(db, ACCOUNT, {}, region="us-east-1")
            there = await query.lookup_events(db, ACCOUNT, {"MaxResults": 1}, region="eu-west-1")
            assert [e["EventId"] for e in here["Events"]] == [c.event_id for c in calls[1::-1]]
            assert [e["EventId"] for e in there["Events"]] == [calls[3].event_id]
            assert json.loads(there["Events"][0]["CloudTrailEvent"])["awsRegion"] == "eu-west-1"
            with pytest.raises(query.InvalidNextToken):
                await query.lookup_events(
                    db, ACCOUNT, {"NextToken": there["NextToken"]}, region="us-east-1"
                )
            everywhere, _ = await query.lookup(db, ACCOUNT)  # the CLI's default: all regions
            assert len(everywhere) == 4
        finally:
            await db.dispose()

    asyncio.run(scenario())
