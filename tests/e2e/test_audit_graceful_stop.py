"""Audit records buffered in the workers survive a graceful stop (issue 19, stop 26): with a
flush interval longer than the test, every record is written by the stop's own flush (on a
SQLite file, a batch of this size is inserted in the audit's thread), and boto3's LookupEvents
returns each call once, with a time-ordered (UUID version 7) event id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import aws_client, client, unique
from server import Server

pytestmark = pytest.mark.backend

CALLS = 60  # over the record writer's thread threshold (`audit.record.OFF_LOOP_ROWS`)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(
        tmp_path / "data", workers=2, env={"CARGOBAY_AUDIT_FLUSH_MS": "600000"}
    ).start()
    yield started
    started.discard()


def _events(server: Server, name: str) -> list[dict]:
    trail = aws_client(server, "cloudtrail")
    pages = trail.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeRepositories"}]
    )
    return [
        event
        for page in pages
        for event in page["Events"]
        if json.loads(event["CloudTrailEvent"])["requestParameters"] == {"repositoryNames": [name]}
    ]


def test_buffered_records_are_written_by_a_graceful_stop(server: Server) -> None:
    ecr = client(server)
    name = unique("audit/stop")
    ecr.create_repository(repositoryName=name)
    for _ in range(CALLS):
        ecr.describe_repositories(repositoryNames=[name])
    assert _events(server, name) == []  # still buffered in the workers
    server.stop()  # SIGTERM: each worker flushes its buffer
    server.start()
    events = _events(server, name)
    assert len(events) == CALLS
    assert len({e["EventId"] for e in events}) == CALLS
    assert all(uuid.UUID(e["EventId"]).version == 7 for e in events)
    assert all(e["Username"] and e["ReadOnly"] == "true" for e in events)
