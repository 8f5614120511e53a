"""Encryption at rest with customer-managed keys (issue 13), with the real `aws` CLI, boto3 and
skopeo against a real `cargobay serve`: the KMS API, ECR's encryptionConfiguration, and the
user journey (push encrypted, disable the key, pull refused, enable, pull again)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from e2e.ecrhelp import (
    ACCOUNT,
    REGION,
    aws,
    cli_error,
    client,
    make_user,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    unique,
)
from imagebuilder import Image, sha256
from server import Server

MARKER = b"CARGOBAY-PLAINTEXT-MARKER-7f3a9c"
OCI_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
SEGMENT = 64 * 1024  # crypto.stream.DEFAULT_SEGMENT_SIZE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry of this module's own (its data directory is searched for plaintext); the
    periodic jobs off, so GC runs only when a test runs it."""
    data = tmp_path_factory.mktemp("kms") / "data"
    registry = Server(data, workers=1, env={"CARGOBAY_JOBS_ENABLED": "false"}).start()
    yield registry
    registry.discard()


def kms_client(server: Server, creds: tuple[str, str] | None = None) -> Any:
    key, secret = creds or server.credentials
    return boto3.client(
        "kms",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def create_key(server: Server, *args: str) -> dict[str, Any]:
    return aws(server, "kms", "create-key", "--description", "registry", *args).json["KeyMetadata"]


def marker_image(layout: Path) -> Image:
    """An OCI image whose one layer is an uncompressed tar holding MARKER many times, so the
    marker would show in any plaintext copy of the layer (and spans several segments)."""
    payload = (MARKER + b"\n") * 12_000  # ~400 KiB
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("marker.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = buf.getvalue()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
            "marker": MARKER.decode(),
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [{"mediaType": OCI_TAR_LAYER, "digest": sha256(layer), "size": len(layer)}],
            "annotations": {"note": "no marker here"},
        }
    ).encode()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config, manifest):
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return Image(layout, sha256(manifest), manifest, config, [layer])


