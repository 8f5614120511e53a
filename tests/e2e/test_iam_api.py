"""The IAM Query API (`aws iam --endpoint-url`, boto3's `iam` client) against a running server:
users, access keys, inline policies and tags managed as `cargobay admin` manages them, the keys
and policies it makes working at both front doors, IAM's error codes and statuses, and who may
call it."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from e2e.ecrhelp import ACCOUNT, REGION, allow, aws, cli_error, make_user, raises, unique
from e2e.ecrhelp import client as ecr_client
from server import Server

pytestmark = pytest.mark.backend  # users, keys and tags live in the metadata database

NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def _check_output(shape, value: Any, path: str) -> None:
    """A parsed response member is exactly of its model shape (required members, no unknown
    ones, string patterns and enums, timestamps parsed)."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), (path, value)
        assert set(value) <= set(shape.members), (path, set(value) - set(shape.members))
        for name in shape.required_members:
            assert name in value, f"{path}: required {name} missing"
        for name, item in value.items():
            _check_output(shape.members[name], item, f"{path}.{name}")
    elif kind == "list":
        assert isinstance(value, list), (path, value)
        for i, item in enumerate(value):
            _check_output(shape.member, item, f"{path}[{i}]")
    elif kind == "string":
        assert isinstance(value, str | dict), (path, value)  # dict: a decoded policy document
        if isinstance(value, str):
            if shape.enum:
                assert value in shape.enum, (path, value)
            pattern = shape.metadata.get("pattern", "")
            if pattern and "\\p{" not in pattern and "\\u" not in pattern:
                assert re.fullmatch(pattern, value, re.ASCII), (path, value, pattern)
    elif kind == "timestamp":
        assert value.tzinfo is not None and value.year >= 2024, (path, value)
    elif kind == "boolean":
        assert isinstance(value, bool), (path, value)


def iam_client(server: Server, key: str | None = None, secret: str | None = None):
    """boto3 `iam` for `server`; every 200 body is checked to be `<{Op}Response>` in IAM's
    namespace, with `<{Op}Result>` for operations that have output, and every parsed result
    against the model; every error body is `<ErrorResponse>` with Type, Code and Message."""
    if key is None:
        key, secret = server.credentials
    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )

    def before_parse(operation_model, response_dict, **_: Any) -> None:
        root = ET.fromstring(response_dict["body"])
        if response_dict["status_code"] == 200:
            name = operation_model.name
            assert root.tag == f"{NS}{name}Response", root.tag
            has_result = root.find(f"{NS}{name}Result") is not None
            assert has_result == (operation_model.output_shape is not None), name
            assert root.findtext(f"{NS}ResponseMetadata/{NS}RequestId")
        else:
            assert root.tag == f"{NS}ErrorResponse", root.tag
            error = root.find(f"{NS}Error")
            assert error is not None
            assert error.findtext(f"{NS}Type") == "Sender"
            assert error.findtext(f"{NS}Code") and error.findtext(f"{NS}Message") is not None
            assert root.findtext(f"{NS}RequestId")

    def after_call(model, parsed, **_: Any) -> None:
        if "Error" not in parsed and model.output_shape is not None:
            output = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
            _check_output(model.output_shape, output, model.name)

    iam.meta.events.register("before-parse.iam.*", before_parse)
    iam.meta.events.register("after-call.iam.*", after_call)
    return iam


def status_of(info) -> int:
    return info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def signed_form(
    server: Server, body: str, creds: tuple[str, str] | None = None, region: str = REGION
):
    """A raw IAM Query call, signed by botocore for service `iam` in `region`."""
    key, secret = creds or server.credentials
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key, secret), "iam", region).add_auth(request)
    return requests.post(
        request.url, data=request.body, headers=dict(request.headers.items()), timeout=30
    )


# -- the AWS CLI ---------------------------------------------------------------------------------


