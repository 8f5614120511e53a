"""The audit batch insert: on a SQLite file it runs at the driver level (`audit.record.write`),
and must store exactly what the SQLAlchemy statements store, row for row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import pgcluster
from cargobay.audit import cloudtrail, record
from cargobay.audit.record import AuditEvent, Resource, write
from cargobay.events.model import iso_time
from cargobay.iam.principal import Principal
from cargobay.metadata import migrations, roundtrips, schema
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend

ACCOUNT = "111111111111"


async def _database(tmp_path: Path, name: str) -> Database:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path / name))
    else:
        url = f"sqlite:///{tmp_path / name}.db"
    await migrations.upgrade(url)
    return Database(url)


class _NoDriver:
    """A write transaction that offers only the SQLAlchemy surface."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Any:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self._conn.execute(statement, parameters)


class _SqlAlchemyOnly:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_NoDriver]:
        async with self.db.write() as conn:
            yield _NoDriver(conn)


def _events() -> list[AuditEvent]:
    alice = Principal(ACCOUNT, "alice", "AKIAALICE")
    repo = Resource("AWS::ECR::Repository", "team/app", "arn:aws:ecr:us-east-1:1:repository/a")
    return [
        AuditEvent(
            ACCOUNT,
            "ecr.amazonaws.com",
            "BatchGetImage",
            True,
            "us-east-1",
            alice,
            "10.0.0.1",
            "aws-cli/2",
            {"repositoryName": "team/app", "imageIds": [{"imageTag": "v1"}]},
            {"images": [{"imageManifest": "{}"}]},
            request_id="r1",
            resources=[repo, repo],  # named twice: one row
            event_time=1_700_000_000.75,
            event_id="00000000-0000-0000-0000-000000000001",
        ),
        AuditEvent(
            ACCOUNT,
            "iam.amazonaws.com",
            "CreateAccessKey",
            False,
            "us-east-1",
            None,
            None,
            None,
            {"UserName": "bob"},
            {"AccessKey": {"SecretAccessKey": "s3cr3t"}},
            error_code="AccessDenied",
            error_message=None,
            request_id="r2",
            resources=[Resource("AWS::IAM::User", "b\x00ob" + "x" * 2000)],
            event_time=1_700_000_001.0,
            event_id="00000000-0000-0000-0000-000000000002",
        ),
        AuditEvent(
            ACCOUNT,
            "registry.cargobay",
            "PutImage",
            False,
            "us-east-1",
            alice,
            event_time=1_700_000_002.0,
            event_id="00000000-0000-0000-0000-000000000003",
        ),
    ]


