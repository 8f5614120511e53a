"""The KMS door and encryption at rest, in process: the operation table, botocore-shaped
responses and errors, key-policy authorization, and blobs and manifests of a KMS repository
stored encrypted, refused under a disabled key, and reclaimed by GC."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from sqlalchemy import select

from cargobay.iam import permissions
from cargobay.jobs import gc
from cargobay.kms import door
from cargobay.metadata import schema
from cargobay.storage.encrypted import stored_address
from service.harness import Registry, running

pytestmark = pytest.mark.backend

KMS = "TrentService."
MODEL = botocore.session.get_session().get_service_model("kms")


async def kms(registry: Registry, operation: str, payload: dict[str, Any]) -> Any:
    reply = await registry.aws_json(KMS + operation, "kms", payload)
    if reply.status == 200:
        output = MODEL.operation_model(operation).output_shape
        members = set(output.members) if output is not None else set()
        assert set(reply.json()) <= members, (operation, set(reply.json()) - members)
    return reply


def test_the_operation_table_is_the_door() -> None:
    assert set(permissions.KMS_OPERATIONS) == set(door.HANDLERS)
    assert set(door.HANDLERS) <= set(MODEL.operation_names)
    for name, permission in permissions.KMS_OPERATIONS.items():
        if name != "ReEncrypt":
            assert permission.actions == (f"kms:{name}",)
        assert door.SERVICE.operations[name].action == permission.actions[0]


def test_kms_calls_errors_and_key_policies(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            created = await kms(registry, "CreateKey", {"Description": "t"})
            assert created.status == 200, created
            key_id = created.json()["KeyMetadata"]["KeyId"]
            plain = base64.b64encode(b"payload").decode()
            sealed = await kms(registry, "Encrypt", {"KeyId": key_id, "Plaintext": plain})
            blob = sealed.json()["CiphertextBlob"]
            opened = await kms(registry, "Decrypt", {"CiphertextBlob": blob})
            assert base64.b64decode(opened.json()["Plaintext"]) == b"payload"

            dry = await kms(
                registry, "Encrypt", {"KeyId": key_id, "Plaintext": plain, "DryRun": True}
            )
            assert dry.aws_type == "DryRunOperationException"
            missing = await kms(registry, "DescribeKey", {"KeyId": "alias/none"})
            assert (missing.status, missing.aws_type) == (400, "NotFoundException")
            # Input checked against botocore's model first: a value of the wrong JSON type
            # (or a blob that is not base64) is SerializationException, a broken constraint
            # (required, length, enum) ValidationException, as AWS JSON services answer.
            bad = await kms(registry, "Decrypt", {"CiphertextBlob": "***"})
            assert bad.aws_type == "SerializationException"
            unnamed = await kms(registry, "DescribeKey", {})
            assert unnamed.aws_type == "ValidationException"
            assert "'keyId'" in unnamed.json()["message"]
            for shapeless in ({"Description": 5}, {"Tags": "x"}, {"MultiRegion": "yes"}):
                reply = await kms(registry, "CreateKey", shapeless)
                assert (reply.status, reply.aws_type) == (400, "SerializationException"), shapeless
            for broken in ({"Description": "d" * 8193}, {"KeyUsage": "NOPE"}):
                reply = await kms(registry, "CreateKey", broken)
                assert (reply.status, reply.aws_type) == (400, "ValidationException"), broken

            # A key policy that does not delegate to the account refuses even the admin.
            lockout = (
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
                '{"AWS":"arn:aws:iam::000000000000:user/someone"},"Action":"kms:*",'
                '"Resource":"*"}]}'
            )
            put = await kms(
                registry,
                "PutKeyPolicy",
                {"KeyId": key_id, "Policy": lockout, "BypassPolicyLockoutSafetyCheck": True},
            )
            assert put.status == 200, put
            denied = await kms(registry, "DescribeKey", {"KeyId": key_id})
            assert denied.aws_type == "AccessDeniedException"

    asyncio.run(scenario())


def test_a_kms_repository_stores_ciphertext_and_refuses_a_disabled_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            key = (await kms(registry, "CreateKey", {})).json()["KeyMetadata"]
            made = await registry.ecr(
                "CreateRepository",
                {
                    "repositoryName": "sec/app",
                    "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": key["KeyId"]},
                },
            )
            assert made.json()["repository"]["encryptionConfiguration"] == {
                "encryptionType": "KMS",
                "kmsKey": key["Arn"],
            }
            layer = b"plaintext layer " * 10_000
            digest = await registry.push_blob("sec/app", layer)
            store = registry.services.store
            assert await store.stat(digest) is None  # no plaintext copy
            assert await store.stat(stored_address(digest, key["KeyId"])) > len(layer)
            got = await registry.v2("GET", f"sec/app/blobs/{digest}")
            assert got.status == 200 and got.body == layer
            ranged = await registry.v2(
                "GET", f"sec/app/blobs/{digest}", headers={"Range": "bytes=65530-65545"}
            )
            assert ranged.status == 206 and ranged.body == layer[65530:65546]

            # Mounts: plaintext into the KMS repository is encrypted on the way; the other
            # direction falls back to an upload session (the client sends the bytes).
            await registry.ecr("CreateRepository", {"repositoryName": "pub/app"})
            public = b"public layer " * 7_000
            public_digest = await registry.push_blob("pub/app", public)
            params = {"mount": public_digest, "from": "pub/app"}
            mounted = await registry.v2("POST", "sec/app/blobs/uploads/", params=params)
            assert mounted.status == 201, mounted
            assert await store.stat(stored_address(public_digest, key["KeyId"])) is not None
            again = await registry.v2("GET", f"sec/app/blobs/{public_digest}")
            assert again.body == public
            params = {"mount": digest, "from": "sec/app"}
            back = await registry.v2("POST", "pub/app/blobs/uploads/", params=params)
            assert back.status == 202, back

            manifest = await registry.image("sec/app")
            put = await registry.v2(
                "PUT",
                "sec/app/manifests/v1",
                manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert put.status == 201, put
            async with registry.services.db.read() as conn:
                stored = (
                    await conn.execute(select(schema.manifests.c.content).limit(1))
                ).scalar_one()
            assert bytes(stored) != manifest and b"schemaVersion" not in bytes(stored)
            pulled = await registry.v2(
                "GET",
                "sec/app/manifests/v1",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert pulled.body == manifest

            await kms(registry, "DisableKey", {"KeyId": key["KeyId"]})
            refused = await registry.v2("GET", f"sec/app/blobs/{digest}")
            assert (refused.status, refused.oci_code) == (403, "DENIED")
            assert refused.json()["errors"][0]["detail"]["keyState"] == "Disabled"
            batch = await registry.ecr(
                "BatchGetImage", {"repositoryName": "sec/app", "imageIds": [{"imageTag": "v1"}]}
            )
            assert batch.aws_type == "KmsException"
            assert batch.json()["kmsError"] == "DisabledException"
            await kms(registry, "EnableKey", {"KeyId": key["KeyId"]})

            # A flipped stored byte fails the read; wrong bytes are never served.
            path = store.local_path(stored_address(digest, key["KeyId"]))
            if path is not None:  # the filesystem store
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0x01
                path.write_bytes(bytes(data))
                tampered = await registry.v2(
                    "GET", f"sec/app/blobs/{digest}", headers={"Range": "bytes=0-99"}
                )
                assert (tampered.status, tampered.body[:100]) == (206, layer[:100])
                whole = await registry.v2("GET", f"sec/app/blobs/{digest}")
                assert whole.status == 500 or whole.body != layer
                assert layer not in whole.body and len(whole.body) < len(layer)

            # Unreferenced: GC removes the encrypted copies with the blob rows.
            await registry.ecr("DeleteRepository", {"repositoryName": "sec/app", "force": True})
            report = await gc.collect(
                registry.services.db, store, grace=0, upload_expiry=3600, now=10**10
            )
            assert report.copies_deleted >= 3  # the layer, the image's config and layer
            assert await store.stat(stored_address(digest, key["KeyId"])) is None

    asyncio.run(scenario())


def test_a_destroyed_key_leaves_its_content_unreadable(tmp_path: Path) -> None:
    """Crypto-shredding: once the deletion job destroys a key's material, the repository's
    blobs and manifests are refused as Deleted, never served."""

    async def scenario() -> None:
        async with running(tmp_path) as registry:
            key = (await kms(registry, "CreateKey", {})).json()["KeyMetadata"]
            await registry.ecr(
                "CreateRepository",
                {
                    "repositoryName": "gone/app",
                    "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": key["Arn"]},
                },
            )
            manifest = await registry.image("gone/app")
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            put = await registry.v2("PUT", "gone/app/manifests/v1", manifest, headers=headers)
            assert put.status == 201, put
            await kms(
                registry, "ScheduleKeyDeletion", {"KeyId": key["KeyId"], "PendingWindowInDays": 7}
            )
            destroyed = await registry.services.kms.destroy_due_keys(now=10**10)
            assert destroyed == [key["Arn"]]
            pulled = await registry.v2("GET", "gone/app/manifests/v1")
            assert (pulled.status, pulled.oci_code) == (403, "DENIED")
            assert pulled.json()["errors"][0]["detail"]["keyState"] == "Deleted"
            layer = json.loads(manifest)["layers"][0]["digest"]
            blob = await registry.v2("GET", f"gone/app/blobs/{layer}")
            assert (blob.status, blob.json()["errors"][0]["detail"]["keyState"]) == (
                403,
                "Deleted",
            )

    asyncio.run(scenario())