def grep_data_dir(server: Server, needle: bytes) -> str:
    """`grep -r` over the whole data directory (blob store, uploads, the SQLite database)."""
    proc = subprocess.run(
        ["grep", "-r", "-l", "-a", "-F", needle.decode(), str(server.data_dir)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def v2_get(server: Server, path: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v2/{path}", auth=server.credentials, headers=headers, timeout=30
    )


# -- the KMS API --------------------------------------------------------------------------------


def test_kms_api_with_the_aws_cli(server: Server, tmp_path: Path) -> None:
    key = create_key(server, "--tags", "TagKey=team,TagValue=infra")
    key_id, arn = key["KeyId"], key["Arn"]
    assert arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
    assert (key["KeySpec"], key["KeyUsage"], key["KeyState"]) == (
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "Enabled",
    )
    alias = unique("alias/cli")
    aws(server, "kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    aliases = aws(server, "kms", "list-aliases", "--key-id", key_id).json["Aliases"]
    assert [a["AliasName"] for a in aliases] == [alias]
    described = aws(server, "kms", "describe-key", "--key-id", alias).json["KeyMetadata"]
    assert described["Arn"] == arn

    # Encrypt / Decrypt through files, as the CLI's fileb:// sends and --output text returns.
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"secret \x00\xff bytes")
    blob = aws(server, "kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain}").json[
        "CiphertextBlob"
    ]
    cipher = tmp_path / "cipher.bin"
    cipher.write_bytes(base64.b64decode(blob))
    out = aws(server, "kms", "decrypt", "--ciphertext-blob", f"fileb://{cipher}").json
    assert base64.b64decode(out["Plaintext"]) == plain.read_bytes()
    assert out["KeyId"] == arn

    # Disable / enable: a disabled key refuses to decrypt.
    sdk = kms_client(server)
    aws(server, "kms", "disable-key", "--key-id", key_id)
    with pytest.raises(ClientError) as info:
        sdk.decrypt(CiphertextBlob=cipher.read_bytes())
    assert info.value.response["Error"]["Code"] == "DisabledException"
    aws(server, "kms", "enable-key", "--key-id", key_id)

    # Scheduled deletion, cancelled: the key comes back Disabled, as in AWS.
    scheduled = aws(
        server, "kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7"
    ).json
    assert (scheduled["KeyState"], scheduled["PendingWindowInDays"]) == ("PendingDeletion", 7)
    aws(server, "kms", "cancel-key-deletion", "--key-id", key_id)
    assert sdk.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    sdk.enable_key(KeyId=key_id)

    # Rotation: automatic and on demand; old ciphertext still opens.
    aws(server, "kms", "enable-key-rotation", "--key-id", key_id)
    aws(server, "kms", "rotate-key-on-demand", "--key-id", key_id)
    status = sdk.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and "OnDemandRotationStartDate" in status
    assert sdk.decrypt(CiphertextBlob=cipher.read_bytes())["Plaintext"] == plain.read_bytes()

    # Key policy and tags.
    policy = json.loads(aws(server, "kms", "get-key-policy", "--key-id", key_id).json["Policy"])
    policy["Statement"].append(
        {
            "Sid": "Extra",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
        }
    )
    aws(server, "kms", "put-key-policy", "--key-id", key_id, "--policy", json.dumps(policy))
    stored = json.loads(sdk.get_key_policy(KeyId=key_id)["Policy"])
    assert [s.get("Sid") for s in stored["Statement"]][-1] == "Extra"
    aws(server, "kms", "tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=prod")
    tags = aws(server, "kms", "list-resource-tags", "--key-id", key_id).json["Tags"]
    assert tags == [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "infra"}]

    # Sign / verify with an ECC_NIST_P256 key.
    signer = create_key(server, "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY")
    message = tmp_path / "message.txt"
    message.write_bytes(b"sign me")
    signature = aws(
        server,
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
        server,
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
        kms_client(server).verify(
            KeyId=signer["KeyId"],
            Message=b"tampered",
            Signature=sig_file.read_bytes(),
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert info.value.response["Error"]["Code"] == "KMSInvalidSignatureException"


def test_kms_with_boto3_and_a_user_without_kms_permissions(server: Server, tmp_path: Path) -> None:
    kms = kms_client(server)
    key_id = kms.create_key(Description="boto3")["KeyMetadata"]["KeyId"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    opened = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])
    assert opened["Plaintext"] == data_key["Plaintext"]
    assert key_id in {k["KeyId"] for k in kms.list_keys()["Keys"]}

    ecr_only = make_user(
        server,
        unique("nokms"),
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
        },
        tmp=tmp_path,
    )
    other = kms_client(server, ecr_only)
    for call in (
        lambda: other.describe_key(KeyId=key_id),
        lambda: other.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: other.create_key(Description="not mine to make"),
        lambda: other.list_keys(),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    refused = aws(server, "kms", "describe-key", "--key-id", key_id, creds=ecr_only, check=False)
    assert cli_error(refused) == "AccessDeniedException"


# -- ECR's encryptionConfiguration ------------------------------------------------------------


def test_repository_encryption_configuration(server: Server) -> None:
    """Checked against botocore's model by `ecrhelp.client` (every response body)."""
    ecr, kms = client(server), kms_client(server)
    key = kms.create_key()["KeyMetadata"]
    alias = unique("alias/repo")
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])

    plain = ecr.create_repository(repositoryName=unique("enc/plain"))["repository"]
    assert plain["encryptionConfiguration"] == {"encryptionType": "AES256"}
    expected = {"encryptionType": "KMS", "kmsKey": key["Arn"]}
    for ref in (key["KeyId"], key["Arn"], alias):
        name = unique("enc/kms")
        created = ecr.create_repository(
            repositoryName=name, encryptionConfiguration={"encryptionType": "KMS", "kmsKey": ref}
        )["repository"]
        assert created["encryptionConfiguration"] == expected
        described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        assert described["encryptionConfiguration"] == expected
    cli = aws(
        server,
        "ecr",
        "create-repository",
        "--repository-name",
        unique("enc/cli"),
        "--encryption-configuration",
        f"encryptionType=KMS,kmsKey={alias}",
    ).json["repository"]
    assert cli["encryptionConfiguration"] == expected

    # KMS without a key: the AWS managed key alias/aws/ecr, created on first use.
    dsse = ecr.create_repository(
        repositoryName=unique("enc/dsse"),
        encryptionConfiguration={"encryptionType": "KMS_DSSE"},
    )["repository"]["encryptionConfiguration"]
    managed = kms.describe_key(KeyId="alias/aws/ecr")["KeyMetadata"]
    assert dsse == {"encryptionType": "KMS_DSSE", "kmsKey": managed["Arn"]}
    assert managed["KeyManager"] == "AWS"

    def refused(**config: str) -> str:
        with pytest.raises(ClientError) as info:
            ecr.create_repository(repositoryName=unique("enc/bad"), encryptionConfiguration=config)
        return info.value.response["Error"]["Code"]

    assert refused(encryptionType="KMS", kmsKey="alias/does-not-exist") == "KmsException"
    assert refused(encryptionType="KMS", kmsKey="arn:aws:kms:nowhere") == (
        "InvalidParameterException"
    )
    assert refused(encryptionType="AES256", kmsKey=key["KeyId"]) == "InvalidParameterException"
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert refused(encryptionType="KMS", kmsKey=signer["KeyId"]) == "KmsException"
    kms.disable_key(KeyId=key["KeyId"])
    assert refused(encryptionType="KMS", kmsKey=alias) == "KmsException"
    kms.enable_key(KeyId=key["KeyId"])


