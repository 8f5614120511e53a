"""Replication within one deployment, in-process: a push queues one task per destination in
its own transaction; the task copies metadata only (no blob is written again), applies the
destination's REPLICATION template, and emits `ECR Replication Action` in the destination
account; without the destination's registry-policy grant the status is FAILED."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.jobs import queue
from cargobay.metadata import schema
from cargobay.metrics import render
from cargobay.registry.templates import Template
from cargobay.replication.job import Replicator
from cargobay.replication.service import TASK_KIND
from service.harness import OCI_MANIFEST, running, sha256

pytestmark = pytest.mark.backend

OTHER = "222222222222"
GRANT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": f"arn:aws:ecr:us-east-1:{OTHER}:repository/*",
        }
    ],
}


async def _drain(services) -> list[str]:
    replicator = Replicator(services, services.replication, {})
    outcomes = []
    try:
        for task in await queue.claim(services.db, [TASK_KIND], "test", limit=10):
            outcomes.append(await queue.run_task(services.db, task, "test", replicator.handle))
    finally:
        await replicator.close()
    return outcomes


def test_a_push_replicates_to_another_account_of_the_deployment(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            reply = await registry.ecr(
                "PutReplicationConfiguration",
                {
                    "replicationConfiguration": {
                        "rules": [{"destinations": [{"region": "us-east-1", "registryId": OTHER}]}]
                    }
                },
            )
            assert reply.status == 200, reply
            manifest = await registry.image("prod/app")
            digest = sha256(manifest)
            reply = await registry.v2(
                "PUT", "prod/app/manifests/1.0", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            # No grant yet: FAILED with the reason, and nothing created in the other account.
            assert await _drain(services) == ["failed"]
            status = await registry.ecr(
                "DescribeImageReplicationStatus",
                {"repositoryName": "prod/app", "imageId": {"imageTag": "1.0"}},
            )
            [entry] = status.json()["replicationStatuses"]
            assert (entry["status"], entry["failureCode"]) == ("FAILED", "ACCESS_DENIED")
            assert await services.repositories.find(OTHER, "prod/app") is None

            await services.repositories.set_registry_policy(OTHER, json.dumps(GRANT))
            await services.templates.create(
                OTHER,
                Template(
                    prefix="prod", applied_for=("REPLICATION",), image_tag_mutability="IMMUTABLE"
                ),
            )
            blob_rows = await _count(services, schema.blobs)
            reply = await registry.v2(
                "PUT", "prod/app/manifests/1.1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            assert await _drain(services) == ["done"]
            copy = await services.repositories.find(OTHER, "prod/app")
            assert copy is not None and copy.tag_mutability == "IMMUTABLE"
            found = await services.manifests.get(OTHER, "prod/app", "1.1")
            assert (found.digest, found.content) == (digest, manifest)
            assert await _count(services, schema.blobs) == blob_rows  # metadata only
            e = schema.events
            async with services.db.read() as conn:
                bodies = [json.loads(r.body) for r in await conn.execute(select(e.c.body))]
            replicated = [b for b in bodies if b["detail-type"] == "ECR Replication Action"]
            assert [(b["account"], b["detail"]["source-account"]) for b in replicated] == [
                (OTHER, "000000000000")
            ]
            assert replicated[0]["detail"]["image-digest"] == digest
            metrics = await render(services)
            assert 'cargobay_replication_images{status="COMPLETE"} 1' in metrics
            # The same image, pushed again once granted: its status moved from FAILED on.
            assert 'cargobay_replication_images{status="FAILED"} 0' in metrics

    asyncio.run(scenario())


async def _count(services, table) -> int:
    async with services.db.read() as conn:
        return len((await conn.execute(select(table))).all())
