"""Managed signing signs as the principal who pushed, as on ECR: that principal needs
`signer:SignPayload` on the signing profile. Users made through the IAM API (boto3) push with
skopeo and with PutImage (boto3); DescribeImageSigningStatus says FAILED with
SigningProfileAccessDenied without the permission, and COMPLETE with it."""

from __future__ import annotations

import json

import boto3
import pytest

from e2e.ecrhelp import REGION, client, push, unique
from e2e.signinghelp import PLATFORM, profile_name, signer_client, wait_signed
from imagebuilder import Image, build_image

PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:CreateRepository",
    "ecr:DescribeImageSigningStatus",
]


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(tmp_path_factory.mktemp("signing-permission") / "img", [1200])


def _user(registry, statements: list[dict]) -> tuple[str, str]:
    """A user with these policy statements, through the IAM API; its (key id, secret)."""
    key, secret = registry.credentials
    iam = boto3.client(
        "iam", endpoint_url=registry.url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
    )  # fmt: skip
    name = unique("pusher")
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_user_policy(UserName=name, PolicyName="push", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=name)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


def test_signing_needs_sign_payload_on_the_profile(registry, small_image: Image) -> None:
    ecr = client(registry)
    name = profile_name("perm")
    arn = signer_client(registry).put_signing_profile(profileName=name, platformId=PLATFORM)["arn"]
    prefix = unique("signperm")
    rule = {
        "signingProfileArn": arn,
        "repositoryFilters": [{"filter": f"{prefix}/*", "filterType": "WILDCARD_MATCH"}],
    }
    ecr.put_signing_configuration(signingConfiguration={"rules": [rule]})
    push_only = {"Effect": "Allow", "Action": PUSH, "Resource": "*"}
    sign = {"Effect": "Allow", "Action": "signer:SignPayload", "Resource": arn}
    other_profile = {
        "Effect": "Allow",
        "Action": "signer:SignPayload",
        "Resource": arn.rsplit("/", 1)[0] + "/someone_else",
    }
    denied_key = _user(registry, [push_only, other_profile])
    allowed_key = _user(registry, [push_only, sign])
    digest = small_image.manifest_digest
    try:
        # Without the permission (a grant on another profile does not count): FAILED.
        denied = f"{prefix}/denied"
        push(registry, small_image, f"{denied}:1", creds=":".join(denied_key))
        [status] = wait_signed(ecr, denied, digest)
        assert status["signingProfileArn"] == arn
        assert status["status"] == "FAILED"
        assert status["failureCode"] == "SigningProfileAccessDenied"
        assert "signer:SignPayload" in status["failureReason"]
        assert arn in status["failureReason"]
        # The ECR door's PutImage signs as its caller too.
        as_denied = client(registry, *denied_key)
        manifest = {**json.loads(small_image.manifest), "annotations": {"variant": "api"}}
        put = as_denied.put_image(
            repositoryName=denied, imageManifest=json.dumps(manifest), imageTag="api"
        )
        api_digest = put["image"]["imageId"]["imageDigest"]
        [status] = wait_signed(as_denied, denied, api_digest)
        assert (status["status"], status["failureCode"]) == ("FAILED", "SigningProfileAccessDenied")
        # Nothing was attached to either image.
        for image in (digest, api_digest):
            listed = registry.session().get(f"{registry.url}/v2/{denied}/referrers/{image}")
            assert listed.json()["manifests"] == []

        # With signer:SignPayload on the profile: COMPLETE, and the signature is attached.
        allowed = f"{prefix}/allowed"
        push(registry, small_image, f"{allowed}:1", creds=":".join(allowed_key))
        assert wait_signed(client(registry, *allowed_key), allowed, digest) == [
            {"signingProfileArn": arn, "status": "COMPLETE"}
        ]
        listed = registry.session().get(f"{registry.url}/v2/{allowed}/referrers/{digest}")
        assert len(listed.json()["manifests"]) == 1
    finally:
        ecr.delete_signing_configuration()
