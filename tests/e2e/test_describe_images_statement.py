"""DescribeImages reads its images with their tags, archive status and latest scan in the one
statement that authorizes it (`registry.ecrreads`, issue 19): boto3 against a real server.
Pages, filters, image ids and errors answer as ECR's model says, for an account administrator
and for a user whose identity policies that statement reads; policies apply from the very
next call, and the statement count stays the door's plus one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.ecrhelp import (
    ACCOUNT,
    allow,
    api_user,
    check_shape,
    client,
    raises,
    signed_post,
    unique,
)
from e2e.ocihttp import Client
from e2e.roundtriphelp import counting_server, ecr_count
from server import Server

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from counting_server(tmp_path_factory, "describe")


# Tags of each of the five images; None: pushed by digest, untagged.
TAGS: list[list[str] | None] = [["b0", "a0"], ["a1"], None, ["z3", "a3", "m3"], None]


@pytest.fixture(scope="module")
def images(server: Server) -> dict[str, Any]:
    name = unique("desc/stmt")
    http = Client(server)
    digests: dict[str, list[str]] = {}
    for tags in TAGS:
        pushed = http.push_image(name, tags[0] if tags else None, layer_sizes=(64,))
        for tag in (tags or [])[1:]:
            http.put_manifest(name, tag, pushed.manifest, pushed.media_type)
        digests[pushed.digest] = sorted(tags or [])
    return {"name": name, "digests": digests}


def _caller(server: Server, who: str, policy: dict[str, Any]) -> Any:
    """The administrator's ECR client, or that of a new user with `policy` inline."""
    return client(server) if who == "admin" else api_user(server, "describer", policy).ecr(server)


def _walk(ecr: Any, name: str, size: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Every page of `size`, by nextToken, checking each page's size on the way."""
    details: list[dict[str, Any]] = []
    token = None
    while True:
        extra = {"nextToken": token} if token else {}
        page = ecr.describe_images(repositoryName=name, maxResults=size, **kwargs, **extra)
        assert len(page["imageDetails"]) <= size
        details += page["imageDetails"]
        token = page.get("nextToken")
        if not token:
            return details
        assert len(page["imageDetails"]) == size


def _tags(details: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {d["imageDigest"]: d.get("imageTags", []) for d in details}


@pytest.mark.parametrize("who", ["admin", "user"])
def test_pages_walk_every_image_once_with_its_tags(server, images, who) -> None:
    ecr = _caller(server, who, allow("ecr:DescribeImages"))
    name, digests = images["name"], images["digests"]
    for size in (1, 2, 5, 100):
        details = _walk(ecr, name, size)
        assert [d["imageDigest"] for d in details] == sorted(digests)
        assert _tags(details) == digests
        for detail in details:
            assert detail["registryId"] == ACCOUNT and detail["repositoryName"] == name
            assert detail["imageStatus"] == "ACTIVE"
            assert detail["imageSizeInBytes"] > 64
            assert "imageScanStatus" not in detail  # never scanned
    raw = signed_post(server, "DescribeImages", {"repositoryName": name, "maxResults": 2})
    assert raw.status_code == 200, raw.text
    check_shape("DescribeImages", raw.json())
    assert "nextToken" in raw.json()


def test_tag_status_filters_page_as_ecr(server, images) -> None:
    ecr = client(server)
    name, digests = images["name"], images["digests"]
    tagged = {d: t for d, t in digests.items() if t}
    for size in (1, 3):
        assert _tags(_walk(ecr, name, size, filter={"tagStatus": "TAGGED"})) == tagged
        untagged = _walk(ecr, name, size, filter={"tagStatus": "UNTAGGED"})
        assert _tags(untagged) == {d: [] for d, t in digests.items() if not t}
    assert _walk(ecr, name, 2, filter={"imageStatus": "ARCHIVED"}) == []
    assert len(_walk(ecr, name, 2, filter={"tagStatus": "ANY", "imageStatus": "ANY"})) == 5


def test_image_ids_name_images_by_tag_digest_or_both(server, images) -> None:
    ecr = client(server)
    name, digests = images["name"], images["digests"]
    ordered = sorted(digests)
    first_tagged = next(d for d in ordered if digests[d])
    untagged = next(d for d in ordered if not digests[d])
    tag = digests[first_tagged][-1]
    ids = [
        {"imageTag": tag},
        {"imageDigest": untagged},
        {"imageDigest": first_tagged, "imageTag": tag},
        {"imageTag": tag},
    ]
    found = ecr.describe_images(repositoryName=name, imageIds=ids)
    assert "nextToken" not in found
    assert _tags(found["imageDetails"]) == {d: digests[d] for d in sorted({first_tagged, untagged})}
    other = next(d for d in ordered if d != first_tagged)
    for wrong in (
        [{"imageTag": "missing"}],
        [{"imageTag": tag}, {"imageDigest": "sha256:" + "0" * 64}],
        [{"imageDigest": other, "imageTag": tag}],  # the tag names another image
        [{}],
        [{"imageTag": "not a tag"}],
    ):
        with raises("ImageNotFoundException") as caught:
            ecr.describe_images(repositoryName=name, imageIds=wrong)
        assert name in str(caught.value)
    with raises("InvalidParameterException"):
        ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}] * 101)


def test_errors_and_policies_apply_from_the_next_call(server, images) -> None:
    name = images["name"]
    with raises("RepositoryNotFoundException"):
        client(server).describe_images(repositoryName=unique("desc/missing"))
    user = api_user(server, "describer", allow("ecr:DescribeImages"))
    ecr = user.ecr(server)
    assert len(ecr.describe_images(repositoryName=name)["imageDetails"]) == 5
    admin = client(server)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": user.arn},
                "Action": "ecr:DescribeImages",
            }
        ],
    }
    admin.set_repository_policy(repositoryName=name, policyText=json.dumps(deny))
    try:
        with raises("AccessDeniedException"):
            ecr.describe_images(repositoryName=name)
        with raises("AccessDeniedException"):
            ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "a1"}])
    finally:
        admin.delete_repository_policy(repositoryName=name)
    assert len(ecr.describe_images(repositoryName=name)["imageDetails"]) == 5
    stranger = api_user(server, "describer").ecr(server)
    with raises("AccessDeniedException"):
        stranger.describe_images(repositoryName=name)


@pytest.mark.parametrize("who", ["admin", "user"])
def test_describe_images_is_one_statement_beside_the_door(server, images, who) -> None:
    """A page or a list of ids: the door's own statements plus one, as GetAuthorizationToken
    (issue 19: 6 for a page, 8 for ids, before)."""
    policy = allow("ecr:DescribeImages", "ecr:GetAuthorizationToken")
    ecr = _caller(server, who, policy)
    name = images["name"]
    door = ecr_count(ecr, "GetAuthorizationToken", {})
    ids = [{"imageTag": "a0"}, {"imageTag": "a1"}, {"imageDigest": sorted(images["digests"])[0]}]
    for params in (
        {"repositoryName": name},
        {"repositoryName": name, "maxResults": 2, "filter": {"tagStatus": "TAGGED"}},
        {"repositoryName": name, "imageIds": ids},
    ):
        assert ecr_count(ecr, "DescribeImages", params) <= door, params
