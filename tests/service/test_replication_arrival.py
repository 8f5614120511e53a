"""A replica arriving from another deployment over `/v2/`, in-process: the manifest PUT that
completes it (marked by the replicating deployment) commits `ECR Replication Action` with the
push; its other PUTs do not; a malformed source region is refused before anything is
written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.metadata import schema
from service.harness import OCI_MANIFEST, running, sha256

pytestmark = pytest.mark.backend

REPLICA = {"X-Cargobay-Replication": "ap-south-1", "Content-Type": OCI_MANIFEST}
LAST = {**REPLICA, "X-Cargobay-Replicated-Image": "1"}


async def _replication_events(services) -> list[dict]:
    e = schema.events
    async with services.db.read() as conn:
        bodies = [json.loads(r.body) for r in await conn.execute(select(e.c.body))]
    return [b for b in bodies if b["detail-type"] == "ECR Replication Action"]


def test_the_completing_put_emits_replication_action(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            manifest = await registry.image("team/app")
            digest = sha256(manifest)
            reply = await registry.v2("PUT", f"team/app/manifests/{digest}", manifest, REPLICA)
            assert reply.status == 201, reply
            assert await _replication_events(services) == []
            reply = await registry.v2("PUT", "team/app/manifests/2.0", manifest, LAST)
            assert reply.status == 201, reply
            [event] = await _replication_events(services)
            assert (event["account"], event["region"]) == ("000000000000", "us-east-1")
            assert event["detail"] == {
                "result": "SUCCESS",
                "repository-name": "team/app",
                "image-digest": digest,
                "source-account": "000000000000",
                "action-type": "REPLICATE",
                "source-region": "ap-south-1",
                "image-tag": "2.0",
            }

            # A completing PUT must name a region: refused, and nothing is created.
            bad = {**LAST, "X-Cargobay-Replication": "1"}
            reply = await registry.v2("PUT", "fresh/app/manifests/1.0", manifest, bad)
            assert reply.status == 400 and reply.oci_code == "DENIED", reply
            assert await services.repositories.find("000000000000", "fresh/app") is None
            assert len(await _replication_events(services)) == 1

    asyncio.run(scenario())
