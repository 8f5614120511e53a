"""KmsService, the KMS API's business rules, on the selected metadata backend: responses shaped
as botocore's `kms` model, key states, rotation, deletion (crypto-shredding), aliases, policies,
tags, signatures, and material sealed in the database."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from cargobay.kms import errors
from cargobay.kms.core import DAY
from cargobay.kms.service import KmsService
from cargobay.metadata import schema
from kmshelp import ACCOUNT, OTHER_ACCOUNT, Clock, assert_output_shape, kms_model, kms_service

pytestmark = pytest.mark.backend

Scenario = Callable[[KmsService, Clock], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        clock = Clock()
        kms = await kms_service(tmp_path, clock)
        try:
            await scenario(kms, clock)
        finally:
            await kms.db.dispose()

    asyncio.run(main())


async def _key(kms: KmsService, **kwargs: Any) -> str:
    created = await kms.create_key(ACCOUNT, **kwargs)
    assert_output_shape("CreateKey", created)
    return created["KeyMetadata"]["KeyId"]


def test_every_error_is_named_as_in_the_kms_model() -> None:
    names = set(kms_model().shape_names)
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.KmsError)
    ]
    assert len(classes) > 15
    for cls in classes:
        if cls is not errors.KmsError:
            assert cls.code == cls.__name__
            # ValidationException and AccessDeniedException are errors common to every AWS
            # JSON service, so the kms model does not list them.
            common = {"ValidationException", "AccessDeniedException"}
            assert cls.code in names | common, cls.code


def test_create_and_describe_match_the_model(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms, description="registry", tags=[{"TagKey": "team", "TagValue": "a"}])
        described = await kms.describe_key(ACCOUNT, key_id)
        assert_output_shape("DescribeKey", described)
        meta = described["KeyMetadata"]
        assert meta["Arn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
        assert (meta["KeyState"], meta["Enabled"], meta["KeyManager"]) == (
            "Enabled",
            True,
            "CUSTOMER",
        )
        assert (meta["KeySpec"], meta["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
        assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
        assert (meta["MultiRegion"], meta["Origin"], meta["CreationDate"]) == (
            False,
            "AWS_KMS",
            clock.now,
        )
        assert len(meta["CurrentKeyMaterialId"]) == 64
        assert (await kms.describe_key(ACCOUNT, meta["Arn"]))["KeyMetadata"]["KeyId"] == key_id
        signing = await _key(kms, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
        meta = (await kms.describe_key(ACCOUNT, signing))["KeyMetadata"]
        assert meta["SigningAlgorithms"] == ["ECDSA_SHA_256"] and "EncryptionAlgorithms" not in meta
        with pytest.raises(errors.ValidationException):
            await kms.create_key(ACCOUNT, key_spec="ECC_NIST_P256", key_usage="ENCRYPT_DECRYPT")
        with pytest.raises(errors.NotFoundException, match="does not exist"):
            await kms.describe_key(ACCOUNT, "11111111-2222-3333-4444-555555555555")
        with pytest.raises(errors.NotFoundException, match="Invalid keyId"):
            await kms.describe_key(ACCOUNT, "not-a-key")
        # Another account's key is not found by its bare id.
        with pytest.raises(errors.NotFoundException):
            await kms.describe_key(OTHER_ACCOUNT, key_id)
        listed = await kms.list_keys(ACCOUNT, limit=1)
        assert_output_shape("ListKeys", listed)
        rest = await kms.list_keys(ACCOUNT, marker=listed["NextMarker"])
        assert listed["Truncated"] and not rest["Truncated"]
        assert {k["KeyId"] for k in listed["Keys"] + rest["Keys"]} == {key_id, signing}

    run(tmp_path, scenario)


def test_encrypt_decrypt_binds_context_and_names_its_key(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id, other = await _key(kms), await _key(kms)
        await kms.create_alias(ACCOUNT, "alias/registry", key_id)
        ctx = {"repository": "secure/app"}
        out = await kms.encrypt(ACCOUNT, "alias/registry", b"layer key", encryption_context=ctx)
        assert_output_shape("Encrypt", out)
        assert b"layer key" not in out["CiphertextBlob"]
        back = await kms.decrypt(ACCOUNT, out["CiphertextBlob"], encryption_context=ctx)
        assert_output_shape("Decrypt", back)
        assert back["Plaintext"] == b"layer key" and back["KeyId"].endswith(key_id)
        with pytest.raises(errors.InvalidCiphertextException):
            await kms.decrypt(
                ACCOUNT, out["CiphertextBlob"], encryption_context={"repository": "x"}
            )
        with pytest.raises(errors.InvalidCiphertextException):
            await kms.decrypt(ACCOUNT, out["CiphertextBlob"])
        flipped = bytearray(out["CiphertextBlob"])
        flipped[-1] ^= 1
        with pytest.raises(errors.InvalidCiphertextException):
            await kms.decrypt(ACCOUNT, bytes(flipped), encryption_context=ctx)
        with pytest.raises(errors.IncorrectKeyException):
            await kms.decrypt(ACCOUNT, out["CiphertextBlob"], encryption_context=ctx, key_id=other)
        moved = await kms.re_encrypt(
            ACCOUNT, out["CiphertextBlob"], other, source_encryption_context=ctx
        )
        assert_output_shape("ReEncrypt", moved)
        again = await kms.decrypt(ACCOUNT, moved["CiphertextBlob"])
        assert again["Plaintext"] == b"layer key" and again["KeyId"].endswith(other)
        with pytest.raises(errors.ValidationException):
            await kms.encrypt(ACCOUNT, key_id, b"x" * 4097)

    run(tmp_path, scenario)


def test_data_keys(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        for spec, size in (("AES_256", 32), ("AES_128", 16)):
            out = await kms.generate_data_key(ACCOUNT, key_id, key_spec=spec)
            assert_output_shape("GenerateDataKey", out)
            assert len(out["Plaintext"]) == size
            opened = await kms.decrypt(ACCOUNT, out["CiphertextBlob"])
            assert opened["Plaintext"] == out["Plaintext"]
        out = await kms.generate_data_key(ACCOUNT, key_id, number_of_bytes=7)
        assert len(out["Plaintext"]) == 7
        bare = await kms.generate_data_key_without_plaintext(ACCOUNT, key_id, key_spec="AES_256")
        assert_output_shape("GenerateDataKeyWithoutPlaintext", bare)
        assert "Plaintext" not in bare
        assert len((await kms.decrypt(ACCOUNT, bare["CiphertextBlob"]))["Plaintext"]) == 32
        for bad in ({}, {"key_spec": "AES_256", "number_of_bytes": 32}, {"number_of_bytes": 2000}):
            with pytest.raises(errors.ValidationException):
                await kms.generate_data_key(ACCOUNT, key_id, **bad)

    run(tmp_path, scenario)


def test_disable_and_enable(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        blob = (await kms.encrypt(ACCOUNT, key_id, b"secret"))["CiphertextBlob"]
        await kms.disable_key(ACCOUNT, key_id)
        meta = (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"]
        assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
        with pytest.raises(errors.DisabledException, match="is disabled"):
            await kms.decrypt(ACCOUNT, blob)
        with pytest.raises(errors.DisabledException):
            await kms.generate_data_key(ACCOUNT, key_id, key_spec="AES_256")
        with pytest.raises(errors.NotFoundException):
            await kms.disable_key(ACCOUNT, "alias/registry")  # aliases are not accepted here
        await kms.enable_key(ACCOUNT, key_id)
        assert (await kms.decrypt(ACCOUNT, blob))["Plaintext"] == b"secret"

    run(tmp_path, scenario)


def test_rotation_keeps_old_ciphertexts_readable(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        status = await kms.get_key_rotation_status(ACCOUNT, key_id)
        assert_output_shape("GetKeyRotationStatus", status)
        assert status["KeyRotationEnabled"] is False
        before = await kms.encrypt(ACCOUNT, key_id, b"old")
        material_before = (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"][
            "CurrentKeyMaterialId"
        ]
        assert_output_shape("RotateKeyOnDemand", await kms.rotate_key_on_demand(ACCOUNT, key_id))
        material_after = (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"][
            "CurrentKeyMaterialId"
        ]
        assert material_after != material_before
        after = await kms.encrypt(ACCOUNT, key_id, b"new")
        old = await kms.decrypt(ACCOUNT, before["CiphertextBlob"])
        new = await kms.decrypt(ACCOUNT, after["CiphertextBlob"])
        assert (old["Plaintext"], old["KeyMaterialId"]) == (b"old", material_before)
        assert (new["Plaintext"], new["KeyMaterialId"]) == (b"new", material_after)
        assert (await kms.get_key_rotation_status(ACCOUNT, key_id))[
            "OnDemandRotationStartDate"
        ] == clock.now
        # Automatic rotation: a period, then the job rotates once the date has come.
        with pytest.raises(errors.ValidationException):
            await kms.enable_key_rotation(ACCOUNT, key_id, rotation_period_days=30)
        await kms.enable_key_rotation(ACCOUNT, key_id, rotation_period_days=90)
        status = await kms.get_key_rotation_status(ACCOUNT, key_id)
        assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
        assert status["NextRotationDate"] == clock.now + 90 * DAY
        assert await kms.rotate_due_keys() == []
        clock.now += 91 * DAY
        assert await kms.rotate_due_keys() == [key_id]
        third = (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"]["CurrentKeyMaterialId"]
        assert third not in (material_before, material_after)
        assert (await kms.decrypt(ACCOUNT, before["CiphertextBlob"]))["Plaintext"] == b"old"
        signing = await _key(kms, key_spec="ECC_NIST_P256")
        with pytest.raises(errors.UnsupportedOperationException):
            await kms.rotate_key_on_demand(ACCOUNT, signing)
        await kms.disable_key(ACCOUNT, key_id)
        with pytest.raises(errors.DisabledException):
            await kms.rotate_key_on_demand(ACCOUNT, key_id)

    run(tmp_path, scenario)


def test_scheduled_deletion_cancel_and_crypto_shredding(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        await kms.create_alias(ACCOUNT, "alias/doomed", key_id)
        blob = (await kms.encrypt(ACCOUNT, key_id, b"secret"))["CiphertextBlob"]
        for days in (6, 31):
            with pytest.raises(errors.ValidationException):
                await kms.schedule_key_deletion(ACCOUNT, key_id, pending_window_days=days)
        scheduled = await kms.schedule_key_deletion(ACCOUNT, key_id, pending_window_days=7)
        assert_output_shape("ScheduleKeyDeletion", scheduled)
        assert scheduled["DeletionDate"] == clock.now + 7 * DAY
        meta = (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"]
        assert (meta["KeyState"], meta["PendingDeletionWindowInDays"]) == ("PendingDeletion", 7)
        with pytest.raises(errors.KMSInvalidStateException, match="pending deletion"):
            await kms.decrypt(ACCOUNT, blob)
        with pytest.raises(errors.KMSInvalidStateException):
            await kms.enable_key(ACCOUNT, key_id)
        assert_output_shape("CancelKeyDeletion", await kms.cancel_key_deletion(ACCOUNT, key_id))
        assert (await kms.describe_key(ACCOUNT, key_id))["KeyMetadata"]["KeyState"] == "Disabled"
        await kms.enable_key(ACCOUNT, key_id)
        assert (await kms.decrypt(ACCOUNT, blob))["Plaintext"] == b"secret"

        await kms.schedule_key_deletion(ACCOUNT, key_id, pending_window_days=7)
        clock.now += 6 * DAY
        assert await kms.destroy_due_keys() == []
        clock.now += 1 * DAY
        assert await kms.destroy_due_keys() == [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"]
        with pytest.raises(errors.NotFoundException):
            await kms.describe_key(ACCOUNT, key_id)
        with pytest.raises(errors.NotFoundException):
            await kms.decrypt(ACCOUNT, blob)
        with pytest.raises(errors.NotFoundException):
            await kms.describe_key(ACCOUNT, "alias/doomed")
        async with kms.db.read() as conn:
            left = (
                await conn.execute(
                    select(func.count())
                    .select_from(schema.kms_key_materials)
                    .where(schema.kms_key_materials.c.key_id == key_id)
                )
            ).scalar_one()
        assert left == 0

    run(tmp_path, scenario)


def test_aliases_follow_aws_rules(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        one, two = await _key(kms), await _key(kms)
        signing = await _key(kms, key_spec="ECC_NIST_P256")
        assert_output_shape("CreateAlias", await kms.create_alias(ACCOUNT, "alias/app/one", one))
        with pytest.raises(errors.AlreadyExistsException):
            await kms.create_alias(ACCOUNT, "alias/app/one", two)
        for bad in ("alias/aws/mine", "app", "alias/has space", "alias/" + "x" * 251):
            with pytest.raises(errors.InvalidAliasNameException):
                await kms.create_alias(ACCOUNT, bad, one)
        with pytest.raises(errors.NotFoundException):
            await kms.create_alias(ACCOUNT, "alias/x", "alias/app/one")
        await kms.update_alias(ACCOUNT, "alias/app/one", two)
        assert (await kms.key(ACCOUNT, "alias/app/one")).id == two
        arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/app/one"
        assert (await kms.key(ACCOUNT, arn)).id == two
        with pytest.raises(errors.ValidationException):
            await kms.update_alias(ACCOUNT, "alias/app/one", signing)
        with pytest.raises(errors.NotFoundException, match="is not found"):
            await kms.key(ACCOUNT, "alias/missing")
        # The AWS managed key for ECR appears on first use, once.
        managed = await kms.key(ACCOUNT, "alias/aws/ecr")
        assert (await kms.aws_managed_key(ACCOUNT, "ecr")).id == managed.id
        meta = (await kms.describe_key(ACCOUNT, "alias/aws/ecr"))["KeyMetadata"]
        assert meta["KeyManager"] == "AWS"
        assert (await kms.get_key_rotation_status(ACCOUNT, managed.id))["KeyRotationEnabled"]
        with pytest.raises(errors.AccessDeniedException):
            await kms.disable_key(ACCOUNT, managed.id)
        with pytest.raises(errors.AccessDeniedException):
            await kms.create_alias(ACCOUNT, "alias/mine", managed.id)
        listed = await kms.list_aliases(ACCOUNT)
        assert_output_shape("ListAliases", listed)
        assert [a["AliasName"] for a in listed["Aliases"]] == ["alias/app/one", "alias/aws/ecr"]
        assert [
            a["AliasName"] for a in (await kms.list_aliases(ACCOUNT, key_id=two))["Aliases"]
        ] == ["alias/app/one"]
        page = await kms.list_aliases(ACCOUNT, limit=1)
        assert page["Truncated"] and page["NextMarker"] == "alias/app/one"
        assert_output_shape("DeleteAlias", await kms.delete_alias(ACCOUNT, "alias/app/one"))
        with pytest.raises(errors.NotFoundException):
            await kms.delete_alias(ACCOUNT, "alias/app/one")

    run(tmp_path, scenario)


def test_sign_verify_and_public_key(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
        signed = await kms.sign(ACCOUNT, key_id, b"manifest", "ECDSA_SHA_256")
        assert_output_shape("Sign", signed)
        verified = await kms.verify(
            ACCOUNT, key_id, b"manifest", signed["Signature"], "ECDSA_SHA_256"
        )
        assert_output_shape("Verify", verified)
        assert verified["SignatureValid"] is True
        public = await kms.get_public_key(ACCOUNT, key_id)
        assert_output_shape("GetPublicKey", public)
        # Anyone can verify offline with the public key (DER SubjectPublicKeyInfo).
        loaded = serialization.load_der_public_key(public["PublicKey"])
        assert isinstance(loaded, ec.EllipticCurvePublicKey)
        loaded.verify(signed["Signature"], b"manifest", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(errors.KMSInvalidSignatureException):
            await kms.verify(ACCOUNT, key_id, b"manifest!", signed["Signature"], "ECDSA_SHA_256")
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"manifest")
        by_digest = await kms.sign(
            ACCOUNT, key_id, digest.finalize(), "ECDSA_SHA_256", message_type="DIGEST"
        )
        await kms.verify(ACCOUNT, key_id, b"manifest", by_digest["Signature"], "ECDSA_SHA_256")
        with pytest.raises(errors.ValidationException):
            await kms.sign(ACCOUNT, key_id, b"short", "ECDSA_SHA_256", message_type="DIGEST")
        with pytest.raises(errors.InvalidKeyUsageException):
            await kms.sign(ACCOUNT, key_id, b"m", "ECDSA_SHA_384")
        with pytest.raises(errors.InvalidKeyUsageException):
            await kms.encrypt(ACCOUNT, key_id, b"m")
        symmetric = await _key(kms)
        with pytest.raises(errors.UnsupportedOperationException):
            await kms.get_public_key(ACCOUNT, symmetric)
        with pytest.raises(errors.InvalidKeyUsageException):
            await kms.sign(ACCOUNT, symmetric, b"m", "ECDSA_SHA_256")

    run(tmp_path, scenario)


def test_key_policies_and_tags(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        got = await kms.get_key_policy(ACCOUNT, key_id)
        assert_output_shape("GetKeyPolicy", got)
        statement = json.loads(got["Policy"])["Statement"][0]
        assert statement["Sid"] == "Enable IAM User Permissions"
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
        with pytest.raises(errors.MalformedPolicyDocumentException):
            await kms.put_key_policy(ACCOUNT, key_id, "{not json")
        user = f"arn:aws:iam::{ACCOUNT}:user/ops"
        locks_out = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": user},
                        "Action": "kms:Encrypt",
                        "Resource": "*",
                    }
                ],
            }
        )
        with pytest.raises(errors.MalformedPolicyDocumentException, match="will not allow you"):
            await kms.put_key_policy(ACCOUNT, key_id, locks_out, caller_arn=user)
        await kms.put_key_policy(
            ACCOUNT, key_id, locks_out, caller_arn=user, bypass_policy_lockout_safety_check=True
        )
        assert (await kms.get_key_policy(ACCOUNT, key_id))["Policy"] == locks_out
        with pytest.raises(errors.NotFoundException):
            await kms.get_key_policy(ACCOUNT, key_id, policy_name="other")

        await kms.tag_resource(
            ACCOUNT, key_id, [{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}]
        )
        listed = await kms.list_resource_tags(ACCOUNT, key_id)
        assert_output_shape("ListResourceTags", listed)
        assert listed["Tags"] == [
            {"TagKey": "a", "TagValue": "1"},
            {"TagKey": "b", "TagValue": "2"},
        ]
        await kms.untag_resource(ACCOUNT, key_id, ["a"])
        assert (await kms.list_resource_tags(ACCOUNT, key_id))["Tags"] == [
            {"TagKey": "b", "TagValue": "2"}
        ]
        with pytest.raises(errors.TagException):
            await kms.tag_resource(ACCOUNT, key_id, [{"TagKey": "aws:x", "TagValue": "1"}])
        with pytest.raises(errors.LimitExceededException):
            await kms.tag_resource(
                ACCOUNT, key_id, [{"TagKey": f"k{i}", "TagValue": ""} for i in range(50)]
            )

    run(tmp_path, scenario)


def test_material_is_sealed_under_the_deployment_key(tmp_path: Path) -> None:
    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms)
        out = await kms.generate_data_key(ACCOUNT, key_id, key_spec="AES_256")
        async with kms.db.read() as conn:
            sealed = (
                await conn.execute(
                    select(schema.kms_key_materials.c.sealed).where(
                        schema.kms_key_materials.c.key_id == key_id
                    )
                )
            ).scalar_one()
        raw = base64.b64decode(kms.box.open(sealed))
        assert len(raw) == 32
        assert raw.hex() not in sealed and base64.b64encode(raw).decode() not in sealed
        # Another deployment key cannot open it, so another process has no material.
        from cargobay.iam.secrets import SecretBox, new_key

        stranger = KmsService(kms.db, SecretBox(new_key()), kms.region, clock=clock)
        with pytest.raises(ValueError):
            await stranger.decrypt(ACCOUNT, out["CiphertextBlob"])

    run(tmp_path, scenario)


def test_periodic_jobs_destroy_and_rotate_once_due(tmp_path: Path) -> None:
    from cargobay.jobs import leases
    from cargobay.kms.jobs import kms_jobs

    async def scenario(kms: KmsService, clock: Clock) -> None:
        doomed, rotating = await _key(kms), await _key(kms)
        await kms.schedule_key_deletion(ACCOUNT, doomed, pending_window_days=7)
        await kms.enable_key_rotation(ACCOUNT, rotating, rotation_period_days=90)
        clock.now += 100 * DAY
        destroy, rotate = kms_jobs(kms)
        assert (await leases.run_once(kms.db, destroy, holder="t"))["destroyed"] == [
            f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{doomed}"
        ]
        assert (await leases.run_once(kms.db, rotate, holder="t"))["rotated"] == [rotating]
        with pytest.raises(errors.NotFoundException):
            await kms.describe_key(ACCOUNT, doomed)

    run(tmp_path, scenario)


def test_racing_creators_agree(tmp_path: Path) -> None:
    """Two processes creating the ECR managed key, or one alias, at once: one wins, and the
    loser sees the winner's key (or AlreadyExists), never an internal error."""
    from cargobay.metadata.db import Database

    async def scenario(kms: KmsService, clock: Clock) -> None:
        others = [
            KmsService(Database(kms.db.url), kms.box, kms.region, clock=clock) for _ in range(3)
        ]
        try:
            services = [kms, *others]
            keys = await asyncio.gather(*(s.aws_managed_key(ACCOUNT, "ecr") for s in services))
            assert len({k.id for k in keys}) == 1
            listed = await kms.list_keys(ACCOUNT)
            assert [k["KeyId"] for k in listed["Keys"]] == [keys[0].id]
            target = await _key(kms)
            outcomes = await asyncio.gather(
                *(s.create_alias(ACCOUNT, "alias/race", target) for s in services),
                return_exceptions=True,
            )
            assert sum(o == {} for o in outcomes) == 1
            losers = [o for o in outcomes if o != {}]
            assert all(isinstance(o, errors.AlreadyExistsException) for o in losers), losers
        finally:
            for other in others:
                await other.db.dispose()

    run(tmp_path, scenario)


def test_p384_keys_sign_with_ecdsa_sha_384(tmp_path: Path) -> None:
    """The curve signing profiles use (Notation's ES384)."""

    async def scenario(kms: KmsService, clock: Clock) -> None:
        key_id = await _key(kms, key_spec="ECC_NIST_P384", key_usage="SIGN_VERIFY")
        public = await kms.get_public_key(ACCOUNT, key_id)
        assert public["SigningAlgorithms"] == ["ECDSA_SHA_384"]
        loaded = serialization.load_der_public_key(public["PublicKey"])
        assert isinstance(loaded, ec.EllipticCurvePublicKey)
        assert loaded.curve.name == "secp384r1"
        signed = await kms.sign(ACCOUNT, key_id, b"payload", "ECDSA_SHA_384")
        loaded.verify(signed["Signature"], b"payload", ec.ECDSA(hashes.SHA384()))
        with pytest.raises(errors.InvalidKeyUsageException):
            await kms.sign(ACCOUNT, key_id, b"payload", "ECDSA_SHA_256")

    run(tmp_path, scenario)
