"""Helpers for the replication tests across deployments: starting a source that knows where
other regions live, the replication configuration, statuses polled through the `aws` CLI, and
the registry policy a cross-account destination needs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from e2e.ecrhelp import aws
from server import Server

SOURCE_ACCOUNT = "000000000000"  # every deployment's administrator account


def source_for(data_dir: Path, destinations: dict[str, tuple[Server, tuple[str, str]]]) -> Server:
    """A us-east-1 deployment whose `[regions.*]` tables point at `destinations` (region ->
    (deployment, the key the source presents there)); tasks looked at every second."""
    table = {
        region: {"endpoint": server.url, "access_key_id": key, "secret_access_key": secret}
        for region, (server, (key, secret)) in destinations.items()
    }
    return Server(
        data_dir,
        env={"CARGOBAY_REGIONS": json.dumps(table), "CARGOBAY_TASKS_TICK_SECONDS": "1"},
    )


def configure(server: Server, tmp_path: Path, rules: list[dict]) -> dict:
    path = tmp_path / "replication.json"
    path.write_text(json.dumps({"rules": rules}))
    return aws(
        server, "ecr", "put-replication-configuration",
        "--replication-configuration", f"file://{path}",
    ).json  # fmt: skip


def statuses(server: Server, name: str, tag: str) -> dict[tuple[str, str], dict]:
    out = aws(
        server, "ecr", "describe-image-replication-status",
        "--repository-name", name, "--image-id", f"imageTag={tag}",
    ).json  # fmt: skip
    return {(s["region"], s["registryId"]): s for s in out["replicationStatuses"]}


def wait_statuses(
    server: Server,
    name: str,
    tag: str,
    want: dict[tuple[str, str], str],
    timeout: float = 120.0,
) -> dict[tuple[str, str], dict]:
    """Poll DescribeImageReplicationStatus until every destination has its wanted status."""
    deadline = time.monotonic() + timeout
    while True:
        found = statuses(server, name, tag)
        if {k: v["status"] for k, v in found.items()} == want:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"replication statuses stayed {found}, wanted {want}")
        time.sleep(1)


def replication_grant(account: str, region: str, source: str = SOURCE_ACCOUNT) -> str:
    """The registry policy a cross-account destination needs (as ECR asks)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "replication",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{source}:root"},
                    "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                    "Resource": f"arn:aws:ecr:{region}:{account}:repository/*",
                }
            ],
        }
    )


def boto(server: Server, service: str, region: str, creds: tuple[str, str] | None = None) -> Any:
    """A boto3 client for `service` of `server`, signing for `region`."""
    key, secret = creds or server.credentials
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )
