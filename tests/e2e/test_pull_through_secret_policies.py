"""Secrets Manager resource policies are evaluated as AWS evaluates them, with boto3 against a
real `cargobay serve`: an explicit Deny in the secret's policy wins over an identity Allow (and
over the account's administrator); within the account the secret's policy alone may allow; a
caller in another account needs both its identity policy and the secret's policy. The
pull-through cache reads a rule's credential as ECR's pull-through role, which the secret's
policy may deny (skopeo pulls through an htpasswd Distribution upstream)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from e2e.ecrhelp import REGION, allow, aws, make_user, pull, pulled_manifest, unique
from e2e.test_pull_through_cache import create_rule
from imagebuilder import build_image
from server import Server
from upstream.distribution import PASSWORD, USER, Distribution

ACCOUNT = "000000000000"
OTHER = "222233334444"
ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/pullthroughcache.ecr.amazonaws.com/"
    "AWSServiceRoleForECRPullThroughCache"
)


@dataclass
class Setup:
    server: Server
    upstream: Distribution


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("secret-policies")
    upstream = Distribution(root / "upstream", "basic").start()
    server = Server(root / "data")
    try:
        server.start(timeout=120)
        yield Setup(server, upstream)
    finally:
        server.discard()
        upstream.discard()


def secrets(server: Server, creds: tuple[str, str] | None = None):
    key, secret = creds or server.credentials
    return boto3.client(
        "secretsmanager", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def policy(effect: str, principal: object, action: str = "secretsmanager:GetSecretValue") -> str:
    statement = {"Effect": effect, "Principal": principal, "Action": action, "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def denied(call) -> bool:
    try:
        call()
    except Exception as exc:  # botocore's ClientError
        return getattr(exc, "response", {}).get("Error", {}).get("Code") == "AccessDeniedException"
    return False


def test_a_deny_in_the_secret_policy_wins_within_the_account(setup: Setup, tmp_path: Path) -> None:
    admin_client = secrets(setup.server)
    arn = admin_client.create_secret(Name=unique("app/db"), SecretString="hunter2")["ARN"]
    name = unique("reader")
    reader = secrets(
        setup.server,
        make_user(setup.server, name, allow("secretsmanager:GetSecretValue"), tmp=tmp_path),
    )
    assert reader.get_secret_value(SecretId=arn)["SecretString"] == "hunter2"
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    admin_client.put_resource_policy(SecretId=arn, ResourcePolicy=policy("Deny", {"AWS": user_arn}))
    assert denied(lambda: reader.get_secret_value(SecretId=arn))
    assert admin_client.get_secret_value(SecretId=arn)["SecretString"] == "hunter2"
    # A Deny for everyone binds the account's administrator too.
    admin_client.put_resource_policy(SecretId=arn, ResourcePolicy=policy("Deny", "*"))
    assert denied(lambda: admin_client.get_secret_value(SecretId=arn))
    admin_client.delete_resource_policy(SecretId=arn)
    assert reader.get_secret_value(SecretId=arn)["SecretString"] == "hunter2"


def test_the_secret_policy_alone_may_allow_within_the_account(setup: Setup, tmp_path: Path) -> None:
    admin_client = secrets(setup.server)
    arn = admin_client.create_secret(Name=unique("app/key"), SecretString="s3cret")["ARN"]
    name = unique("nobody")
    plain = secrets(setup.server, make_user(setup.server, name))  # no identity policy
    assert denied(lambda: plain.get_secret_value(SecretId=arn))
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    admin_client.put_resource_policy(
        SecretId=arn, ResourcePolicy=policy("Allow", {"AWS": user_arn})
    )
    assert plain.get_secret_value(SecretId=arn)["SecretString"] == "s3cret"
    # The policy grants GetSecretValue only.
    assert denied(lambda: plain.describe_secret(SecretId=arn))


def test_another_account_needs_both_policies(setup: Setup, tmp_path: Path) -> None:
    admin_client = secrets(setup.server)
    arn = admin_client.create_secret(Name=unique("shared/token"), SecretString="t0k3n")["ARN"]
    with_identity = secrets(
        setup.server,
        make_user(
            setup.server, unique("outsider"), allow("secretsmanager:GetSecretValue"),
            account=OTHER, tmp=tmp_path,
        ),
    )  # fmt: skip
    without_identity = secrets(setup.server, make_user(setup.server, unique("bare"), account=OTHER))
    assert denied(lambda: with_identity.get_secret_value(SecretId=arn))  # no secret policy yet
    admin_client.put_resource_policy(
        SecretId=arn, ResourcePolicy=policy("Allow", {"AWS": f"arn:aws:iam::{OTHER}:root"})
    )
    assert with_identity.get_secret_value(SecretId=arn)["SecretString"] == "t0k3n"
    assert denied(lambda: without_identity.get_secret_value(SecretId=arn))
    # The aws CLI reads it too, by the full ARN.
    other_admin = make_user(setup.server, unique("otheradmin"), account=OTHER, is_admin=True)
    got = aws(setup.server, "secretsmanager", "get-secret-value", "--secret-id", arn,
              creds=other_admin).json  # fmt: skip
    assert got["SecretString"] == "t0k3n"


def test_the_pull_through_cache_honours_the_credential_policy(setup: Setup, tmp_path: Path) -> None:
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "image", [2048], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/guarded:v1")
    admin_client = secrets(server)
    arn = admin_client.create_secret(
        Name="ecr-pullthroughcache/guarded",
        SecretString=json.dumps({"username": USER, "accessToken": PASSWORD}),
    )["ARN"]
    create_rule(server, "guarded", upstream.url, arn)
    admin_client.put_resource_policy(SecretId=arn, ResourcePolicy=policy("Deny", {"AWS": ROLE}))
    refused = pull(server, "guarded/team/guarded:v1", tmp_path / "refused", check=False)
    assert refused.returncode != 0
    assert "UnableToAccessSecret" in refused.stderr, refused.stderr
    valid = aws(
        server, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "guarded"
    ).json  # fmt: skip
    assert valid["isValid"] is False and "resource policy" in valid["failure"]
    # API callers are not that role: the administrator still reads the secret.
    assert json.loads(admin_client.get_secret_value(SecretId=arn)["SecretString"])["username"]

    # A policy that denies someone else does not stop the cache.
    other = f"arn:aws:iam::{ACCOUNT}:user/someone-else"
    admin_client.put_resource_policy(SecretId=arn, ResourcePolicy=policy("Deny", {"AWS": other}))
    pull(server, "guarded/team/guarded:v1", tmp_path / "pulled")
    assert pulled_manifest(tmp_path / "pulled") == (image.manifest_digest, image.manifest)