def test_cli_manages_a_user_whose_key_works_at_the_ecr_api(registry, tmp_path: Path) -> None:
    name = unique("iam-cli")
    created = aws(
        registry, "iam", "create-user", "--user-name", name, "--tags", "Key=team,Value=red"
    )
    user = created.json["User"]
    assert user["UserName"] == name and user["Arn"] == user_arn(name) and user["Path"] == "/"
    assert user["Tags"] == [{"Key": "team", "Value": "red"}]
    assert cli_error(aws(registry, "iam", "create-user", "--user-name", name, check=False)) == (
        "EntityAlreadyExists"
    )

    key = aws(registry, "iam", "create-access-key", "--user-name", name).json["AccessKey"]
    assert key["UserName"] == name and key["Status"] == "Active"
    creds = (key["AccessKeyId"], key["SecretAccessKey"])
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(allow("ecr:DescribeRepositories")))
    aws(registry, "iam", "put-user-policy", "--user-name", name, "--policy-name", "describe",
        "--policy-document", f"file://{policy}")  # fmt: skip

    got = aws(registry, "iam", "get-user-policy", "--user-name", name, "--policy-name", "describe")
    assert got.json["PolicyDocument"] == allow("ecr:DescribeRepositories")
    listed = aws(registry, "iam", "list-users").json["Users"]
    assert name in [u["UserName"] for u in listed]
    assert aws(registry, "iam", "get-user", "--user-name", name).json["User"]["Tags"] == [
        {"Key": "team", "Value": "red"}
    ]

    # The new user's key at the ECR API: what its policy allows, and nothing more.
    ecr = ecr_client(registry, *creds)
    ecr.describe_repositories()
    with raises("AccessDeniedException"):
        ecr.create_repository(repositoryName=unique("iam/denied"))

    # DeleteUser refuses while keys or policies remain, as IAM does.
    proc = aws(registry, "iam", "delete-user", "--user-name", name, check=False)
    assert cli_error(proc) == "DeleteConflict" and "access keys" in proc.stderr
    aws(registry, "iam", "delete-access-key", "--user-name", name, "--access-key-id", creds[0])
    proc = aws(registry, "iam", "delete-user", "--user-name", name, check=False)
    assert cli_error(proc) == "DeleteConflict" and "policies" in proc.stderr
    aws(registry, "iam", "delete-user-policy", "--user-name", name, "--policy-name", "describe")
    aws(registry, "iam", "delete-user", "--user-name", name, output_json=False)
    proc = aws(registry, "iam", "get-user", "--user-name", name, check=False)
    assert cli_error(proc) == "NoSuchEntity"
    with raises("UnrecognizedClientException"):
        ecr.describe_repositories()


# -- boto3 ---------------------------------------------------------------------------------------


def test_boto3_users_keys_policies_and_tags(registry) -> None:
    iam = iam_client(registry)
    assert iam.get_user()["User"]["Arn"] == user_arn("admin")  # no UserName: the caller

    names = sorted(unique("iam-page") for _ in range(3))
    for name in names:
        iam.create_user(UserName=name)
    everyone = [u["UserName"] for u in iam.list_users(MaxItems=1000)["Users"]]
    assert set(names) <= set(everyone) and len(everyone) == len(set(everyone))
    first = iam.list_users(MaxItems=2)
    assert first["IsTruncated"] is True and len(first["Users"]) == 2 and first["Marker"]
    paged = [
        u["UserName"]
        for p in iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2})
        for u in p["Users"]
    ]
    assert paged == everyone
    assert iam.list_users(PathPrefix="/nowhere/")["Users"] == []

    name = names[0]
    a = iam.create_access_key(UserName=name)["AccessKey"]
    b = iam.create_access_key(UserName=name)["AccessKey"]
    listed = iam.list_access_keys(UserName=name)
    assert {k["AccessKeyId"] for k in listed["AccessKeyMetadata"]} == {
        a["AccessKeyId"],
        b["AccessKeyId"],
    }
    assert listed["IsTruncated"] is False
    with raises("LimitExceeded") as info:
        iam.create_access_key(UserName=name)
    assert status_of(info) == 409
    iam.delete_access_key(UserName=name, AccessKeyId=b["AccessKeyId"])

    document = allow("ecr:DescribeRepositories", "ecr:ListImages")
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps(document))
    iam.put_user_policy(UserName=name, PolicyName="also", PolicyDocument=json.dumps(document))
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["also", "read"]
    got = iam.get_user_policy(UserName=name, PolicyName="read")
    assert got["PolicyDocument"] == document and got["UserName"] == name
    iam.delete_user_policy(UserName=name, PolicyName="also")
    with raises("NoSuchEntity") as info:
        iam.delete_user_policy(UserName=name, PolicyName="also")
    assert status_of(info) == 404

    iam.tag_user(
        UserName=name, Tags=[{"Key": "team", "Value": "red"}, {"Key": "tier", "Value": ""}]
    )
    iam.tag_user(UserName=name, Tags=[{"Key": "TEAM", "Value": "blue"}])  # keys ignore case
    assert iam.list_user_tags(UserName=name)["Tags"] == [
        {"Key": "TEAM", "Value": "blue"},
        {"Key": "tier", "Value": ""},
    ]
    iam.untag_user(UserName=name, TagKeys=["tier"])
    assert iam.get_user(UserName=name)["User"]["Tags"] == [{"Key": "TEAM", "Value": "blue"}]
    with raises("LimitExceeded"):
        iam.tag_user(UserName=name, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])

    for other in names[1:]:
        iam.delete_user(UserName=other)


