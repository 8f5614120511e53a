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


def test_blobs_are_re_encrypted_for_the_destination_key(tmp_path: Path) -> None:
    """A KMS source replicated to a plain repository (its blobs decrypted into the store)
    and to one a KMS template creates under another key (re-encrypted); both read back."""

    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            kms = services.encryption.kms
            reply = await registry.ecr(
                "CreateRepository",
                {"repositoryName": "sec/app", "encryptionConfiguration": {"encryptionType": "KMS"}},
            )
            assert reply.status == 200, reply
            await services.repositories.set_registry_policy(OTHER, json.dumps(GRANT))
            other_key = (await kms.create_key(OTHER, description="replicas"))["KeyMetadata"]["Arn"]
            await services.templates.create(
                OTHER,
                Template(
                    prefix="sec/kms",
                    applied_for=("REPLICATION",),
                    encryption_type="KMS",
                    kms_key=other_key,
                ),
            )
            destinations = [{"region": "us-east-1", "registryId": OTHER}]
            reply = await registry.ecr(
                "PutReplicationConfiguration",
                {"replicationConfiguration": {"rules": [{"destinations": destinations}]}},
            )
            assert reply.status == 200, reply
            for name in ("sec/app", "sec/kms/app"):
                if name != "sec/app":
                    await registry.ecr(
                        "CreateRepository",
                        {
                            "repositoryName": name,
                            "encryptionConfiguration": {"encryptionType": "KMS"},
                        },
                    )
                manifest = await registry.image(name)
                reply = await registry.v2(
                    "PUT", f"{name}/manifests/1.0", manifest, {"Content-Type": OCI_MANIFEST}
                )
                assert reply.status == 201
                assert await _drain(services) == ["done"]
                source = await services.repositories.get("000000000000", name)
                copy = await services.repositories.get(OTHER, name)
                assert source.kms_key_id is not None and copy.kms_key_id != source.kms_key_id
                found = await services.manifests.get(OTHER, name, "1.0")
                assert found.content == manifest
                for blob in json.loads(manifest)["layers"] + [json.loads(manifest)["config"]]:
                    size = blob["size"]
                    mine = services.blobs.read(source, blob["digest"], 0, size, size)
                    theirs = services.blobs.read(copy, blob["digest"], 0, size, size)
                    assert b"".join([c async for c in theirs]) == b"".join([c async for c in mine])
            plain = await services.repositories.get(OTHER, "sec/app")
            assert plain.kms_key_id is None
            kms_copy = await services.repositories.get(OTHER, "sec/kms/app")
            assert kms_copy.kms_key == other_key

    asyncio.run(scenario())
