"""The events the services emit, wired at build time: every push through either door is an
`ECR Image Action` PUSH, every delete a DELETE, a lifecycle expiry an `ECR Lifecycle Policy
Action`, each written in the transaction of its change (a push that fails emits nothing)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.lifecycle.job import expire_repository
from cargobay.lifecycle.policy import parse_policy
from cargobay.metadata import schema
from service.harness import OCI_CONFIG, OCI_MANIFEST, running, sha256

pytestmark = pytest.mark.backend


async def _events(services) -> list[dict]:
    e = schema.events
    async with services.db.read() as conn:
        rows = (await conn.execute(select(e.c.body).order_by(e.c.created_at, e.c.id))).all()
    return [json.loads(row.body) for row in rows]


def test_pushes_and_deletes_of_both_doors_emit_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            manifest = await registry.image("evented")
            digest = sha256(manifest)
            reply = await registry.v2(
                "PUT", "evented/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            reply = await registry.ecr(
                "PutImage",
                {"repositoryName": "evented", "imageManifest": manifest.decode(), "imageTag": "v2"},
            )
            assert reply.status == 200
            # A push the registry refuses emits nothing.
            reply = await registry.v2(
                "PUT",
                "evented/manifests/v3",
                b'{"schemaVersion": 2',
                {"Content-Type": OCI_MANIFEST},
            )
            assert reply.status == 400
            await registry.v2("DELETE", "evented/manifests/v1")
            reply = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "evented", "imageIds": [{"imageDigest": digest}]},
            )
            assert reply.status == 200 and reply.json()["imageIds"]

            events = await _events(registry.services)
            assert [e["detail-type"] for e in events] == ["ECR Image Action"] * 4
            assert {e["source"] for e in events} == {"aws.ecr"}
            assert {e["account"] for e in events} == {registry.services.settings.account_id}
            assert len({e["id"] for e in events}) == 4
            push = {
                "result": "SUCCESS",
                "repository-name": "evented",
                "image-digest": digest,
                "action-type": "PUSH",
                "manifest-media-type": OCI_MANIFEST,
                "artifact-media-type": OCI_CONFIG,
            }
            assert [e["detail"] for e in events] == [
                {**push, "image-tag": "v1"},
                {**push, "image-tag": "v2"},
                {
                    "result": "SUCCESS",
                    "repository-name": "evented",
                    "image-digest": digest,
                    "action-type": "DELETE",
                    "image-tag": "v1",
                },
                {
                    "result": "SUCCESS",
                    "repository-name": "evented",
                    "image-digest": digest,
                    "action-type": "DELETE",
                },
            ]

    asyncio.run(scenario())


def test_a_lifecycle_expiry_emits_a_lifecycle_policy_action(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            digests = []
            for tag in ("old", "new"):
                manifest = await registry.image("expiring")
                reply = await registry.v2(
                    "PUT", f"expiring/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
                )
                assert reply.status == 201
                digests.append(sha256(manifest))
            policy = parse_policy(
                json.dumps(
                    {
                        "rules": [
                            {
                                "rulePriority": 3,
                                "selection": {
                                    "tagStatus": "any",
                                    "countType": "imageCountMoreThan",
                                    "countNumber": 1,
                                },
                                "action": {"type": "expire"},
                            }
                        ]
                    }
                )
            )
            services = registry.services
            repo = await services.repositories.find(services.settings.account_id, "expiring")
            assert await expire_repository(services, repo, policy, time.time()) == 1
            expired = [e for e in await _events(services) if e["detail-type"] != "ECR Image Action"]
            assert len(expired) == 1
            detail = expired[0]["detail"]
            assert expired[0]["detail-type"] == "ECR Lifecycle Policy Action"
            assert detail["action-type"] == "EXPIRE" and detail["rule-priority"] == 3
            gone = detail["image-digest"]
            assert gone in digests
            assert detail["image-tags"] == ["old" if gone == digests[0] else "new"]
            # No `ECR Image Action` DELETE for an expiry (ECR sends none either).
            actions = [e["detail"]["action-type"] for e in await _events(services)]
            assert actions.count("DELETE") == 0

    asyncio.run(scenario())


def test_a_finished_scan_emits_an_image_scan_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            manifest = await registry.image("scanned")
            digest = sha256(manifest)
            reply = await registry.v2(
                "PUT", "scanned/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            services = registry.services
            repo = await services.repositories.get("000000000000", "scanned")
            reply = await registry.ecr(
                "StartImageScan", {"repositoryName": "scanned", "imageId": {"imageTag": "v1"}}
            )
            assert reply.status == 200, reply
            # What the scan task stores at the end, in one transaction with its event.
            await services.scans.record(
                repo.id, digest, "COMPLETE", "done", [], {"HIGH": 2, "LOW": 0}
            )
            scans = [e for e in await _events(services) if e["detail-type"] == "ECR Image Scan"]
            assert len(scans) == 1
            assert scans[0]["detail"] == {
                "scan-status": "COMPLETE",
                "repository-name": "scanned",
                "finding-severity-counts": {"HIGH": 2},
                "image-digest": digest,
                "image-tags": ["v1"],
            }
            assert scans[0]["source"] == "aws.ecr" and scans[0]["account"] == "000000000000"

    asyncio.run(scenario())


def test_a_cache_fill_emits_a_pull_through_cache_action(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            now = time.time()
            async with services.db.write() as conn:
                await conn.execute(
                    schema.pull_through_cache_rules.insert().values(
                        registry_id="000000000000",
                        prefix="hub",
                        upstream_url="registry-1.docker.io",
                        upstream_registry="docker-hub",
                        created_at=now,
                        updated_at=now,
                    )
                )
            manifest = await registry.image("elsewhere")
            repo, _ = await services.repositories.create("000000000000", "hub/library/alpine")
            await services.manifests.put_image(
                repo, manifest, OCI_MANIFEST, None, "3.20", lazy_blobs=True,
                origin="pull-through-cache",
            )  # fmt: skip
            events = await _events(services)
            fills = [e for e in events if e["detail-type"] == "ECR Pull Through Cache Action"]
            assert [f["detail"] for f in fills] == [
                {
                    "rule-version": "1",
                    "sync-status": "SUCCESS",
                    "ecr-repository-prefix": "hub",
                    "repository-name": "hub/library/alpine",
                    "upstream-registry-url": "registry-1.docker.io",
                    "image-tag": "3.20",
                    "image-digest": sha256(manifest),
                }
            ]
            # The cached image is also an ordinary PUSH in the repository, as ECR reports it.
            pushes = [e for e in events if e["detail"].get("repository-name") == repo.name]
            assert {e["detail-type"] for e in pushes} == {
                "ECR Image Action",
                "ECR Pull Through Cache Action",
            }

    asyncio.run(scenario())
