"""Issue 11's malformed inputs that answered 500 (or were accepted and broke later), each against
a real server: every one is now a 4xx in its protocol's error shape."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from e2e.ecrhelp import ACCOUNT, REGION, client, raises, signed_post, unique
from e2e.ocihttp import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Client, assert_error, descriptor
from server import Server

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
PRESIGNED = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2F{region}%2F"
    "{service}%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=" + "0" * 64
)
HUGE_DATE = "Fri, 31 Dec 9999 23:59:59 -2359"


def ecr_error(response: requests.Response) -> str:
    """The AWS JSON 1.1 error type, after checking the shape `{"__type", "message"}`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) >= {"__type", "message"} and isinstance(body["message"], str), body
    return body["__type"].rsplit("#", 1)[-1]


def iam_error(response: requests.Response) -> str:
    """The IAM error code, after checking the `<ErrorResponse>` shape."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.text.startswith("<ErrorResponse"), response.text[:300]
    return response.text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def ecr_post(server: Server, query: str = "", headers: dict[str, str] | None = None):
    return requests.post(
        f"{server.url}/?{query}",
        data=b"{}",
        headers={
            "X-Amz-Target": ECR_TARGET + "DescribeRepositories",
            "Content-Type": "application/x-amz-json-1.1",
            **(headers or {}),
        },
        timeout=30,
    )


def iam_post(server: Server, query: str = "", headers: dict[str, str] | None = None):
    return requests.post(
        f"{server.url}/?{query}",
        data="Action=ListUsers&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        timeout=30,
    )


# -- SigV4 parsing before authentication -----------------------------------------------------------


def test_presigned_expires_with_a_superscript_digit(registry: Server) -> None:
    ecr_query = PRESIGNED.format(region=REGION, service="ecr") + "&X-Amz-Expires=%C2%B2"
    assert ecr_error(ecr_post(registry, ecr_query)) == "IncompleteSignatureException"
    iam_query = PRESIGNED.format(region=REGION, service="iam") + "&X-Amz-Expires=%C2%B2"
    assert iam_error(iam_post(registry, iam_query)) == "IncompleteSignature"
    long_query = PRESIGNED.format(region=REGION, service="ecr") + "&X-Amz-Expires=" + "9" * 5000
    assert ecr_error(ecr_post(registry, long_query)) == "IncompleteSignatureException"


@pytest.mark.parametrize("service", ["ecr", "iam"])
def test_date_header_past_year_9999(registry: Server, service: str) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/99991231/{REGION}/{service}/aws4_request, "
        "SignedHeaders=date;host, Signature=" + "0" * 64
    )
    headers = {"Authorization": authorization, "Date": HUGE_DATE}
    if service == "ecr":
        assert ecr_error(ecr_post(registry, headers=headers)) == "IncompleteSignatureException"
    else:
        assert iam_error(iam_post(registry, headers=headers)) == "IncompleteSignature"


def test_presigned_date_in_year_9999(registry: Server) -> None:
    query = (
        PRESIGNED.format(region=REGION, service="ecr").replace("20260101", "99991231")
        + "&X-Amz-Expires=604800"
    )
    assert ecr_error(ecr_post(registry, query)) == "InvalidSignatureException"


def test_credential_scope_must_name_the_deployment_region(registry: Server) -> None:
    key, secret = registry.credentials
    request = AWSRequest(
        method="POST",
        url=registry.url + "/",
        data=b"{}",
        headers={
            "X-Amz-Target": ECR_TARGET + "DescribeRepositories",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(key, secret), "ecr", "eu-west-1").add_auth(request)
    response = requests.post(
        request.url, data=request.body, headers=dict(request.headers.items()), timeout=30
    )
    assert ecr_error(response) == "InvalidSignatureException"
    assert "region" in response.json()["message"]
    ecr = boto3.client(
        "ecr",
        endpoint_url=registry.url,
        region_name="ap-south-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )
    with raises("InvalidSignatureException"):
        ecr.describe_repositories()
    client(registry).describe_repositories()  # the deployment's region still works


# -- /v2/ pagination -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(registry: Server) -> str:
    name = unique("hostile/repo")
    Client(registry).push_image(name, "latest")
    return name


@pytest.mark.parametrize(
    "n",
    ["%C2%B2", "9" * 5000, "%D9%A3", "1e3", "-1"],
    ids=["superscript", "5000-nines", "arabic-indic", "float", "negative"],
)
def test_pagination_number_invalid(registry: Server, repo: str, n: str) -> None:
    oci = Client(registry)
    for path in (f"/v2/_catalog?n={n}", f"/v2/{repo}/tags/list?n={n}"):
        assert_error(oci.get(path), 400, "PAGINATION_NUMBER_INVALID")


def test_pagination_large_but_legal_number(registry: Server, repo: str) -> None:
    response = Client(registry).get(f"/v2/{repo}/tags/list?n=999999999999")
    assert response.status_code == 200 and response.json()["tags"] == ["latest"]


# -- manifests -------------------------------------------------------------------------------------


def _manifest(registry: Server, repo: str, **config_extra: Any) -> dict[str, Any]:
    oci = Client(registry)
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"hostile layer"
    oci.push_blob(repo, config)
    oci.push_blob(repo, layer)
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {**descriptor(OCI_CONFIG, config), **config_extra},
        "layers": [descriptor(OCI_LAYER, layer)],
    }


def test_deeply_nested_manifest(registry: Server, repo: str) -> None:
    body = b'{"schemaVersion": 2, "annotations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = Client(registry).put_manifest(repo, "deep", body, OCI_MANIFEST)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_descriptor_size_beyond_int64(registry: Server, repo: str) -> None:
    for size in (2**70, 2**63, -1):
        body = json.dumps(_manifest(registry, repo, size=size)).encode()
        response = Client(registry).put_manifest(repo, "huge", body, OCI_MANIFEST)
        assert_error(response, 400, "MANIFEST_INVALID")


def test_nan_and_float_schema_version_are_refused(registry: Server, repo: str) -> None:
    oci = Client(registry)
    good = _manifest(registry, repo)
    text = json.dumps(good)
    for body in (
        text.replace('"schemaVersion": 2', '"schemaVersion": 2.0'),
        text.replace('"schemaVersion": 2', '"schemaVersion": true'),
        text[:-1] + ', "annotations": {"x": NaN}}',
        text[:-1] + ', "extra": Infinity}',
        text[:-1] + ', "annotations": {"x": "\\ud800"}}',
    ):
        response = oci.put_manifest(repo, "odd", body.encode(), OCI_MANIFEST)
        assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(oci.get(f"/v2/{repo}/manifests/odd"), 404, "MANIFEST_UNKNOWN")
    assert oci.put_manifest(repo, "odd", text.encode(), OCI_MANIFEST).status_code == 201


# -- ECR and IAM API values ------------------------------------------------------------------------


def test_lifecycle_count_number_beyond_ecr_range(registry: Server) -> None:
    ecr = client(registry)
    name = unique("hostile/lifecycle")
    ecr.create_repository(repositoryName=name)
    for number in (10**400, 2**31):
        text = (
            '{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", '
            f'"countType": "imageCountMoreThan", "countNumber": {number}}}, '
            '"action": {"type": "expire"}}]}'
        )
        with raises("InvalidParameterException") as info:
            ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=text)
        assert "Lifecycle policy validation failure" in str(info.value)
    text = text.replace(str(2**31), str(2**31 - 1))
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=text)


@pytest.mark.parametrize("registry_id", [ACCOUNT + "\n", "\u0660" * 12])
def test_registry_id_must_match_the_whole_pattern(registry: Server, registry_id: str) -> None:
    response = signed_post(registry, "DescribeRepositories", {"registryId": registry_id})
    assert ecr_error(response) == "InvalidParameterException"


def test_policy_principal_with_a_trailing_newline(registry: Server) -> None:
    ecr = client(registry)
    name = unique("hostile/policy")
    ecr.create_repository(repositoryName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT + "\n"}, "Action": "ecr:*"}],
    }
    with raises("InvalidParameterException"):
        ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(policy))


def _iam(server: Server):
    key, secret = server.credentials
    return boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_list_users_with_a_forged_marker(registry: Server) -> None:
    iam = _iam(registry)
    for marker in ("!!!", "=", "Zm9v!"):
        with raises("InvalidInput"):
            iam.list_users(Marker=marker)


def test_user_inline_policies_share_iams_2048_character_quota(registry: Server) -> None:
    iam = _iam(registry)
    name = unique("quota")
    iam.create_user(UserName=name)

    def document(resources: int) -> str:
        arns = [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/r{i:04d}" for i in range(resources)]
        statement = {"Effect": "Allow", "Action": "ecr:*", "Resource": arns}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=" " * 40)

    small = document(20)  # ~1,100 non-whitespace characters; indented, over 2,048
    counted = sum(not c.isspace() for c in small)
    assert len(small) > 2048 and 1024 < counted < 2048
    iam.put_user_policy(UserName=name, PolicyName="one", PolicyDocument=small)
    iam.put_user_policy(UserName=name, PolicyName="one", PolicyDocument=small)  # replaces
    with raises("LimitExceeded") as info:
        iam.put_user_policy(UserName=name, PolicyName="two", PolicyDocument=small)
    assert info.value.response["Error"]["Message"] == (
        f"Maximum policy size of 2048 bytes exceeded for user {name}"
    )
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["one"]