def test_principal_tags_set_through_iam_feed_policy_conditions(registry) -> None:
    iam = iam_client(registry)
    name = unique("iam-tagged")
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecr:DescribeRepositories",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}},
            }
        ],
    }
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    ecr = ecr_client(registry, key["AccessKeyId"], key["SecretAccessKey"])
    with raises("AccessDeniedException"):
        ecr.describe_repositories()
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "red"}])
    ecr.describe_repositories()
    iam.untag_user(UserName=name, TagKeys=["team"])
    with raises("AccessDeniedException"):
        ecr.describe_repositories()


def test_errors_by_code_and_status(registry) -> None:
    iam = iam_client(registry)
    name = unique("iam-err")
    iam.create_user(UserName=name)

    expected = [
        ("NoSuchEntity", 404, lambda: iam.get_user(UserName=unique("nobody"))),
        ("EntityAlreadyExists", 409, lambda: iam.create_user(UserName=name)),
        ("ValidationError", 400, lambda: iam.create_user(UserName="no spaces!")),
        ("NoSuchEntity", 404, lambda: iam.get_user_policy(UserName=name, PolicyName="none")),
        (
            "NoSuchEntity",
            404,
            lambda: iam.update_access_key(
                UserName=name, AccessKeyId="AKIAAAAAAAAAAAAAAAAA", Status="Inactive"
            ),
        ),
        ("NoSuchEntity", 404, lambda: iam.list_access_keys(UserName=unique("nobody"))),
        ("InvalidAction", 400, lambda: iam.list_groups()),
    ]
    for code, status, call in expected:
        with raises(code) as info:
            call()
        assert status_of(info) == status, (code, info.value.response)

    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:X"}]}
    with raises("MalformedPolicyDocument") as info:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(bad))
    assert "Resource" in info.value.response["Error"]["Message"]
    with raises("MalformedPolicyDocument"):
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument="{not json")
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []

    key, _ = registry.credentials
    for creds, code in (
        (("AKIANOSUCHKEY0000000", "secret"), "InvalidClientTokenId"),
        ((key, "wrong-secret"), "SignatureDoesNotMatch"),
    ):
        with raises(code) as info:
            iam_client(registry, *creds).list_users()
        assert status_of(info) == 403

    # IAM is global: signed for us-east-1 (or the deployment's own region), never another.
    response = signed_form(registry, "Action=GetUser&Version=2010-05-08", region="us-east-1")
    assert response.status_code == 200 and "<UserName>admin</UserName>" in response.text
    response = signed_form(registry, "Action=GetUser&Version=2010-05-08", region="eu-west-3")
    assert response.status_code == 403 and "scoped to a valid region" in response.text
    response = signed_form(registry, "Version=2010-05-08&Action=NoSuchThing")
    assert response.status_code == 400 and "<Code>InvalidAction</Code>" in response.text
    response = requests.post(
        registry.url + "/",
        data="Action=ListUsers&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 403 and "MissingAuthenticationToken" in response.text
    iam.delete_user(UserName=name)


def test_who_may_call_iam(registry, tmp_path: Path) -> None:
    # A user with ECR permissions only is refused every IAM action.
    plain = make_user(registry, unique("iam-plain"), allow("ecr:*"), tmp=tmp_path)
    with raises("AccessDenied") as info:
        iam_client(registry, *plain).list_users()
    assert status_of(info) == 403
    assert f"iam:ListUsers on resource: {user_arn('')}" in info.value.response["Error"]["Message"]
    with raises("AccessDenied"):
        iam_client(registry, *plain).create_user(UserName=unique("iam-x"))
    with raises("AccessDenied"):
        iam_client(registry, *plain).get_user()

    # A delegated operator: IAM actions on users named ops-*, and reading itself.
    operator = unique("iam-operator")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": user_arn("ops-*")},
            {"Effect": "Allow", "Action": "iam:GetUser", "Resource": user_arn("${aws:username}")},
            {"Effect": "Deny", "Action": "iam:DeleteUser", "Resource": "*"},
        ],
    }
    ops = iam_client(registry, *make_user(registry, operator, policy, tmp=tmp_path))
    assert ops.get_user()["User"]["UserName"] == operator
    managed = unique("ops-svc")
    ops.create_user(UserName=managed)
    ops.put_user_policy(UserName=managed, PolicyName="p", PolicyDocument=json.dumps(allow("ecr:*")))
    new_key = ops.create_access_key(UserName=managed)["AccessKey"]
    ecr_client(registry, new_key["AccessKeyId"], new_key["SecretAccessKey"]).describe_repositories()
    with raises("AccessDenied") as info:
        ops.create_user(UserName=unique("dev"))
    assert "because no identity-based policy allows" in info.value.response["Error"]["Message"]
    with raises("AccessDenied") as info:
        ops.delete_user(UserName=managed)
    assert "explicit deny" in info.value.response["Error"]["Message"]
    with raises("AccessDenied"):
        ops.get_user(UserName="admin")
    with raises("AccessDenied"):
        ops.list_users()
    # The administrator may do what the operator may not.
    iam_client(registry).delete_user_policy(UserName=managed, PolicyName="p")