# -- the user journey ---------------------------------------------------------------------------


def put_uncompressed(server: Server, repo: str, image: Image, tag: str) -> None:
    """The image exactly as built: its layer through InitiateLayerUpload / UploadLayerPart /
    CompleteLayerUpload, its config through `/v2/` (POST ?digest=), its manifest by PutImage."""
    ecr = client(server)
    layer = image.layers[0]
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    part = upload["partSize"]
    for first in range(0, len(layer), part):
        chunk = layer[first : first + part]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    done = ecr.complete_layer_upload(
        repositoryName=repo, uploadId=upload["uploadId"], layerDigests=[sha256(layer)]
    )
    assert done["layerDigest"] == sha256(layer)
    posted = requests.post(
        f"{server.url}/v2/{repo}/blobs/uploads/?digest={sha256(image.config)}",
        data=image.config,
        auth=server.credentials,
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    ecr.put_image(repositoryName=repo, imageManifest=image.manifest.decode(), imageTag=tag)


def test_encrypted_repository_journey(server: Server, tmp_path: Path) -> None:
    key = create_key(server)
    key_id = key["KeyId"]
    alias = unique("alias/registry")
    aws(server, "kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    repo = unique("secure/app")
    aws(
        server,
        "ecr",
        "create-repository",
        "--repository-name",
        repo,
        "--encryption-configuration",
        f"encryptionType=KMS,kmsKey={alias}",
    )
    image = marker_image(tmp_path / "img")
    layer = image.layers[0]
    # skopeo pushes (and, to a registry, gzips the uncompressed layer on the way).
    push(server, image, f"{repo}:1.0")
    # The uncompressed layer itself, through ECR's layer-upload API, and the config through a
    # monolithic `/v2/` POST: the marker then reaches the registry as plain bytes.
    put_uncompressed(server, repo, image, "raw")

    # Nothing of the plaintext is stored: not the layer, the config, the manifest or its
    # annotations, neither in the blob store nor in the SQLite database.
    assert grep_data_dir(server, MARKER) == ""
    assert grep_data_dir(server, b"no marker here") == ""

    pulled = tmp_path / "pulled"
    pull(server, f"{repo}:raw", pulled)
    assert pulled_manifest(pulled) == (image.manifest_digest, image.manifest)
    assert pulled_blob(pulled, sha256(layer)) == layer
    assert pulled_blob(pulled, sha256(image.config)) == image.config

    # HEAD answers the plaintext size; Range reads across segment boundaries are the slices.
    digest = sha256(layer)
    head = requests.head(
        f"{server.url}/v2/{repo}/blobs/{digest}", auth=server.credentials, timeout=30
    )
    assert int(head.headers["Content-Length"]) == len(layer)
    for start, end in [
        (SEGMENT - 10, SEGMENT + 10),
        (SEGMENT - 1, 3 * SEGMENT + 5),
        (0, 0),
        (len(layer) - 7, len(layer) - 1),
        (2 * SEGMENT, 2 * SEGMENT),
    ]:
        got = v2_get(server, f"{repo}/blobs/{digest}", Range=f"bytes={start}-{end}")
        assert got.status_code == 206, got.text
        assert got.content == layer[start : end + 1], (start, end)
    whole = v2_get(server, f"{repo}/blobs/{digest}")
    assert whole.status_code == 200 and whole.content == layer

    # Rotation on demand keeps old images readable.
    aws(server, "kms", "rotate-key-on-demand", "--key-id", key_id)
    pull(server, f"{repo}:raw", tmp_path / "after-rotation")
    assert pulled_blob(tmp_path / "after-rotation", digest) == layer

    # Disabled: the pull is refused with an error naming the key's state.
    aws(server, "kms", "disable-key", "--key-id", key_id)
    refused = pull(server, f"{repo}:1.0", tmp_path / "refused", check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr.lower() and "Disabled" in refused.stderr, refused.stderr
    blob = v2_get(server, f"{repo}/blobs/{digest}")
    assert blob.status_code == 403
    error = blob.json()["errors"][0]
    assert error["code"] == "DENIED" and error["detail"]["keyState"] == "Disabled"
    batch = aws(
        server,
        "ecr",
        "batch-get-image",
        "--repository-name",
        repo,
        "--image-ids",
        "imageTag=1.0",
        check=False,
    )
    assert cli_error(batch) == "KmsException"

    # Enabled again: pulls work.
    aws(server, "kms", "enable-key", "--key-id", key_id)
    pull(server, f"{repo}:raw", tmp_path / "again")
    assert pulled_blob(tmp_path / "again", digest) == layer

    # Pending deletion refuses the same way; cancelling leaves the key Disabled until enabled.
    aws(server, "kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    pending = v2_get(server, f"{repo}/manifests/raw")
    assert pending.status_code == 403
    assert pending.json()["errors"][0]["detail"]["keyState"] == "PendingDeletion"
    aws(server, "kms", "cancel-key-deletion", "--key-id", key_id)
    aws(server, "kms", "enable-key", "--key-id", key_id)
    pull(server, f"{repo}:raw", tmp_path / "restored")
    assert pulled_blob(tmp_path / "restored", digest) == layer
    assert grep_data_dir(server, MARKER) == ""


def test_mount_between_keys_reencrypts_and_gc_reclaims_copies(
    server: Server, tmp_path: Path
) -> None:
    ecr, kms = client(server), kms_client(server)
    first, second = (kms.create_key()["KeyMetadata"] for _ in range(2))
    repos = [unique("secure/one"), unique("secure/two")]
    for repo, key in zip(repos, (first, second), strict=True):
        ecr.create_repository(
            repositoryName=repo,
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key["Arn"]},
        )
    image = marker_image(tmp_path / "img")
    push(server, image, f"{repos[0]}:v1")
    digest = sha256(image.layers[0])
    mounted = requests.post(
        f"{server.url}/v2/{repos[1]}/blobs/uploads/?mount={digest}&from={repos[0]}",
        auth=server.credentials,
        timeout=60,
    )
    assert mounted.status_code == 201, mounted.text
    # Readable under the second key even with the first disabled: its own copy.
    kms.disable_key(KeyId=first["KeyId"])
    got = v2_get(server, f"{repos[1]}/blobs/{digest}")
    assert got.status_code == 200 and got.content == image.layers[0]
    kms.enable_key(KeyId=first["KeyId"])
    assert grep_data_dir(server, MARKER) == ""

    # Deleting the repositories leaves the copies unreferenced: GC removes them.
    storage = server.data_dir / "storage"
    before = {p for p in storage.rglob("*") if p.is_file()}
    for repo in repos:
        ecr.delete_repository(repositoryName=repo, force=True)
    gc = subprocess.run(
        [sys.executable, "-m", "cargobay", "gc", "--data-dir", str(server.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**server.process_env, "CARGOBAY_GC_GRACE_SECONDS": "0"},
    )
    report = json.loads(gc.stdout)
    # The layer and config under the first key, the mounted layer under the second.
    assert report["copies_deleted"] >= 3, report
    after = {p for p in storage.rglob("*") if p.is_file()}
    assert len(before - after) >= 3
