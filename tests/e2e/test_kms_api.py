"""The KMS API (issue 13) with the real `aws` CLI and boto3 against the session's registry:
keys, aliases, encryption, rotation, deletion, policies, tags, signatures, and a user
without KMS permissions refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import (
    ACCOUNT,
    REGION,
    aws,
    cli_error,
    client,
    make_user,
    unique,
)
from e2e.kmshelp import create_key, kms_client
from server import Server


def test_kms_api_with_the_aws_cli(registry: Server, tmp_path: Path) -> None:
    key = create_key(registry, "--tags", "TagKey=team,TagValue=infra")
    key_id, arn = key["KeyId"], key["Arn"]
    assert arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
    assert (key["KeySpec"], key["KeyUsage"], key["KeyState"]) == (
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "Enabled",
    )
    alias = unique("alias/cli")
    aws(registry, "kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    aliases = aws(registry, "kms", "list-aliases", "--key-id", key_id).json["Aliases"]
    assert [a["AliasName"] for a in aliases] == [alias]
    described = aws(registry, "kms", "describe-key", "--key-id", alias).json["KeyMetadata"]
    assert described["Arn"] == arn

    # Encrypt / Decrypt through files, as the CLI's fileb:// sends and --output text returns.
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"secret \x00\xff bytes")
    blob = aws(
        registry, "kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain}"
    ).json["CiphertextBlob"]
    cipher = tmp_path / "cipher.bin"
    cipher.write_bytes(base64.b64decode(blob))
    out = aws(registry, "kms", "decrypt", "--ciphertext-blob", f"fileb://{cipher}").json
    assert base64.b64decode(out["Plaintext"]) == plain.read_bytes()
    assert out["KeyId"] == arn

    # Disable / enable: a disabled key refuses to decrypt.
    sdk = kms_client(registry)
    aws(registry, "kms", "disable-key", "--key-id", key_id)
    with pytest.raises(ClientError) as info:
        sdk.decrypt(CiphertextBlob=cipher.read_bytes())
    assert info.value.response["Error"]["Code"] == "DisabledException"
    aws(registry, "kms", "enable-key", "--key-id", key_id)

    # Scheduled deletion, cancelled: the key comes back Disabled, as in AWS.
    scheduled = aws(
        registry,
        "kms",
        "schedule-key-deletion",
        "--key-id",
        key_id,
        "--pending-window-in-days",
        "7",
    ).json
    assert (scheduled["KeyState"], scheduled["PendingWindowInDays"]) == ("PendingDeletion", 7)
    aws(registry, "kms", "cancel-key-deletion", "--key-id", key_id)
    assert sdk.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    sdk.enable_key(KeyId=key_id)

    # Rotation: automatic and on demand; old ciphertext still opens.
    aws(registry, "kms", "enable-key-rotation", "--key-id", key_id)
    aws(registry, "kms", "rotate-key-on-demand", "--key-id", key_id)
    status = sdk.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and "OnDemandRotationStartDate" in status
    assert sdk.decrypt(CiphertextBlob=cipher.read_bytes())["Plaintext"] == plain.read_bytes()

    # Key policy and tags.
    policy = json.loads(aws(registry, "kms", "get-key-policy", "--key-id", key_id).json["Policy"])
    policy["Statement"].append(
        {
            "Sid": "Extra",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
        }
    )
    aws(registry, "kms", "put-key-policy", "--key-id", key_id, "--policy", json.dumps(policy))
    stored = json.loads(sdk.get_key_policy(KeyId=key_id)["Policy"])
    assert [s.get("Sid") for s in stored["Statement"]][-1] == "Extra"
    aws(registry, "kms", "tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=prod")
    tags = aws(registry, "kms", "list-resource-tags", "--key-id", key_id).json["Tags"]
    assert tags == [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "infra"}]

    # Sign / verify with an ECC_NIST_P256 key.
    signer = create_key(registry, "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY")
    message = tmp_path / "message.txt"
    message.write_bytes(b"sign me")
    signature = aws(
        registry,
        "kms",
        "sign",
        "--key-id",
        signer["KeyId"],
        "--message",
        f"fileb://{message}",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ).json["Signature"]
    sig_file = tmp_path / "sig.bin"
    sig_file.write_bytes(base64.b64decode(signature))
    verified = aws(
        registry,
        "kms",
        "verify",
        "--key-id",
        signer["KeyId"],
        "--message",
        f"fileb://{message}",
        "--signature",
        f"fileb://{sig_file}",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ).json
    assert verified["SignatureValid"] is True
    with pytest.raises(ClientError) as info:
        kms_client(registry).verify(
            KeyId=signer["KeyId"],
            Message=b"tampered",
            Signature=sig_file.read_bytes(),
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert info.value.response["Error"]["Code"] == "KMSInvalidSignatureException"


def test_kms_with_boto3_and_a_user_without_kms_permissions(
    registry: Server, tmp_path: Path
) -> None:
    kms = kms_client(registry)
    key_id = kms.create_key(Description="boto3")["KeyMetadata"]["KeyId"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    opened = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])
    assert opened["Plaintext"] == data_key["Plaintext"]
    assert key_id in {k["KeyId"] for k in kms.list_keys()["Keys"]}
    # A request signed for another region is refused, as AWS refuses it.
    elsewhere = boto3.client(
        "kms",
        endpoint_url=registry.url,
        region_name="ap-south-2",
        aws_access_key_id=registry.credentials[0],
        aws_secret_access_key=registry.credentials[1],
    )
    with pytest.raises(ClientError) as info:
        elsewhere.describe_key(KeyId=key_id)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"

    ecr_only = make_user(
        registry,
        unique("nokms"),
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
        },
        tmp=tmp_path,
    )
    other = kms_client(registry, ecr_only)
    for call in (
        lambda: other.describe_key(KeyId=key_id),
        lambda: other.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: other.create_key(Description="not mine to make"),
        lambda: other.list_keys(),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    refused = aws(registry, "kms", "describe-key", "--key-id", key_id, creds=ecr_only, check=False)
    assert cli_error(refused) == "AccessDeniedException"

    # ECR asks for kms:DescribeKey and kms:CreateGrant on the key when it creates an encrypted
    # repository: ecr:* alone is not enough for a customer managed key, but is for the AWS
    # managed alias/aws/ecr (whose policy lets the account use it through ECR).
    ecr = client(registry, *ecr_only)
    with pytest.raises(ClientError) as info:
        ecr.create_repository(
            repositoryName=unique("nokms/repo"),
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key_id},
        )
    error = info.value.response
    assert error["Error"]["Code"] == "KmsException"
    assert error["kmsError"] == "AccessDeniedException"
    created = ecr.create_repository(
        repositoryName=unique("nokms/managed"), encryptionConfiguration={"encryptionType": "KMS"}
    )
    assert created["repository"]["encryptionConfiguration"]["encryptionType"] == "KMS"
