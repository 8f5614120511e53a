"""The policy language, generated: repository policies (SetRepositoryPolicy) and inline user
policies (PutUserPolicy) with hostile patterns, conditions and structure. Each document is
either accepted or refused in the API's error shape, and an accepted one is then evaluated
by real requests, which must not fail either."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.target import (
    FUZZ,
    REPO,
    FuzzTarget,
    assert_aws_json_answer,
    assert_iam_answer,
    assert_oci_answer,
)

ACCOUNT = "000000000000"
OPERATORS = [
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "StringEqualsIgnoreCase",
    "ArnLike",
    "ArnNotLike",
    "ArnEquals",
    "NumericLessThan",
    "NumericEquals",
    "DateGreaterThan",
    "DateLessThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "Null",
    "BinaryEquals",
    "ForAnyValue:StringLike",
    "ForAllValues:StringEquals",
    "StringLikeIfExists",
    "Bogus",
]
KEYS = [
    "aws:username",
    "aws:PrincipalArn",
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:PrincipalTag/team",
    "aws:TagKeys",
    "ecr:ResourceTag/env",
    "nocolon",
]

odd_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["", "²", "\n", "a\n", "${aws:username}", "${", "${x, 'd'}", "é" * 40])
glob = st.text(st.sampled_from("*?a:/-"), max_size=40)
actions = st.sampled_from(["*", "ecr:*", "ecr:Batch*", "ECR:getauthorizationtoken", "ecr:?*"]) | (
    st.builds(lambda a, b: f"{a}:{b}", glob, glob)
)
resources = (
    st.sampled_from(["*", f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPO}"])
    | glob.map(lambda g: f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{g}")
    | glob.map(lambda g: f"arn:{g}")
    | odd_text
)
principals = st.sampled_from(
    ["*", {"AWS": "*"}, {"AWS": ACCOUNT}, {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}]
) | st.dictionaries(
    st.sampled_from(["AWS", "Service", "Federated"]),
    st.lists(odd_text | st.sampled_from([ACCOUNT + "\n", "\u0661" * 12]), max_size=3),
    max_size=2,
)
values = st.one_of(
    glob,
    odd_text,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["10.0.0.0/8", "::1", "2026-01-01T00:00:00Z", "9" * 400, "1e400", "nan"]),
)
conditions = st.dictionaries(
    st.sampled_from(OPERATORS),
    st.dictionaries(st.sampled_from(KEYS), values | st.lists(values, max_size=4), max_size=3),
    max_size=3,
)


def _one_or_list(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | st.lists(strategy, max_size=4)


@st.composite
def statements(draw: st.DrawFn, resource_policy: bool) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Allow", "Deny", "allow", ""])),
        draw(st.sampled_from(["Action", "NotAction"])): draw(_one_or_list(actions)),
    }
    if resource_policy or draw(st.booleans()):
        statement[draw(st.sampled_from(["Principal", "NotPrincipal"]))] = draw(principals)
    if not resource_policy or draw(st.booleans()):
        statement[draw(st.sampled_from(["Resource", "NotResource"]))] = draw(
            _one_or_list(resources)
        )
    if draw(st.booleans()):
        statement["Condition"] = draw(conditions)
    if draw(st.integers(0, 9)) == 0:
        statement[draw(odd_text)] = draw(values)
    return statement


@st.composite
def documents(draw: st.DrawFn, resource_policy: bool) -> str:
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(odd_text)
    if shape == 1:
        return '{"Statement": ' + "[" * 3000 + "]" * 3000 + "}"
    body: dict[str, Any] = {
        "Version": draw(st.sampled_from(["2012-10-17", "2008-10-17", "2020-01-01", None])),
        "Statement": draw(
            statements(resource_policy) | st.lists(statements(resource_policy), max_size=4)
        ),
    }
    return json.dumps({k: v for k, v in body.items() if v is not None})


def _pull(fuzz: FuzzTarget, creds: tuple[str, str]) -> None:
    for path in (f"/v2/{REPO}/tags/list", f"/v2/{REPO}/manifests/latest"):
        response = fuzz.oci.session.get(fuzz.url + path, auth=creds, timeout=60)
        assert_oci_answer(response)


@settings(FUZZ, max_examples=40)
@given(document=documents(resource_policy=True))
def test_repository_policies(fuzz: FuzzTarget, document: str) -> None:
    payload = {"repositoryName": REPO, "policyText": document, "force": True}
    response = fuzz.ecr("SetRepositoryPolicy", payload)
    assert_aws_json_answer(response)
    if response.status_code == 200:
        _pull(fuzz, fuzz.user)
        _pull(fuzz, fuzz.server.credentials)
        assert_aws_json_answer(fuzz.ecr("GetRepositoryPolicy", {"repositoryName": REPO}))
        assert_aws_json_answer(fuzz.ecr("DeleteRepositoryPolicy", {"repositoryName": REPO}))


@settings(FUZZ, max_examples=40)
@given(document=documents(resource_policy=False))
def test_user_policies(fuzz: FuzzTarget, document: str) -> None:
    form = urlencode(
        {
            "Action": "PutUserPolicy",
            "Version": "2010-05-08",
            "UserName": "fuzzer",
            "PolicyName": "fuzzed",
            "PolicyDocument": document,
        }
    )
    response = fuzz.iam(form)
    assert_iam_answer(response)
    if response.status_code == 200:
        _pull(fuzz, fuzz.user)
        described = fuzz.ecr("DescribeRepositories", {}, creds=fuzz.user)
        assert_aws_json_answer(described)
        fuzz.iam(
            urlencode(
                {
                    "Action": "DeleteUserPolicy",
                    "Version": "2010-05-08",
                    "UserName": "fuzzer",
                    "PolicyName": "fuzzed",
                }
            )
        )


def test_policies_still_healthy(fuzz: FuzzTarget) -> None:
    fuzz.healthy()