def test_inactive_key_stops_authenticating(registry) -> None:
    """Deactivation on a two-worker server: the ECR API reads the key's status on every call;
    a key not yet used on /v2/ is refused there by every worker."""
    iam = iam_client(registry)
    name = unique("iam-inactive")
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="p", PolicyDocument=json.dumps(allow("ecr:DescribeRepositories"))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    creds = (key["AccessKeyId"], key["SecretAccessKey"])
    ecr = ecr_client(registry, *creds)
    ecr.describe_repositories()

    iam.update_access_key(UserName=name, AccessKeyId=creds[0], Status="Inactive")
    assert iam.list_access_keys(UserName=name)["AccessKeyMetadata"][0]["Status"] == "Inactive"
    with raises("UnrecognizedClientException"):
        ecr.describe_repositories()
    with raises("InvalidClientTokenId"):
        iam_client(registry, *creds).get_user()
    for _ in range(4):  # both workers
        assert requests.get(f"{registry.url}/v2/", auth=creds, timeout=10).status_code == 401

    iam.update_access_key(UserName=name, AccessKeyId=creds[0], Status="Active")
    ecr.describe_repositories()
    assert requests.get(f"{registry.url}/v2/", auth=creds, timeout=10).status_code == 200


def test_deactivation_and_deletion_beat_the_basic_auth_cache(tmp_path: Path) -> None:
    """A successful Basic check is remembered for up to 30 s; the process that deactivates or
    deletes a key forgets it at once (one worker here, so that process serves every call)."""
    server = Server(tmp_path / "data", workers=1).start()
    try:
        iam = iam_client(server)
        iam.create_user(UserName="cached")
        key = iam.create_access_key(UserName="cached")["AccessKey"]
        creds = (key["AccessKeyId"], key["SecretAccessKey"])
        session = requests.Session()
        session.auth = creds

        def v2() -> int:
            return session.get(f"{server.url}/v2/", timeout=10).status_code

        assert v2() == 200
        iam.update_access_key(UserName="cached", AccessKeyId=creds[0], Status="Inactive")
        assert v2() == 401
        iam.update_access_key(UserName="cached", AccessKeyId=creds[0], Status="Active")
        assert v2() == 200
        iam.delete_access_key(UserName="cached", AccessKeyId=creds[0])
        assert v2() == 401

        key = iam.create_access_key(UserName="cached")["AccessKey"]
        session.auth = (key["AccessKeyId"], key["SecretAccessKey"])
        assert v2() == 200
        iam.delete_access_key(UserName="cached", AccessKeyId=key["AccessKeyId"])
        iam.delete_user(UserName="cached")
        assert v2() == 401
    finally:
        server.discard()
