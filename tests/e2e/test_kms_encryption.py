"""Encryption at rest with customer-managed keys (issue 13), with the real `aws` CLI, boto3 and
skopeo against a real `cargobay serve`: ECR's encryptionConfiguration and the user journey
(push encrypted, nothing in plaintext on disk, rotate, disable the key, pull refused, enable,
pull again, schedule deletion and cancel), mounts between keys, and GC of encrypted copies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from e2e.ecrhelp import (
    aws,
    cli_error,
    client,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    unique,
)
from e2e.kmshelp import (
    MARKER,
    SEGMENT,
    create_key,
    grep_data_dir,
    kms_client,
    marker_image,
    put_uncompressed,
    v2_get,
)
from imagebuilder import sha256
from server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry of this module's own (its data directory is searched for plaintext); the
    periodic jobs off, so GC runs only when a test runs it."""
    data = tmp_path_factory.mktemp("kms") / "data"
    registry = Server(data, workers=1, env={"CARGOBAY_JOBS_ENABLED": "false"}).start()
    yield registry
    registry.discard()


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
    if before:  # a filesystem store (on S3 the report's count is what can be checked)
        assert len(before - after) >= 3


# -- uploads: nothing staged in plaintext ------------------------------------------------------


def test_chunked_push_is_staged_encrypted_and_survives_a_crash(
    server: Server, tmp_path: Path
) -> None:
    """A chunked `/v2/` push into a KMS repository, the registry SIGKILLed between chunks: no
    plaintext of the half-pushed layer is at rest, and after a restart the upload resumes
    (re-read from its encrypted staging) and the pull is byte-identical."""
    key = create_key(server)
    repo = unique("secure/chunked")
    aws(
        server,
        "ecr",
        "create-repository",
        "--repository-name",
        repo,
        "--encryption-configuration",
        f"encryptionType=KMS,kmsKey={key['KeyId']}",
    )
    image = marker_image(tmp_path / "img")
    layer = image.layers[0]
    cut = 3 * SEGMENT + 1234  # the first chunk ends mid-segment, the marker in it
    assert MARKER in layer[:cut]
    base = f"{server.url}/v2/{repo}/blobs/uploads/"
    started = requests.post(base, auth=server.credentials, timeout=60)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    url = location if location.startswith("http") else server.url + location
    first = requests.patch(
        url,
        data=layer[:cut],
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{cut - 1}"},
        auth=server.credentials,
        timeout=60,
    )
    assert first.status_code == 202, first.text

    server.kill()  # a crash mid-push
    try:
        assert grep_data_dir(server, MARKER) == ""
    finally:
        server.start(timeout=180)

    status = requests.get(url, auth=server.credentials, timeout=60)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{cut - 1}"
    rest = requests.patch(
        url,
        data=layer[cut:],
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{cut}-{len(layer) - 1}",
        },
        auth=server.credentials,
        timeout=60,
    )
    assert rest.status_code == 202, rest.text
    assert grep_data_dir(server, MARKER) == ""
    done = requests.put(
        f"{url}{'&' if '?' in url else '?'}digest={sha256(layer)}",
        auth=server.credentials,
        timeout=60,
    )
    assert done.status_code == 201, done.text
    for blob in (image.config,):  # monolithic: encrypted as it arrives
        posted = requests.post(
            f"{base}?digest={sha256(blob)}", data=blob, auth=server.credentials, timeout=60
        )
        assert posted.status_code == 201, posted.text
    put = requests.put(
        f"{server.url}/v2/{repo}/manifests/chunked",
        data=image.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        auth=server.credentials,
        timeout=60,
    )
    assert put.status_code == 201, put.text
    assert grep_data_dir(server, MARKER) == ""

    pulled = tmp_path / "pulled"
    pull(server, f"{repo}:chunked", pulled)
    assert pulled_blob(pulled, sha256(layer)) == layer
    assert pulled_blob(pulled, sha256(image.config)) == image.config


def test_a_wrong_digest_commits_nothing_encrypted(server: Server) -> None:
    """Monolithic and chunked uploads into a KMS repository whose bytes do not match the
    digest: DIGEST_INVALID, and the blob does not exist."""
    key = create_key(server)
    repo = unique("secure/wrong")
    aws(
        server,
        "ecr",
        "create-repository",
        "--repository-name",
        repo,
        "--encryption-configuration",
        f"encryptionType=KMS,kmsKey={key['KeyId']}",
    )
    claimed = sha256(b"what was promised")
    base = f"{server.url}/v2/{repo}/blobs/uploads/"
    mono = requests.post(
        f"{base}?digest={claimed}", data=b"something else", auth=server.credentials, timeout=60
    )
    assert mono.status_code == 400 and mono.json()["errors"][0]["code"] == "DIGEST_INVALID"
    started = requests.post(base, auth=server.credentials, timeout=60)
    location = started.headers["Location"]
    url = location if location.startswith("http") else server.url + location
    chunked = requests.put(
        f"{url}{'&' if '?' in url else '?'}digest={claimed}",
        data=b"something else",
        auth=server.credentials,
        timeout=60,
    )
    assert chunked.status_code == 400 and chunked.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert v2_get(server, f"{repo}/blobs/{claimed}").status_code == 404
