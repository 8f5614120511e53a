"""The ECR read operations read the repository, its policies, the caller's identity and what
they serve in one statement (`registry.ecrreads`): every rule still holds from the very next
call. boto3 against a real server (its own, so its registry policy is this module's alone);
the statements each call costs are counted too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.ecrhelp import ACCOUNT, allow, api_user, aws_client, client, raises, unique
from e2e.ocihttp import Client
from e2e.roundtriphelp import counting_server, ecr_count
from server import Server

pytestmark = pytest.mark.backend

READS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from counting_server(tmp_path_factory, "one-statement")


@pytest.fixture(scope="module")
def image(server: Server) -> dict[str, Any]:
    name = unique("one/stmt")
    pushed = Client(server).push_image(name, "v1", layer_sizes=(64, 128))
    layer = next(d for d, data in pushed.blobs.items() if len(data) == 64)
    return {
        "name": name,
        "digest": pushed.digest,
        "layer": layer,
        "manifest": pushed.manifest,
        "media_type": pushed.media_type,
    }


def _read_all(ecr: Any, image: dict[str, Any]) -> None:
    """The three reads, each answered in full."""
    name = image["name"]
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert got["failures"] == []
    assert got["images"][0]["imageManifest"].encode() == image["manifest"]
    assert got["images"][0]["imageId"] == {"imageDigest": image["digest"], "imageTag": "v1"}
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=image["layer"])
    assert url["layerDigest"] == image["layer"]
    layers = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[image["layer"]])[
        "layers"
    ]
    assert [(x["layerAvailability"], x["layerSize"]) for x in layers] == [("AVAILABLE", 64)]


def _denied_all(ecr: Any, image: dict[str, Any]) -> None:
    name = image["name"]
    with raises("AccessDeniedException"):
        ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    with raises("AccessDeniedException"):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest=image["layer"])
    with raises("AccessDeniedException"):
        ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[image["layer"]])


def _deny(arn: str, resource: str | None = None) -> str:
    statement: dict[str, Any] = {
        "Sid": "NoReads",
        "Effect": "Deny",
        "Principal": {"AWS": arn},
        "Action": list(READS),
    }
    if resource:
        statement["Resource"] = resource
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_a_repository_policy_change_applies_to_the_next_read(server, image) -> None:
    reader = api_user(server, "reader", allow(*READS))
    ecr = reader.ecr(server)
    _read_all(ecr, image)
    admin = client(server)
    admin.set_repository_policy(repositoryName=image["name"], policyText=_deny(reader.arn))
    try:
        _denied_all(ecr, image)
        _read_all(client(server), image)  # the administrator is not named
    finally:
        admin.delete_repository_policy(repositoryName=image["name"])
    _read_all(ecr, image)


def test_a_registry_policy_change_applies_to_the_next_read(server, image) -> None:
    reader = api_user(server, "reader", allow(*READS))
    ecr = reader.ecr(server)
    _read_all(ecr, image)
    admin = client(server)
    repositories = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*"
    admin.put_registry_policy(policyText=_deny(reader.arn, repositories))
    try:
        _denied_all(ecr, image)
    finally:
        admin.delete_registry_policy()
    _read_all(ecr, image)


def test_an_identity_policy_change_applies_to_the_next_read(server, image) -> None:
    reader = api_user(server, "reader", allow("ecr:DescribeImages"))
    ecr = reader.ecr(server)
    _denied_all(ecr, image)
    iam = aws_client(server, "iam")
    user = reader.name
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(allow(*READS)))
    _read_all(ecr, image)
    # An allow on another repository only is no allow on this one.
    other = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{image['name']}-other"
    iam.put_user_policy(
        UserName=user, PolicyName="p", PolicyDocument=json.dumps(allow(*READS, resource=other))
    )
    _denied_all(ecr, image)
    iam.delete_user_policy(UserName=user, PolicyName="p")
    _denied_all(ecr, image)


def test_a_user_without_a_policy_is_denied_and_a_missing_repository_named(server, image) -> None:
    ecr = api_user(server, "reader").ecr(server)
    _denied_all(ecr, image)
    admin = client(server)
    with raises("RepositoryNotFoundException"):
        admin.batch_get_image(repositoryName=unique("one/none"), imageIds=[{"imageTag": "v1"}])
    with raises("RepositoryNotFoundException"):
        admin.get_download_url_for_layer(
            repositoryName=unique("one/none"), layerDigest=image["layer"]
        )


def test_a_deactivated_key_is_refused_at_the_next_read(server, image) -> None:
    reader = api_user(server, "reader", allow(*READS))
    ecr = reader.ecr(server)
    _read_all(ecr, image)
    iam = aws_client(server, "iam")
    user = reader.name
    iam.update_access_key(UserName=user, AccessKeyId=reader.key, Status="Inactive")
    for call in (
        lambda: ecr.batch_get_image(repositoryName=image["name"], imageIds=[{"imageTag": "v1"}]),
        lambda: ecr.get_download_url_for_layer(
            repositoryName=image["name"], layerDigest=image["layer"]
        ),
        lambda: ecr.batch_check_layer_availability(
            repositoryName=image["name"], layerDigests=[image["layer"]]
        ),
    ):
        with raises("UnrecognizedClientException"):
            call()
    iam.update_access_key(UserName=user, AccessKeyId=reader.key, Status="Active")
    _read_all(ecr, image)


def test_batches_answer_each_id_as_before(server, image) -> None:
    """Tags, digests, both, unknown, mismatched and malformed ids in one BatchGetImage; known,
    unknown and invalid digests in one BatchCheckLayerAvailability."""
    ecr, name = client(server), image["name"]
    missing = "sha256:" + "0" * 64
    got = ecr.batch_get_image(
        repositoryName=name,
        imageIds=[
            {"imageTag": "v1"},
            {"imageDigest": image["digest"]},
            {"imageTag": "v1", "imageDigest": image["digest"]},
            {"imageTag": "nope"},
            {"imageDigest": missing},
            {"imageTag": "v1", "imageDigest": missing},
            {"imageDigest": "sha256:short"},
        ],
    )
    assert len(got["images"]) == 3
    assert {i["imageManifest"].encode() for i in got["images"]} == {image["manifest"]}
    codes = sorted(f["failureCode"] for f in got["failures"])
    assert codes == [
        "ImageNotFound",
        "ImageNotFound",
        "ImageTagDoesNotMatchDigest",
        "InvalidImageDigest",
    ]
    # Ids that name nothing at all: the statement reads the repository alone.
    empty = ecr.batch_get_image(repositoryName=name, imageIds=[{}, {}])
    assert empty["images"] == []
    assert [f["failureCode"] for f in empty["failures"]] == ["MissingDigestAndTag"] * 2
    checked = ecr.batch_check_layer_availability(
        repositoryName=name, layerDigests=[image["layer"], missing, "sha256:bad", image["layer"]]
    )
    assert [x["layerAvailability"] for x in checked["layers"]] == [
        "AVAILABLE",
        "UNAVAILABLE",
        "AVAILABLE",
    ]
    assert [f["failureCode"] for f in checked["failures"]] == ["InvalidLayerDigest"]
    with raises("LayersNotFoundException"):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest=missing)
    with raises("InvalidParameterException"):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest="sha256:bad")


def test_each_read_is_one_statement_of_its_own(server, image) -> None:
    """BatchGetImage (1 or 10 ids), GetDownloadUrlForLayer, BatchCheckLayerAvailability and
    DescribeImages cost one statement in all: the door does not read the credentials
    generation, their statement confirms the caller's remembered key (`ecr.caller`).
    GetAuthorizationToken still costs the door's read and one of its own."""
    ecr, name = client(server), image["name"]
    for i in range(2, 11):
        Client(server).put_manifest(name, f"v{i}", image["manifest"], image["media_type"])
    assert ecr_count(ecr, "GetAuthorizationToken", {}) == 2
    counts = {
        "BatchGetImage": ecr_count(
            ecr, "BatchGetImage", {"repositoryName": name, "imageIds": [{"imageTag": "v1"}]}
        ),
        "BatchGetImage x10": ecr_count(
            ecr,
            "BatchGetImage",
            {"repositoryName": name, "imageIds": [{"imageTag": f"v{i}"} for i in range(1, 11)]},
        ),
        "GetDownloadUrlForLayer": ecr_count(
            ecr, "GetDownloadUrlForLayer", {"repositoryName": name, "layerDigest": image["layer"]}
        ),
        "BatchCheckLayerAvailability": ecr_count(
            ecr,
            "BatchCheckLayerAvailability",
            {"repositoryName": name, "layerDigests": [image["layer"]]},
        ),
        "DescribeImages": ecr_count(ecr, "DescribeImages", {"repositoryName": name}),
        "DescribeImages ids": ecr_count(
            ecr, "DescribeImages", {"repositoryName": name, "imageIds": [{"imageTag": "v1"}]}
        ),
    }
    assert all(count == 1 for count in counts.values()), counts


def test_the_pull_time_is_recorded_from_the_one_statement(server) -> None:
    name = unique("one/pulltime")
    pushed = Client(server).push_image(name, "v1", layer_sizes=(32,))
    ecr = client(server)

    def pulled() -> Any:
        [detail] = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])[
            "imageDetails"
        ]
        return detail.get("lastRecordedPullTime")

    assert pulled() is None
    ecr.batch_get_image(repositoryName=name, imageIds=[{"imageDigest": pushed.digest}])
    for _ in range(100):  # written in the background, right after the answer
        if pulled() is not None:
            break
        time.sleep(0.05)
    assert pulled() is not None
