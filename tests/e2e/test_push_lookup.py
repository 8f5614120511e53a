"""A manifest push reads its repository, the policies that authorize it and whether a
pull-through rule covers the name in one statement (`registry.ecrreads`, issue 19): skopeo
and boto3's PutImage against a real server. Every rule that statement reads still applies from
the very next push, and a refused push leaves no manifest or tag behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.ecrhelp import ACCOUNT, allow, aws_client, client, push, raises, unique
from e2e.ocihttp import Client
from imagebuilder import build_image
from server import Server

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("push-lookup") / "data", workers=1).start()
    yield started
    started.discard()


def _tags(ecr: Any, name: str) -> set[str]:
    return {
        tag
        for detail in ecr.describe_images(repositoryName=name)["imageDetails"]
        for tag in detail.get("imageTags", [])
    }


def test_a_pull_through_rule_refuses_the_next_push(server: Server) -> None:
    """A rule created over an existing repository refuses the next push on both doors (the
    push lookup reads it), naming the rule; deleted, the next push is taken."""
    prefix = unique("ptc")
    name = f"{prefix}/app"
    http = Client(server)
    pushed = http.push_image(name, "v1", layer_sizes=(64,))
    ecr = client(server)
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.example.invalid"
    )
    try:
        other = json.loads(pushed.manifest)
        other["annotations"] = {"refused": "yes"}
        body = json.dumps(other).encode()
        refused = http.put(
            f"/v2/{name}/manifests/v2", data=body, headers={"Content-Type": pushed.media_type}
        )
        assert refused.status_code == 405, refused.text
        assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert prefix in refused.json()["errors"][0]["message"]
        with raises("InvalidParameterException") as caught:
            ecr.put_image(repositoryName=name, imageTag="v3", imageManifest=body.decode())
        assert "pull through cache" in str(caught.value)
        assert _tags(ecr, name) == {"v1"}
        assert len(ecr.describe_images(repositoryName=name)["imageDetails"]) == 1
    finally:
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
    taken = http.put(
        f"/v2/{name}/manifests/v2", data=body, headers={"Content-Type": pushed.media_type}
    )
    assert taken.status_code == 201, taken.text
    ecr.put_image(repositoryName=name, imageTag="v3", imageManifest=body.decode())
    assert _tags(ecr, name) == {"v1", "v2", "v3"}


def test_a_repository_policy_applies_to_the_next_push(server: Server, tmp_path: Path) -> None:
    """A user allowed to push (skopeo) is denied by a repository policy from the next push,
    which leaves no tag behind; the policy removed, the push is taken again."""
    iam = aws_client(server, "iam")
    user = unique("pusher")
    iam.create_user(UserName=user)
    actions = (
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    )
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(allow(*actions)))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    creds = f"{key['AccessKeyId']}:{key['SecretAccessKey']}"
    name = unique("pl/app")
    ecr = client(server)
    ecr.create_repository(repositoryName=name)
    image = build_image(tmp_path / "image", [1024])
    push(server, image, f"{name}:one", creds=creds)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
                "Action": "ecr:PutImage",
            }
        ],
    }
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(deny))
    refused = push(server, image, f"{name}:two", creds=creds, check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr.lower(), refused.stderr
    assert _tags(ecr, name) == {"one"}
    ecr.delete_repository_policy(repositoryName=name)
    push(server, image, f"{name}:two", creds=creds)
    assert _tags(ecr, name) == {"one", "two"}


def test_immutable_tags_and_a_new_repository_through_the_push_lookup(server: Server) -> None:
    """The repository the lookup read carries its tag mutability; a repository that does not
    exist yet is created on push the long way, as before."""
    name = unique("pl/immutable")
    ecr = client(server)
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    http = Client(server)
    pushed = http.push_image(name, "v1", layer_sizes=(64,))
    other = json.loads(pushed.manifest)
    other["annotations"] = {"moved": "no"}
    body = json.dumps(other).encode()
    moved = http.put(
        f"/v2/{name}/manifests/v1", data=body, headers={"Content-Type": pushed.media_type}
    )
    assert moved.status_code == 400, moved.text
    assert moved.json()["errors"][0]["code"] == "TAG_INVALID"
    with raises("ImageTagAlreadyExistsException"):
        ecr.put_image(repositoryName=name, imageTag="v1", imageManifest=body.decode())
    assert len(ecr.describe_images(repositoryName=name)["imageDetails"]) == 1
    fresh = unique("pl/created")
    created = http.push_image(fresh, "v1", layer_sizes=(64,))
    [detail] = ecr.describe_images(repositoryName=fresh)["imageDetails"]
    assert detail["imageDigest"] == created.digest and detail["imageTags"] == ["v1"]
