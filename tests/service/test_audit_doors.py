"""Every door audits from its dispatcher: ECR calls (also failed ones), `/v2/` writes (and pulls
only with `audit_pulls`), and the generic AWS JSON door's calls, read back through CloudTrail's
LookupEvents on that same door."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.audit.door import TARGET_PREFIX
from cargobay.metadata import schema
from service.harness import OCI_MANIFEST, Registry, running, sha256

pytestmark = pytest.mark.backend


async def _names(services) -> list[str]:
    t = schema.audit_records
    async with services.db.read() as conn:
        rows = await conn.execute(select(t.c.event_name).order_by(t.c.id))
        return [row.event_name for row in rows]


async def _lookup(registry, **request) -> dict:
    reply = await registry.aws_json(TARGET_PREFIX + "LookupEvents", "cloudtrail", request)
    assert reply.status == 200, reply.body
    return reply.json()


def test_the_doors_audit_their_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, audit_flush_ms=0) as registry:
            reply = await registry.ecr("CreateRepository", {"repositoryName": "audited"})
            assert reply.status == 200
            reply = await registry.ecr("DescribeImages", {"repositoryName": "missing"})
            assert reply.aws_type == "RepositoryNotFoundException"
            manifest = await registry.image("audited")  # two monolithic blob uploads
            reply = await registry.v2(
                "PUT", "audited/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            reply = await registry.v2(
                "GET", "audited/manifests/v1", headers={"Accept": OCI_MANIFEST}
            )
            assert reply.status == 200
            reply = await registry.ecr(
                "UploadLayerPart",
                {
                    "repositoryName": "audited",
                    "uploadId": "0" * 32,
                    "partFirstByte": 0,
                    "partLastByte": 3,
                    "layerPartBlob": "c2VjcmV0",
                },
            )
            assert reply.status == 400
            assert await _names(registry.services) == [
                "CreateRepository",
                "DescribeImages",
                "CompleteBlobUpload",
                "CompleteBlobUpload",
                "PutManifest",
                "UploadLayerPart",
            ]

            found = await _lookup(
                registry,
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PutManifest"}],
            )
            (event,) = found["Events"]
            record = json.loads(event["CloudTrailEvent"])
            assert record["eventSource"] == "registry.cargobay"
            assert record["requestParameters"] == {
                "repositoryName": "audited",
                "imageTag": "v1",
                "mediaType": OCI_MANIFEST,
            }
            assert record["responseElements"] == {"imageDigest": sha256(manifest)}
            assert record["userIdentity"]["accessKeyId"] == registry.key
            assert event["Resources"] == [
                {"ResourceType": "AWS::ECR::Repository", "ResourceName": "audited"}
            ]
            found = await _lookup(
                registry,
                LookupAttributes=[
                    {"AttributeKey": "EventName", "AttributeValue": "DescribeImages"}
                ],
            )
            record = json.loads(found["Events"][0]["CloudTrailEvent"])
            assert record["errorCode"] == "RepositoryNotFoundException"
            assert record["responseElements"] is None
            found = await _lookup(
                registry,
                LookupAttributes=[
                    {"AttributeKey": "EventName", "AttributeValue": "UploadLayerPart"}
                ],
            )
            record = json.loads(found["Events"][0]["CloudTrailEvent"])
            assert "layerPartBlob" not in record["requestParameters"]
            # LookupEvents is itself audited, by the generic door, as CloudTrail does.
            names = await _names(registry.services)
            assert names[-3:] == ["LookupEvents"] * 3
            reply = await registry.aws_json(
                TARGET_PREFIX + "LookupEvents", "cloudtrail", {"MaxResults": 0}
            )
            assert reply.aws_type == "ValidationException"  # the model's min: 1
            reply = await registry.aws_json(
                TARGET_PREFIX + "LookupEvents", "cloudtrail", {"MaxResults": "5"}
            )
            assert reply.aws_type == "SerializationException"
            reply = await registry.aws_json(TARGET_PREFIX + "CreateTrail", "cloudtrail", {})
            assert reply.aws_type == "UnknownOperationException"


def test_pulls_are_audited_only_when_asked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, audit_flush_ms=0, audit_pulls=True) as registry:
            manifest = await registry.image("pulled")
            await registry.v2(
                "PUT", "pulled/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            reply = await registry.v2(
                "GET", "pulled/manifests/v1", headers={"Accept": OCI_MANIFEST}
            )
            assert reply.status == 200
            reply = await registry.v2(
                "HEAD", "pulled/manifests/v1", headers={"Accept": OCI_MANIFEST}
            )
            assert reply.status == 200
            assert (await _names(registry.services))[-2:] == ["PutManifest", "GetManifest"]

    asyncio.run(scenario())


def test_an_oversized_name_is_still_recorded(tmp_path: Path) -> None:
    """A refused call naming a 2000-character repository is recorded (its resource name cut to
    the column), and does not take the other records of its batch down with it."""

    async def scenario() -> None:
        async with running(tmp_path, audit_flush_ms=50) as registry:
            reply = await registry.ecr("DescribeImages", {"repositoryName": "a" * 2000})
            assert reply.status == 400
            reply = await registry.ecr("DescribeRepositories", {})
            assert reply.status == 200
            await asyncio.sleep(0.3)
            assert await _names(registry.services) == ["DescribeImages", "DescribeRepositories"]

    asyncio.run(scenario())


def test_a_call_on_another_accounts_registry_is_in_both_trails(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, audit_flush_ms=0) as registry:
            services = registry.services
            user = await services.credentials.create_user("222222222222", "ops", is_admin=True)
            key, secret = await services.credentials.add_access_key(user)
            ops = Registry(registry.client, services, key, secret)
            owner = services.settings.account_id
            reply = await ops.ecr(
                "DescribeRepositories", {"registryId": owner, "repositoryNames": ["team/app"]}
            )
            assert reply.aws_type == "AccessDeniedException", reply.body
            t = schema.audit_records
            async with services.db.read() as conn:
                rows = (
                    await conn.execute(
                        select(t.c.account_id, t.c.event_id, t.c.user_name).where(
                            t.c.event_name == "DescribeRepositories"
                        )
                    )
                ).all()
            assert sorted((r.account_id, r.user_name) for r in rows) == [
                (owner, "ops"),
                ("222222222222", "ops"),
            ]
            assert len({r.event_id for r in rows}) == 2
            # The owner's administrator reads it in its own trail.
            found = await _lookup(
                registry,
                LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "ops"}],
            )
            record = json.loads(found["Events"][0]["CloudTrailEvent"])
            assert record["recipientAccountId"] == owner
            assert record["userIdentity"]["accountId"] == "222222222222"
            assert record["errorCode"] == "AccessDenied"

    asyncio.run(scenario())
