"""Managed signing on the service layer, in process: which pushes queue a signature (rules,
filters, artifacts, the registry's own pushes, re-pushes), the task signing once however often
it runs, a disabled KMS key recorded as FAILED, and the delete hook."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.jobs.queue import Task
from cargobay.metadata import schema
from cargobay.signing.configuration import COMPLETE, FAILED, IN_PROGRESS, TASK_KIND
from cargobay.signing.envelope import SIGNATURE_TYPE
from cargobay.signing.job import KMS_ERROR, ImageSigner
from cargobay.signing.profiles import PLATFORM, SigningProfiles
from service.harness import OCI_INDEX, OCI_MANIFEST, Registry, index_of, running, sha256

pytestmark = pytest.mark.backend


async def _push(registry: Registry, repo: str, tag: str = "1", manifest: bytes = b"") -> str:
    manifest = manifest or await registry.image(repo)
    reply = await registry.v2(
        "PUT", f"{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert reply.status == 201, reply
    return sha256(manifest)


async def _statuses(registry: Registry) -> dict[tuple[str, str], str]:
    s = schema.image_signing_statuses
    async with registry.services.db.read_now() as conn:
        rows = await conn.execute(select(s.c.digest, s.c.profile_arn, s.c.status))
        return {(row.digest, row.profile_arn): row.status for row in rows}


async def _tasks(registry: Registry) -> list[Task]:
    t = schema.tasks
    async with registry.services.db.read_now() as conn:
        rows = (await conn.execute(select(t).where(t.c.kind == TASK_KIND).order_by(t.c.id))).all()
    return [Task(r.id, r.kind, json.loads(r.payload), 1, r.created_at) for r in rows]


async def _signatures(registry: Registry, repo: str, digest: str) -> list[dict]:
    reply = await registry.v2("GET", f"{repo}/referrers/{digest}")
    return [m for m in reply.json()["manifests"] if m.get("artifactType") == SIGNATURE_TYPE]


def test_pushes_matching_a_rule_are_signed_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            account = services.settings.account_id
            profiles = SigningProfiles(services.db, services.settings.region, services.kms)
            arn = (await profiles.put(account, "release", platform_id=PLATFORM))["arn"]
            rule = {
                "signingProfileArn": arn,
                "repositoryFilters": [{"filter": "apps/*", "filterType": "WILDCARD_MATCH"}],
            }
            reply = await registry.ecr(
                "PutSigningConfiguration", {"signingConfiguration": {"rules": [rule]}}
            )
            assert reply.status == 200, reply.body

            image = await registry.image("apps/web")
            signed = await _push(registry, "apps/web", "1", image)
            await _push(registry, "other/web")
            assert await _statuses(registry) == {(signed, arn): IN_PROGRESS}
            [task] = await _tasks(registry)
            await _push(registry, "apps/web", "again", image)  # a new tag of the same image
            assert len(await _tasks(registry)) == 1

            signer = ImageSigner(services)
            await signer.handle(task)
            await signer.handle(task)  # a task run twice (a lost lease) signs once
            assert await _statuses(registry) == {(signed, arn): COMPLETE}
            [signature] = await _signatures(registry, "apps/web", signed)
            # The registry's own push of the signature queued nothing more.
            assert len(await _tasks(registry)) == 1
            assert (signature["digest"], arn) not in await _statuses(registry)

            # The profile's key disabled: the next signature fails with a KMS failure code.
            key_id = (await profiles.find(account, "release")).key_id
            await services.kms.disable_key(account, key_id)
            failing = await _push(registry, "apps/api")
            await signer.handle((await _tasks(registry))[-1])
            assert (await _statuses(registry))[(failing, arn)] == FAILED
            repo = await services.repositories.get(account, "apps/api")
            [status] = await services.signing.statuses(repo, failing)
            assert (
                status["failureCode"] == KMS_ERROR
                and "DisabledException" in status["failureReason"]
            ) or "disabled" in status["failureReason"].lower()

            # Deleting the image deletes its statuses.
            reply = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "apps/api", "imageIds": [{"imageDigest": failing}]},
            )
            assert reply.status == 200
            assert (failing, arn) not in await _statuses(registry)

    asyncio.run(scenario())


def test_an_index_and_its_platform_manifests_are_signed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            services = registry.services
            account = services.settings.account_id
            profiles = SigningProfiles(services.db, services.settings.region, services.kms)
            arn = (await profiles.put(account, "multi", platform_id=PLATFORM))["arn"]
            configuration = {"rules": [{"signingProfileArn": arn}]}  # no filter: every repo
            reply = await registry.ecr(
                "PutSigningConfiguration", {"signingConfiguration": configuration}
            )
            assert reply.status == 200, reply.body
            children = [await registry.image("multi/app") for _ in range(2)]
            for child in children:
                await _push(registry, "multi/app", sha256(child), child)
            index = index_of(*children)
            reply = await registry.v2(
                "PUT", "multi/app/manifests/1.0", index, {"Content-Type": OCI_INDEX}
            )
            assert reply.status == 201, reply
            signer = ImageSigner(services)
            for task in await _tasks(registry):
                await signer.handle(task)
            digests = {sha256(index), *(sha256(c) for c in children)}
            assert await _statuses(registry) == {(d, arn): COMPLETE for d in digests}
            [signature] = await _signatures(registry, "multi/app", sha256(index))
            reply = await registry.v2(
                "GET",
                f"multi/app/manifests/{signature['digest']}",
                headers={"Accept": OCI_MANIFEST},
            )
            assert reply.json()["subject"]["mediaType"] == OCI_INDEX

    asyncio.run(scenario())
