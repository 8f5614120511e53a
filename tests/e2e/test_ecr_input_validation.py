"""Malformed ECR and IAM requests against a real `cargobay serve`: each answers a 4xx AWS error
from the model-driven validator (or the token and form decoders), never a 500
`ServerException`, and the server keeps serving.

boto3 sends what its serializer can with `parameter_validation=False`; shapes it cannot
serialize (a string where a structure belongs) go as raw SigV4-signed requests."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests

from e2e.ecrhelp import client, raises, signed_post, unique
from e2e.test_iam_api import signed_form
from imagebuilder import build_image

pytestmark = pytest.mark.backend

ENUM = (
    "1 validation error detected: Value 'BOGUS' at 'filter.tagStatus' failed to satisfy "
    "constraint: Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]"
)
NAME_PATTERN = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"


@pytest.fixture(scope="module")
def ecr(registry):
    """boto3 with client-side validation off, so bad inputs reach the server."""
    return client(registry, parameter_validation=False)


@pytest.fixture(scope="module")
def repo(ecr) -> str:
    name = unique("validation/repo")
    ecr.create_repository(repositoryName=name)
    return name


def _error(response: requests.Response, code: str, status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert body["__type"] == code, body
    assert response.headers["x-amzn-ErrorType"] == code
    return body["message"]


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _healthy(registry, ecr) -> None:
    assert requests.get(f"{registry.url}/healthz", timeout=10).ok
    assert "repositories" in ecr.describe_repositories(maxResults=1)


# -- types: SerializationException, as AWS's JSON deserializer answers -----------------------


@pytest.mark.parametrize(
    ("operation", "payload", "where"),
    [
        ("DescribeImages", {"filter": "x"}, "filter"),
        ("BatchGetImage", {"imageIds": [3]}, "imageIds.1.member"),
        ("BatchGetImage", {"imageIds": [{"imageTag": ["a"]}]}, "imageIds.1.member.imageTag"),
        ("BatchDeleteImage", {"imageIds": [{"imageDigest": 7}]}, "imageIds.1.member.imageDigest"),
        ("PutImage", {"imageManifest": "{}", "imageTag": 5}, "imageTag"),
        ("CreateRepository", {"imageScanningConfiguration": "yes"}, "imageScanningConfiguration"),
        ("ListImages", {"maxResults": "10"}, "maxResults"),
        ("ListImages", {"maxResults": 2**70}, "maxResults"),
    ],
)
def test_wrong_json_types_are_serialization_errors(
    registry, ecr, repo, operation: str, payload: dict[str, Any], where: str
) -> None:
    response = signed_post(registry, operation, {"repositoryName": repo, **payload})
    assert f"at '{where}'" in _error(response, "SerializationException")
    _healthy(registry, ecr)


def test_integer_image_tag_through_boto3(ecr, repo) -> None:
    with raises("SerializationException") as info:
        ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": 5}])
    assert "imageIds.1.member.imageTag" in info.value.response["Error"]["Message"]


def test_lone_surrogates_in_a_manifest(registry, ecr, repo, tmp_path) -> None:
    image = build_image(tmp_path / "image", [512])
    manifest = image.manifest.decode()
    # In the JSON string value itself, and inside the manifest's own JSON text.
    outer = b'{"repositoryName": "%s", "imageTag": "t", "imageManifest": "\\ud800"}' % (
        repo.encode()
    )
    assert "imageManifest" in _error(
        signed_post(registry, "PutImage", outer), "SerializationException"
    )
    inner = manifest.replace('"schemaVersion"', '"\ud800", "schemaVersion"', 1)
    response = signed_post(
        registry, "PutImage", {"repositoryName": repo, "imageTag": "t", "imageManifest": inner}
    )
    _error(response, "SerializationException")
    _healthy(registry, ecr)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"repositoryName": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"filter": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
    ],
    ids=["array", "member", "object"],
)
def test_deeply_nested_bodies(registry, ecr, body: bytes) -> None:
    _error(signed_post(registry, "DescribeImages", body), "SerializationException")
    _healthy(registry, ecr)


def test_nesting_in_unknown_members_is_ignored(registry, repo) -> None:
    """AWS ignores members its model does not know; so does the validator (no walk into them)."""
    body = json.dumps({"repositoryName": repo, "zzz": json.loads("[" * 500 + "]" * 500)})
    response = signed_post(registry, "DescribeImages", body.encode())
    assert response.status_code == 200, response.text


# -- constraints: InvalidParameterException in AWS's message format --------------------------


def test_enum_violation_message(ecr, repo) -> None:
    with raises("InvalidParameterException") as info:
        ecr.describe_images(repositoryName=repo, filter={"tagStatus": "BOGUS"})
    assert info.value.response["Error"]["Message"] == ENUM


def test_several_violations_are_counted(registry) -> None:
    response = signed_post(
        registry, "DescribeImages", {"repositoryName": "A", "maxResults": 0, "registryId": "1"}
    )
    message = _error(response, "InvalidParameterException")
    assert message.startswith("3 validation errors detected: ")
    assert message.count("; ") == 2


def test_registry_id_with_a_trailing_newline(ecr) -> None:
    with raises("InvalidParameterException") as info:
        ecr.describe_repositories(registryId="000000000000\n")
    assert (
        "Member must satisfy regular expression pattern: [0-9]{12}"
        in (info.value.response["Error"]["Message"])
    )


def test_repository_names_follow_the_model_pattern(ecr) -> None:
    """The model's pattern (as the OCI distribution grammar) allows `__` as one separator
    (`a__b`), but not `___`, a leading or trailing separator, or capitals."""
    base = unique("names")
    ecr.create_repository(repositoryName=f"{base}/a__b")
    for bad in (f"{base}/a___b", f"{base}/b_", f"{base}/_b", f"{base}/A"):
        with raises("InvalidParameterException") as info:
            ecr.create_repository(repositoryName=bad)
        assert NAME_PATTERN in info.value.response["Error"]["Message"], bad
    names = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
    assert f"{base}/a__b" in names and f"{base}/a___b" not in names


def test_missing_required_member(registry) -> None:
    message = _error(signed_post(registry, "PutLifecyclePolicy", {}), "InvalidParameterException")
    assert (
        "Value null at 'repositoryName' failed to satisfy constraint: Member must not be null"
        in (message)
    )


# -- tokens: decoded by the actions, checked for their shape ---------------------------------


@pytest.mark.parametrize(
    ("operation", "token"),
    [
        ("ListImages", _token({"a": 1})),
        ("ListImages", _token(["a", 1])),
        ("ListImages", _token("digest")),
        ("DescribeImages", _token(["a", "b"])),
        ("DescribeImages", _token(None)),
        ("DescribeRepositories", _token(12)),
        ("DescribeRepositories", _token("\ud800")),
        ("DescribeRepositories", base64.urlsafe_b64encode(b"[" * 5000).decode()),
        ("DescribeRepositories", "!!not-base64!!"),
    ],
    ids=["object", "mixed-list", "string", "list", "null", "number", "surrogate", "deep", "junk"],
)
def test_tokens_of_the_wrong_shape(registry, ecr, repo, operation: str, token: str) -> None:
    payload = {"nextToken": token}
    if operation != "DescribeRepositories":
        payload["repositoryName"] = repo
    message = _error(signed_post(registry, operation, payload), "InvalidParameterException")
    assert "nextToken" in message
    _healthy(registry, ecr)


# -- the IAM Query door ----------------------------------------------------------------------


def _iam(registry, body: str) -> requests.Response:
    return signed_form(registry, body)


@pytest.mark.parametrize(
    "extra",
    [
        "Tags.member.%C2%B2.Key=k&Tags.member.%C2%B2.Value=v",
        "Tags.member." + "9" * 5000 + ".Key=k",
        "Tags.member.0.Key=k",
    ],
    ids=["superscript", "5000-digits", "zero"],
)
def test_iam_list_indices(registry, ecr, extra: str) -> None:
    body = f"Action=CreateUser&Version=2010-05-08&UserName={unique('idx')}&{extra}"
    response = _iam(registry, body)
    assert response.status_code == 400, response.text
    assert "<Code>ValidationError</Code>" in response.text
    _healthy(registry, ecr)


def test_iam_constraints_from_the_model(registry) -> None:
    response = _iam(registry, "Action=ListUsers&Version=2010-05-08&MaxItems=%C2%B2")
    assert response.status_code == 400 and "<Code>ValidationError</Code>" in response.text
    response = _iam(registry, "Action=ListUsers&Version=2010-05-08&MaxItems=0")
    assert response.status_code == 400
    assert (
        "1 validation error detected: Value &apos;0&apos; at &apos;maxItems&apos;" in response.text
        or "1 validation error detected: Value '0' at 'maxItems'" in response.text
    ), response.text
    name = unique("tagged")
    response = _iam(
        registry,
        f"Action=CreateUser&Version=2010-05-08&UserName={name}"
        "&Tags.member.1.Key=bad%21&Tags.member.1.Value=v",
    )
    assert response.status_code == 400 and "tags.1.member.key" in response.text


# -- documents carried inside string members (policies, manifests) ---------------------------

DEEP = "[" * 5000 + "]" * 5000


def test_deeply_nested_documents_in_string_members(registry, ecr, repo) -> None:
    response = signed_post(
        registry, "SetRepositoryPolicy", {"repositoryName": repo, "policyText": DEEP}
    )
    _error(response, "InvalidParameterException")
    response = signed_post(
        registry, "PutImage", {"repositoryName": repo, "imageTag": "deep", "imageManifest": DEEP}
    )
    _error(response, "InvalidParameterException")
    user = unique("deep")
    assert _iam(registry, f"Action=CreateUser&Version=2010-05-08&UserName={user}").ok
    response = _iam(
        registry,
        f"Action=PutUserPolicy&Version=2010-05-08&UserName={user}&PolicyName=p"
        f"&PolicyDocument={'%5B' * 5000}{'%5D' * 5000}",
    )
    assert response.status_code == 400, response.text
    assert "<Code>MalformedPolicyDocument</Code>" in response.text
    _healthy(registry, ecr)


def test_iam_markers_are_checked(registry) -> None:
    for user in (unique("marker-a"), unique("marker-b")):
        assert _iam(registry, f"Action=CreateUser&Version=2010-05-08&UserName={user}").ok
    first = _iam(registry, "Action=ListUsers&Version=2010-05-08&MaxItems=1")
    marker = re.search(r"<Marker>([^<]+)</Marker>", first.text)
    assert first.ok and marker, first.text
    second = _iam(registry, f"Action=ListUsers&Version=2010-05-08&MaxItems=1&Marker={marker[1]}")
    assert second.ok and second.text != first.text
    for bad in ("%21%21%21", "YQ", "YWJj%2B"):
        response = _iam(registry, f"Action=ListUsers&Version=2010-05-08&Marker={bad}")
        assert response.status_code == 400, (bad, response.text)
        assert "<Code>InvalidInput</Code>" in response.text, (bad, response.text)
