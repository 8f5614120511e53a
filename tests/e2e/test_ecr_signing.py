"""Managed signing end to end: the ECR signing configuration (boto3 and the AWS CLI), and a
skopeo push signed with a Notary Project signature that verifies against the profile's exported
root certificate (tests/notaryverify.py), while a tampered payload does not."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import (
    ACCOUNT,
    REGION,
    aws,
    cli_error,
    client,
    push,
    raises,
    unique,
)
from e2e.signinghelp import PLATFORM, profile_name, signer_client, wait_signed
from imagebuilder import Image, build_image
from notaryverify import VerificationError, tampered, verify


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(tmp_path_factory.mktemp("signing-image") / "img", [1500])


# -- signing on push ------------------------------------------------------------------------------

SIGNATURE = "application/vnd.cncf.notary.signature"


def _export_root(server, profile: str) -> bytes:
    command = [sys.executable, "-m", "cargobay", "admin", "--data-dir", str(server.data_dir)]
    proc = subprocess.run(
        [*command, "signing", "export-root", profile],
        capture_output=True,
        timeout=60,
        env=server.process_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"-----BEGIN CERTIFICATE-----")
    return proc.stdout


def _profile(registry, prefix: str) -> tuple[str, str]:
    name = profile_name(prefix)
    created = signer_client(registry).put_signing_profile(profileName=name, platformId=PLATFORM)
    return name, created["arn"]


def _rule(arn: str, *filters: str) -> dict:
    rule: dict = {"signingProfileArn": arn}
    if filters:
        rule["repositoryFilters"] = [{"filter": f, "filterType": "WILDCARD_MATCH"} for f in filters]
    return rule


def test_a_pushed_image_gets_a_notation_signature_that_verifies(
    registry, tmp_path: Path, small_image: Image
) -> None:
    """Create a profile, configure signing, push with skopeo, wait for COMPLETE, fetch the
    signature through the referrers API and verify it with the exported root certificate."""
    ecr = client(registry)
    profile, arn = _profile(registry, "release")
    prefix = unique("signed")
    rules = [_rule(arn, f"{prefix}/*")]
    put = ecr.put_signing_configuration(signingConfiguration={"rules": rules})
    assert put["signingConfiguration"]["rules"] == rules
    got = ecr.get_signing_configuration()
    assert got == {**got, "registryId": ACCOUNT, "signingConfiguration": {"rules": rules}}

    name, unsigned = f"{prefix}/app", unique("unsigned")
    push(registry, small_image, f"{name}:1.0")
    push(registry, small_image, f"{unsigned}:1.0")
    digest = small_image.manifest_digest
    statuses = wait_signed(ecr, name, digest)
    assert statuses == [{"signingProfileArn": arn, "status": "COMPLETE"}]
    by_tag = ecr.describe_image_signing_status(repositoryName=name, imageId={"imageTag": "1.0"})
    assert by_tag["imageId"] == {"imageDigest": digest, "imageTag": "1.0"}
    assert by_tag["registryId"] == ACCOUNT and by_tag["repositoryName"] == name
    other = ecr.describe_image_signing_status(
        repositoryName=unsigned, imageId={"imageDigest": digest}
    )
    assert other["signingStatuses"] == []

    # The signature, as Notation finds it: the referrers API, then the manifest and its layer.
    http = registry.session()
    listed = http.get(
        f"{registry.url}/v2/{name}/referrers/{digest}", params={"artifactType": SIGNATURE}
    )
    assert listed.status_code == 200, listed.text
    referrers = listed.json()["manifests"]
    assert [r["artifactType"] for r in referrers] == [SIGNATURE]
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    manifest = http.get(
        f"{registry.url}/v2/{name}/manifests/{referrers[0]['digest']}", headers=accept
    )
    assert manifest.status_code == 200
    document = manifest.json()
    assert document["subject"]["digest"] == digest
    assert document["config"]["mediaType"] == SIGNATURE
    [layer] = document["layers"]
    assert layer["mediaType"] == "application/jose+json"
    envelope = http.get(f"{registry.url}/v2/{name}/blobs/{layer['digest']}").content
    assert hashlib.sha256(envelope).hexdigest() == layer["digest"].removeprefix("sha256:")

    root = _export_root(registry, profile)
    payload = verify(envelope, root)
    target = payload["targetArtifact"]
    assert target["digest"] == digest
    assert target["size"] == len(small_image.manifest)
    with pytest.raises(VerificationError):  # the signature covers the image's digest
        verify(tampered(envelope, "sha256:" + "0" * 64), root)
    _, other_arn = _profile(registry, "stranger")
    stranger_root = _export_root(registry, other_arn.rsplit("/", 1)[1])
    with pytest.raises(VerificationError):  # and trusts only its own profile's root
        verify(envelope, stranger_root)

    # A re-push of the same image (a new tag) signs nothing again.
    push(registry, small_image, f"{name}:again")
    again = http.get(f"{registry.url}/v2/{name}/referrers/{digest}").json()["manifests"]
    assert len([r for r in again if r.get("artifactType") == SIGNATURE]) == 1

    deleted = ecr.delete_signing_configuration()
    assert deleted["signingConfiguration"] == {"rules": rules}


def test_signing_failures_and_configuration_errors(registry, small_image: Image) -> None:
    ecr = client(registry)
    signer = signer_client(registry)
    with contextlib.suppress(ClientError):
        ecr.delete_signing_configuration()
    with raises("SigningConfigurationNotFoundException"):
        ecr.get_signing_configuration()
    with raises("SigningConfigurationNotFoundException"):
        ecr.delete_signing_configuration()
    with raises("InvalidParameterException"):
        ecr.put_signing_configuration(
            signingConfiguration={"rules": [{"signingProfileArn": "arn:aws:kms:nope"}]}
        )

    canceled, canceled_arn = _profile(registry, "gone")
    signer.cancel_signing_profile(profileName=canceled)
    missing_arn = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/{profile_name('missing')}"
    prefix = unique("failing")
    rules = [_rule(canceled_arn, f"{prefix}/*"), _rule(missing_arn, f"{prefix}/app")]
    ecr.put_signing_configuration(signingConfiguration={"rules": rules})
    name = f"{prefix}/app"
    push(registry, small_image, f"{name}:1")
    statuses = {
        s["signingProfileArn"]: s for s in wait_signed(ecr, name, small_image.manifest_digest)
    }
    assert set(statuses) == {canceled_arn, missing_arn}
    assert statuses[canceled_arn]["status"] == "FAILED"
    assert statuses[canceled_arn]["failureCode"] == "SigningProfileNotActive"
    assert statuses[missing_arn]["failureCode"] == "SigningProfileNotFound"
    assert all(s["failureReason"] for s in statuses.values())

    with raises("ImageNotFoundException"):
        ecr.describe_image_signing_status(repositoryName=name, imageId={"imageTag": "nope"})
    with raises("RepositoryNotFoundException"):
        ecr.describe_image_signing_status(
            repositoryName=unique("absent"), imageId={"imageTag": "1"}
        )
    ecr.delete_signing_configuration()


def test_the_readme_flow_with_the_aws_cli(registry, small_image: Image) -> None:
    """README's managed-signing commands, as written, with the AWS CLI."""
    name = profile_name("cli")
    arn = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/{name}"
    created = aws(
        registry,
        "signer",
        "put-signing-profile",
        "--profile-name",
        name,
        "--platform-id",
        PLATFORM,
        "--signature-validity-period",
        "value=12,type=MONTHS",
    ).json
    assert created["arn"] == arn
    prefix = unique("clisigned")
    configuration = {
        "rules": [
            {
                "signingProfileArn": arn,
                "repositoryFilters": [{"filter": f"{prefix}/*", "filterType": "WILDCARD_MATCH"}],
            }
        ]
    }
    put = aws(
        registry,
        "ecr",
        "put-signing-configuration",
        "--signing-configuration",
        json.dumps(configuration),
    ).json
    assert put["signingConfiguration"] == configuration
    repo = f"{prefix}/app"
    push(registry, small_image, f"{repo}:1.0")
    wait_signed(client(registry), repo, small_image.manifest_digest)
    status = aws(
        registry,
        "ecr",
        "describe-image-signing-status",
        "--repository-name",
        repo,
        "--image-id",
        "imageTag=1.0",
    ).json
    assert status["signingStatuses"] == [{"signingProfileArn": arn, "status": "COMPLETE"}]
    listed = aws(registry, "signer", "list-signing-profiles").json["profiles"]
    assert name in [p["profileName"] for p in listed]
    aws(registry, "ecr", "delete-signing-configuration")
    missing = aws(registry, "ecr", "get-signing-configuration", check=False)
    assert cli_error(missing) == "SigningConfigurationNotFoundException"
