"""Tag mutability exclusions, pull-time update exclusions, account settings and the policy
fidelity fixes of issue 18, through the aws CLI, boto3 and skopeo against `cargobay serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from e2e.ecrhelp import (
    ACCOUNT,
    allow,
    aws,
    cli_error,
    client,
    make_user,
    pull,
    push,
    raises,
    signed_post,
    unique,
)
from imagebuilder import Image, build_image


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Image, Image]:
    root = tmp_path_factory.mktemp("exclusion-images")
    return build_image(root / "a", [1500]), build_image(root / "b", [1700])


def _tag_digest(ecr, name: str, tag: str) -> str:
    found = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])
    return found["imageDetails"][0]["imageDigest"]


# -- tag mutability exclusions ------------------------------------------------------------------


def test_immutable_with_exclusion_on_both_doors(registry, ecr, images) -> None:
    a, b = images
    name = unique("excl/immutable")
    filters = [
        {"filterType": "WILDCARD", "filter": "dev-*"},
        {"filterType": "WILDCARD", "filter": "latest"},
    ]
    created = aws(
        registry,
        "ecr",
        "create-repository",
        "--repository-name",
        name,
        "--image-tag-mutability",
        "IMMUTABLE_WITH_EXCLUSION",
        "--image-tag-mutability-exclusion-filters",
        json.dumps(filters),
    ).json["repository"]
    assert created["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert created["imageTagMutabilityExclusionFilters"] == filters
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageTagMutabilityExclusionFilters"] == filters

    push(registry, a, f"{name}:v1")
    push(registry, b, f"{name}:other")
    # /v2/: moving a tag no filter excludes is refused with the OCI error immutability uses.
    refused = push(registry, b, f"{name}:v1", check=False)
    assert refused.returncode != 0
    assert "TAG_INVALID" in refused.stderr or "tag" in refused.stderr.lower(), refused.stderr
    assert _tag_digest(ecr, name, "v1") == a.manifest_digest
    # Excluded tags move.
    push(registry, a, f"{name}:dev-1")
    push(registry, b, f"{name}:dev-1")
    assert _tag_digest(ecr, name, "dev-1") == b.manifest_digest
    push(registry, a, f"{name}:latest")
    push(registry, b, f"{name}:latest")
    assert _tag_digest(ecr, name, "latest") == b.manifest_digest

    # PutImage: ECR's ImageTagAlreadyExistsException for the immutable tag, success otherwise.
    manifest_b = b.manifest.decode()
    with raises("ImageTagAlreadyExistsException"):
        ecr.put_image(repositoryName=name, imageManifest=manifest_b, imageTag="v1")
    assert _tag_digest(ecr, name, "v1") == a.manifest_digest
    ecr.put_image(repositoryName=name, imageManifest=a.manifest.decode(), imageTag="dev-1")
    assert _tag_digest(ecr, name, "dev-1") == a.manifest_digest


def test_mutable_with_exclusion_and_switching_modes(registry, ecr, images) -> None:
    a, b = images
    name = unique("excl/mutable")
    ecr.create_repository(repositoryName=name)
    filters = [{"filterType": "WILDCARD", "filter": "release-*"}]
    out = aws(
        registry,
        "ecr",
        "put-image-tag-mutability",
        "--repository-name",
        name,
        "--image-tag-mutability",
        "MUTABLE_WITH_EXCLUSION",
        "--image-tag-mutability-exclusion-filters",
        json.dumps(filters),
    ).json
    assert out["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert out["imageTagMutabilityExclusionFilters"] == filters

    push(registry, a, f"{name}:release-1")
    push(registry, a, f"{name}:edge")
    push(registry, b, f"{name}:edge")  # mutable
    assert _tag_digest(ecr, name, "edge") == b.manifest_digest
    assert push(registry, b, f"{name}:release-1", check=False).returncode != 0
    with raises("ImageTagAlreadyExistsException"):
        ecr.put_image(repositoryName=name, imageManifest=b.manifest.decode(), imageTag="release-1")
    assert _tag_digest(ecr, name, "release-1") == a.manifest_digest

    # Back to MUTABLE: the filters go with the mode, and the tag moves again.
    plain = ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="MUTABLE")
    assert "imageTagMutabilityExclusionFilters" not in plain
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageTagMutability"] == "MUTABLE"
    assert "imageTagMutabilityExclusionFilters" not in described
    push(registry, b, f"{name}:release-1")
    assert _tag_digest(ecr, name, "release-1") == b.manifest_digest


def test_mutability_exclusion_validation(registry, ecr) -> None:
    name = unique("excl/invalid")
    ecr.create_repository(repositoryName=name)
    cases = [
        {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"},  # no filters
        {
            "imageTagMutability": "MUTABLE",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "x"}],
        },
        {
            "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [
                {"filterType": "WILDCARD", "filter": f"t{i}"} for i in range(6)
            ],
        },
        {
            "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "a/b"}],
        },
        {
            "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "REGEX", "filter": "a"}],
        },
    ]
    for case in cases:
        answer = signed_post(registry, "PutImageTagMutability", {"repositoryName": name, **case})
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["__type"] in ("InvalidParameterException", "ValidationException")
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageTagMutability"] == "MUTABLE"


def test_creation_template_carries_exclusions(registry, ecr, images) -> None:
    a, b = images
    prefix = unique("excltpl")
    filters = [{"filterType": "WILDCARD", "filter": "nightly*"}]
    ecr.create_repository_creation_template(
        prefix=prefix,
        appliedFor=["CREATE_ON_PUSH"],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=filters,
    )
    try:
        template = ecr.describe_repository_creation_templates(prefixes=[prefix])
        got = template["repositoryCreationTemplates"][0]
        assert got["imageTagMutabilityExclusionFilters"] == filters
        name = f"{prefix}/app"
        push(registry, a, f"{name}:v1")  # creates the repository from the template
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        assert repo["imageTagMutabilityExclusionFilters"] == filters
        assert push(registry, b, f"{name}:v1", check=False).returncode != 0
        push(registry, a, f"{name}:nightly")
        push(registry, b, f"{name}:nightly")
        assert _tag_digest(ecr, name, "nightly") == b.manifest_digest
        with raises("InvalidParameterException"):
            ecr.update_repository_creation_template(
                prefix=prefix, imageTagMutability="MUTABLE_WITH_EXCLUSION"
            )
        with raises("InvalidParameterException"):  # filters without an exclusion mode
            ecr.create_repository_creation_template(
                prefix=f"{prefix}x",
                appliedFor=["CREATE_ON_PUSH"],
                imageTagMutabilityExclusionFilters=filters,
            )
    finally:
        ecr.delete_repository_creation_template(prefix=prefix)


# -- pull-time update exclusions ----------------------------------------------------------------


def test_pull_time_exclusion_operations(registry, ecr) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/{unique('scanner')}"
    made = aws(registry, "ecr", "register-pull-time-update-exclusion", "--principal-arn", arn)
    assert made.json["principalArn"] == arn and "createdAt" in made.json
    try:
        again = aws(
            registry,
            "ecr",
            "register-pull-time-update-exclusion",
            "--principal-arn",
            arn,
            check=False,
        )
        assert cli_error(again) == "ExclusionAlreadyExistsException"
        listed = ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
        assert arn in listed
        role = f"arn:aws:iam::{ACCOUNT}:role/{unique('replicator')}"
        ecr.register_pull_time_update_exclusion(principalArn=role)
        first = ecr.list_pull_time_update_exclusions(maxResults=1)
        assert len(first["pullTimeUpdateExclusions"]) == 1 and first["nextToken"]
        everything: list[str] = []
        token = None
        while True:
            page = ecr.list_pull_time_update_exclusions(
                maxResults=1, **({"nextToken": token} if token else {})
            )
            everything += page["pullTimeUpdateExclusions"]
            token = page.get("nextToken")
            if not token:
                break
        assert {arn, role} <= set(everything)
        gone = ecr.deregister_pull_time_update_exclusion(principalArn=role)
        assert gone["principalArn"] == role
        assert role not in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
    finally:
        ecr.deregister_pull_time_update_exclusion(principalArn=arn)
    with raises("ExclusionNotFoundException"):
        ecr.deregister_pull_time_update_exclusion(principalArn=arn)
    for bad in ("arn:aws:iam::123:user/x", "arn:aws:iam::000000000000:group/x", "root"):
        answer = signed_post(registry, "RegisterPullTimeUpdateExclusion", {"principalArn": bad})
        assert answer.status_code == 400, answer.text
    assert arn not in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]


def _pull_time(ecr, name: str) -> float | None:
    detail = ecr.describe_images(repositoryName=name)["imageDetails"][0]
    pulled = detail.get("lastRecordedPullTime")
    return pulled.timestamp() if pulled else None


def _wait_for_pull_time(ecr, name: str) -> float:
    deadline = time.monotonic() + 120
    while (pulled := _pull_time(ecr, name)) is None:
        assert time.monotonic() < deadline, f"{name}: the pull time was never recorded"
        time.sleep(0.5)
    return pulled


def test_excluded_principal_does_not_move_pull_time(registry, ecr, images, tmp_path: Path) -> None:
    a = images[0]
    base = unique("excl/pulltime")
    names = {k: f"{base}-{k}" for k in ("v2-excluded", "v2-other", "api-excluded", "api-other")}
    for name in names.values():
        push(registry, a, f"{name}:v1")
        assert _pull_time(ecr, name) is None
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:*"],
                "Resource": "*",
            }
        ],
    }
    scanner, other = unique("scanner"), unique("puller")
    scanner_key = make_user(registry, scanner, policy, tmp=tmp_path)
    other_key = make_user(registry, other, policy, tmp=tmp_path)
    scanner_arn = f"arn:aws:iam::{ACCOUNT}:user/{scanner}"
    ecr.register_pull_time_update_exclusion(principalArn=scanner_arn)
    try:
        # /v2/ pulls (skopeo), the excluded principal first.
        pull(registry, f"{names['v2-excluded']}:v1", tmp_path / "x", creds=":".join(scanner_key))
        pull(registry, f"{names['v2-other']}:v1", tmp_path / "y", creds=":".join(other_key))
        _wait_for_pull_time(ecr, names["v2-other"])
        assert _pull_time(ecr, names["v2-excluded"]) is None
        # BatchGetImage through boto3.
        client(registry, *scanner_key).batch_get_image(
            repositoryName=names["api-excluded"], imageIds=[{"imageTag": "v1"}]
        )
        client(registry, *other_key).batch_get_image(
            repositoryName=names["api-other"], imageIds=[{"imageTag": "v1"}]
        )
        _wait_for_pull_time(ecr, names["api-other"])
        assert _pull_time(ecr, names["api-excluded"]) is None
    finally:
        ecr.deregister_pull_time_update_exclusion(principalArn=scanner_arn)
    # Once deregistered, the same principal's pulls are recorded again.
    pull(registry, f"{names['v2-excluded']}:v1", tmp_path / "z", creds=":".join(scanner_key))
    _wait_for_pull_time(ecr, names["v2-excluded"])


# -- account settings and registry policy scope --------------------------------------------------


def test_account_settings_and_registry_policy_scope(registry, ecr, images, tmp_path) -> None:
    other_account = "111122223333"
    defaults = {"BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE", "REGISTRY_POLICY_SCOPE": "V2"}
    for name, value in defaults.items():
        got = aws(registry, "ecr", "get-account-setting", "--name", name).json
        assert got == {"name": name, "value": value}
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] in ("ENABLED", "DISABLED")
    with raises("ValidationException"):
        ecr.get_account_setting(name="NO_SUCH_SETTING")
    with raises("ValidationException"):
        ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V3")

    def registry_policy(*actions: str) -> str:
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "cross",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{other_account}:root"},
                        "Action": list(actions),
                        "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
                    }
                ],
            }
        )

    # Another account's user, allowed everything by its own account: what it may do in this
    # registry is what the registry policy grants.
    outsider = client(
        registry,
        *make_user(
            registry, unique("outsider"), allow("ecr:*"), account=other_account, tmp=tmp_path
        ),
    )
    name = unique("excl/scope")
    push(registry, images[0], f"{name}:v1")

    def outsider_pull() -> dict:
        return outsider.batch_get_image(
            registryId=ACCOUNT, repositoryName=name, imageIds=[{"imageTag": "v1"}]
        )

    with raises("AccessDeniedException"):
        outsider_pull()
    try:
        # V2 (the default) takes every ECR action, and enforces them all.
        ecr.put_registry_policy(policyText=registry_policy("ecr:BatchGetImage"))
        assert len(outsider_pull()["images"]) == 1
        set_v1 = aws(
            registry,
            "ecr",
            "put-account-setting",
            "--name",
            "REGISTRY_POLICY_SCOPE",
            "--value",
            "V1",
        )
        assert set_v1.json == {"name": "REGISTRY_POLICY_SCOPE", "value": "V1"}
        assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V1"
        # V1 enforces only the replication and pull-through cache actions at registry level:
        # the stored grant of BatchGetImage no longer counts.
        with raises("AccessDeniedException"):
            outsider_pull()
        # V1 only the replication and pull-through cache actions.
        with raises("InvalidParameterException") as info:
            ecr.put_registry_policy(policyText=registry_policy("ecr:BatchGetImage"))
        assert info.value.response["Error"]["Message"].endswith(
            "'Invalid registry policy provided'"
        )
        ecr.put_registry_policy(
            policyText=registry_policy("ecr:ReplicateImage", "ecr:CreateRepository")
        )
    finally:
        ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
        ecr.delete_registry_policy()


# -- policy and lifecycle fidelity ---------------------------------------------------------------


def test_repository_policy_duplicate_sids_and_messages(registry, ecr) -> None:
    name = unique("excl/policy")
    ecr.create_repository(repositoryName=name)
    statement = {
        "Sid": "same",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": ["ecr:BatchGetImage"],
    }
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement, dict(statement)]})
    ecr.set_repository_policy(repositoryName=name, policyText=text)
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == text
    with raises("InvalidParameterException") as info:
        ecr.set_repository_policy(repositoryName=name, policyText='{"Statement": "nope"}')
    assert info.value.response["Error"]["Message"] == (
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
        "'Invalid repository policy provided'"
    )


def test_lifecycle_policy_always_has_last_evaluated_at(registry, ecr) -> None:
    name = unique("excl/lifecycle")
    ecr.create_repository(repositoryName=name)
    policy = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "expire untagged images after a long while",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 3650,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
    got = ecr.get_lifecycle_policy(repositoryName=name)
    assert "lastEvaluatedAt" in ecr.raw.bodies["GetLifecyclePolicy"]
    assert got["lastEvaluatedAt"].timestamp() >= 0
    deleted = ecr.delete_lifecycle_policy(repositoryName=name)
    assert "lastEvaluatedAt" in ecr.raw.bodies["DeleteLifecyclePolicy"]
    assert deleted["lifecyclePolicyText"] == policy