async def _stored(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    t, r = schema.audit_records, schema.audit_resources
    async with db.read() as conn:
        records = (
            await conn.execute(select(*(c for c in t.c if c.name != "id")).order_by(t.c.event_id))
        ).all()
        resources = (
            await conn.execute(
                select(t.c.event_id, r.c.resource_type, r.c.resource_name)
                .join(t, t.c.id == r.c.record_id)
                .order_by(t.c.event_id, r.c.resource_type, r.c.resource_name)
            )
        ).all()
    return [tuple(row) for row in records], [tuple(row) for row in resources]


def test_driver_batch_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    async def scenario() -> None:
        fast, plain = await _database(tmp_path, "fast"), await _database(tmp_path, "plain")
        try:
            if pgcluster.backend() != "postgres":
                async with fast.write() as conn:  # the SQLite file's writer offers its driver
                    assert callable(getattr(conn, "driver", None))
            with roundtrips.counting() as count:
                await write(fast, _events())
            with roundtrips.counting() as plain_count:
                await write(_SqlAlchemyOnly(plain), _events())  # type: ignore[arg-type]
            assert count.value == plain_count.value > 0  # the driver's statements count too
            stored = await _stored(fast)
            assert stored == await _stored(plain)
            records, resources = stored
            assert len(records) == 3
            assert [r[0] for r in resources] == [
                "00000000-0000-0000-0000-000000000001",
                "00000000-0000-0000-0000-000000000002",
            ]
            assert resources[1][2] == ("b\ufffdob" + "x" * 2000)[:1024]
            names = [c.name for c in schema.audit_records.c if c.name != "id"]
            record, region = names.index("record"), names.index("region")
            assert {row[region] for row in records} == {"us-east-1"}
            second = json.loads(records[1][record])
            assert second["responseElements"]["AccessKey"]["SecretAccessKey"] == (
                "HIDDEN_DUE_TO_SECURITY_REASONS"
            )
            assert second["errorCode"] == "AccessDenied" and second["errorMessage"] == ""
            assert second["userIdentity"] == {"type": "Unknown", "accountId": ACCOUNT}
            first = json.loads(records[0][record])
            assert first["eventTime"] == "2023-11-14T22:13:20Z"
            assert records[0][5] in (True, 1) and records[1][5] in (False, 0)
        finally:
            await fast.dispose()
            await plain.dispose()

    asyncio.run(scenario())


def test_a_failed_driver_batch_writes_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, "dup")
        try:
            await write(db, _events()[:1])
            with pytest.raises(Exception):  # noqa: B017 - the driver's or SQLAlchemy's error
                await write(db, _events())  # the first event id again: unique violation
            records, resources = await _stored(db)
            assert len(records) == 1 and len(resources) == 1
        finally:
            await db.dispose()

    asyncio.run(scenario())


@pytest.mark.parametrize("epoch", [0.0, 1_700_000_000.999, 951_782_400.5, 4_102_444_799.0])
def test_event_time_matches_iso_time(epoch: float) -> None:
    assert cloudtrail._iso_time(epoch) == iso_time(epoch)
    assert cloudtrail._iso_time(epoch) == iso_time(epoch)  # remembered for the second


def test_a_long_batch_lets_other_tasks_run_while_it_encodes(tmp_path: Path) -> None:
    """Encoding a batch yields to the event loop every ENCODE_CHUNK records, so requests in
    flight are not held for the whole batch; every record is still written, in one write."""

    async def scenario() -> None:
        db = await _database(tmp_path, "chunks")
        turns = 0
        stop = asyncio.Event()

        async def other_request() -> None:
            nonlocal turns
            while not stop.is_set():
                turns += 1
                await asyncio.sleep(0)

        count = record.ENCODE_CHUNK * 3 + 1
        events = [
            AuditEvent(ACCOUNT, "ecr.amazonaws.com", "BatchGetImage", True, "us-east-1")
            for _ in range(count)
        ]
        try:
            other = asyncio.create_task(other_request())
            await asyncio.sleep(0)
            before = turns
            await write(db, events)
            during = turns - before
            stop.set()
            await other
            assert during >= 3  # a turn between each two chunks
            records, _ = await _stored(db)
            assert len(records) == count
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_the_recorder_writes_at_most_max_batch_records_a_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, "batches")
        written: list[int] = []
        real_write = record.write

        async def counting_write(target: Database, events: list[AuditEvent]) -> None:
            written.append(len(events))
            await real_write(target, events)

        record.write = counting_write  # type: ignore[assignment]
        try:
            recorder = record.AuditRecorder(db, flush_ms=10_000)
            for _ in range(record.MAX_BATCH * 2 + 5):
                await recorder.record(
                    AuditEvent(ACCOUNT, "ecr.amazonaws.com", "GetAuthorizationToken", True, "x")
                )
            await recorder.close()
            assert sum(written) == record.MAX_BATCH * 2 + 5
            assert max(written) <= record.MAX_BATCH
            records, _ = await _stored(db)
            assert len(records) == record.MAX_BATCH * 2 + 5
        finally:
            record.write = real_write  # type: ignore[assignment]
            await db.dispose()

    asyncio.run(scenario())
