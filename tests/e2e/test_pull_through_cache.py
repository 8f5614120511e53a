"""The pull-through cache end to end, with real parts only: Debian's `docker-registry`
(CNCF Distribution) as the upstream, anonymous and with htpasswd Basic auth; the credential
secret made with `aws secretsmanager`; rules made with `aws ecr`; skopeo pulling through a
real `cargobay serve` (two workers). The upstream's access log counts what was fetched."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from e2e.ecrhelp import (
    REGION,
    aws,
    cli_error,
    client,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    skopeo,
    unique,
)
from e2e.test_podman import Podman, podman, short_tmp  # noqa: F401  (fixtures)
from imagebuilder import Image, Index, build_image, build_index
from server import Server
from upstream.distribution import PASSWORD, USER, Distribution

RECHECK = 3  # seconds between upstream checks of a cached tag (short for the test)


@dataclass
class Setup:
    server: Server
    anonymous: Distribution
    basic: Distribution
    token: Distribution  # Docker token flow (a test token server Distribution trusts)
    image: Image  # app/single:v1 on both upstreams
    index: Index  # app/multi:v1 on the anonymous upstream
    secret_arn: str


def create_rule(server: Server, prefix: str, url: str, credential_arn: str | None = None):
    """`aws ecr create-pull-through-cache-rule`; the URL goes in --cli-input-json because AWS
    CLI v1 would fetch an `http://` parameter value instead of sending it."""
    rule = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url}
    if credential_arn:
        rule["credentialArn"] = credential_arn
    return aws(
        server, "ecr", "create-pull-through-cache-rule", "--cli-input-json", json.dumps(rule)
    )


def iam_user(server: Server, actions: list[str], name: str | None = None) -> tuple[str, str]:
    """A user (named `name`, or a fresh name) allowed `actions` on everything, made through
    the IAM API with boto3 (quicker than the admin CLI); its access key."""
    key, secret = server.credentials
    iam = boto3.client(
        "iam", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
    )  # fmt: skip
    name = name or unique("puller")
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=name)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


def blob_fetches(upstream: Distribution, repository: str, digest: str) -> int:
    """Successful blob GETs of `digest` in the upstream's access log."""
    pattern = re.compile(rf'"GET /v2/{re.escape(repository)}/blobs/{re.escape(digest)} [^"]*" 200 ')
    return len(pattern.findall(upstream.log_path.read_text(errors="replace")))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("pull-through")
    image = build_image(root / "single", [4096, 300_000], tag="v1")
    index = build_index(root / "multi", ["amd64", "arm64"], [2048, 100_000], tag="v1")
    anonymous = Distribution(root / "anonymous", "anonymous").start()
    basic = Distribution(root / "basic", "basic").start()
    token = Distribution(root / "token", "token").start()
    server = Server(root / "data", env={"CARGOBAY_PULL_THROUGH_RECHECK_SECONDS": str(RECHECK)})
    try:
        for upstream in (anonymous, basic):
            upstream.push(f"oci:{image.layout}:v1", "app/single:v1")
        anonymous.push(f"oci:{index.layout}:v1", "app/multi:v1", "--all")
        server.start(timeout=120)  # a loaded machine (PostgreSQL + S3 runs) starts slowly
        secret = aws(
            server, "secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/basic",
            "--secret-string", json.dumps({"username": USER, "accessToken": PASSWORD}),
        ).json  # fmt: skip
        create_rule(server, "anon", anonymous.url)
        create_rule(server, "basic", basic.url, secret["ARN"])
        create_rule(server, "token", token.url, secret["ARN"])
        yield Setup(server, anonymous, basic, token, image, index, secret["ARN"])
    finally:
        server.discard()
        for upstream in (anonymous, basic, token):
            upstream.discard()


def test_secrets_manager_door_with_boto3_and_the_cli(setup: Setup) -> None:
    server = setup.server
    key, secret = server.credentials
    client = boto3.client(
        "secretsmanager",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    value = client.get_secret_value(SecretId=setup.secret_arn)
    assert json.loads(value["SecretString"]) == {"username": USER, "accessToken": PASSWORD}
    names = [s["Name"] for s in client.list_secrets()["SecretList"]]
    assert "ecr-pullthroughcache/basic" in names
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_secret(SecretId="ecr-pullthroughcache/absent")
    listed = aws(server, "secretsmanager", "list-secrets").json["SecretList"]
    assert setup.secret_arn in [s["ARN"] for s in listed]
    # A user without secretsmanager:GetSecretValue is refused by the authorizer.
    creds = iam_user(server, [])
    denied = aws(
        server, "secretsmanager", "get-secret-value", "--secret-id", setup.secret_arn,
        creds=creds, check=False,
    )  # fmt: skip
    assert cli_error(denied) == "AccessDeniedException"


def test_rules_through_the_cli(setup: Setup) -> None:
    server = setup.server
    rules = aws(server, "ecr", "describe-pull-through-cache-rules").json["pullThroughCacheRules"]
    by_prefix = {rule["ecrRepositoryPrefix"]: rule for rule in rules}
    assert by_prefix["anon"]["upstreamRegistryUrl"] == setup.anonymous.url
    assert by_prefix["basic"]["credentialArn"] == setup.secret_arn
    again = aws(
        server, "ecr", "create-pull-through-cache-rule", "--cli-input-json",
        json.dumps({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": setup.anonymous.url}),
        check=False,
    )  # fmt: skip
    assert cli_error(again) == "PullThroughCacheRuleAlreadyExistsException"
    public = aws(
        server, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "pub",
        "--upstream-registry-url", "registry.example.com:5000/x", check=False,
    )  # fmt: skip
    assert cli_error(public) == "UnsupportedUpstreamRegistryException"
    missing = aws(
        server, "ecr", "create-pull-through-cache-rule", "--cli-input-json",
        json.dumps({
            "ecrRepositoryPrefix": "gone", "upstreamRegistryUrl": setup.basic.url,
            "credentialArn": setup.secret_arn.replace("/basic-", "/absent-"),
        }),
        check=False,
    )  # fmt: skip
    assert cli_error(missing) == "SecretNotFoundException"
    unknown = aws(
        server, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "nope",
        check=False,
    )  # fmt: skip
    assert cli_error(unknown) == "PullThroughCacheRuleNotFoundException"
    valid = aws(
        server, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "basic"
    )
    assert valid.json["isValid"] is True
    updated = aws(
        server, "ecr", "update-pull-through-cache-rule", "--ecr-repository-prefix", "basic",
        "--credential-arn", setup.secret_arn,
    ).json  # fmt: skip
    assert updated["credentialArn"] == setup.secret_arn and updated["updatedAt"]
    create_rule(server, "temporary", setup.anonymous.url)
    deleted = aws(
        server, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "temporary"
    ).json  # fmt: skip
    assert deleted["upstreamRegistryUrl"] == setup.anonymous.url
    listed = aws(
        server, "ecr", "describe-pull-through-cache-rules", "--ecr-repository-prefixes",
        "temporary", check=False,
    )  # fmt: skip
    assert cli_error(listed) == "PullThroughCacheRuleNotFoundException"


def test_pull_an_image_through_an_htpasswd_upstream(setup: Setup, tmp_path: Path) -> None:
    server, image = setup.server, setup.image
    pull(server, "basic/app/single:v1", tmp_path / "first")
    digest, content = pulled_manifest(tmp_path / "first")
    assert (digest, content) == (image.manifest_digest, image.manifest)
    for blob_digest, data in image.blobs.items():
        assert pulled_blob(tmp_path / "first", blob_digest) == data
    # Again, and by digest: from the store, and the repository is an ordinary one to the API.
    pull(server, f"basic/app/single@{image.manifest_digest}", tmp_path / "again")
    assert pulled_manifest(tmp_path / "again")[1] == image.manifest
    described = aws(
        server, "ecr", "describe-images", "--repository-name", "basic/app/single"
    ).json["imageDetails"]  # fmt: skip
    assert [d["imageDigest"] for d in described] == [image.manifest_digest]
    assert described[0]["imageTags"] == ["v1"]
    assert described[0]["lastRecordedPullTime"]
    for blob_digest in image.blobs:
        assert blob_fetches(setup.basic, "app/single", blob_digest) == 1


def test_pull_through_a_token_auth_upstream(setup: Setup, tmp_path: Path) -> None:
    # An image of its own: blobs another upstream already gave the store are not fetched again.
    image = build_image(tmp_path / "image", [2048, 200_000], tag="v1")
    setup.token.push(f"oci:{image.layout}:v1", "app/tokened:v1")
    pull(setup.server, "token/app/tokened:v1", tmp_path / "pulled")
    assert pulled_manifest(tmp_path / "pulled")[1] == image.manifest
    for blob_digest, data in image.blobs.items():
        assert pulled_blob(tmp_path / "pulled", blob_digest) == data
        assert blob_fetches(setup.token, "app/tokened", blob_digest) == 1


def test_pull_a_multi_arch_index_with_all(setup: Setup, tmp_path: Path) -> None:
    server, index = setup.server, setup.index
    pull_all = [
        "copy", "--all", "--src-creds", server.creds_arg, "--src-tls-verify=false",
        f"docker://{server.host}/anon/app/multi:v1", f"dir:{tmp_path / 'all'}",
    ]  # fmt: skip
    skopeo(*pull_all)
    assert pulled_manifest(tmp_path / "all") == (index.digest, index.content)
    for digest, data in index.blobs.items():
        if digest == index.digest:
            continue
        stored = tmp_path / "all" / digest.split(":")[1]
        as_manifest = tmp_path / "all" / f"{digest.split(':')[1]}.manifest.json"
        assert (stored if stored.exists() else as_manifest).read_bytes() == data


def test_podman_pulls_an_index_through_the_cache(setup: Setup, podman: Podman) -> None:  # noqa: F811
    server, index = setup.server, setup.index
    ref = f"{server.host}/anon/app/multi:v1"
    podman.authfile.write_text("{}")
    podman("pull", "--tls-verify=false", "--creds", server.creds_arg, "--arch", "arm64", ref)
    inspected = podman.inspect(ref)
    assert inspected["Architecture"] == "arm64"
    assert f"{server.host}/anon/app/multi@{index.digest}" in inspected["RepoDigests"]


def test_batch_get_image_imports_through_the_cache(setup: Setup, tmp_path: Path) -> None:
    """The ECR API pulls through too: BatchGetImage imports a missing image (boto3, every
    answer checked against the model), and reports what the upstream lacks per image."""
    image = build_image(tmp_path / "api", [1024], tag="v1")
    setup.anonymous.push(f"oci:{image.layout}:v1", "app/viaapi:v1")
    ecr = client(setup.server)
    answer = ecr.batch_get_image(
        repositoryName="anon/app/viaapi", imageIds=[{"imageTag": "v1"}, {"imageTag": "absent"}]
    )
    assert [i["imageManifest"].encode() for i in answer["images"]] == [image.manifest]
    assert [f["failureCode"] for f in answer["failures"]] == ["ImageNotFound"]
    assert answer["images"][0]["imageId"]["imageDigest"] == image.manifest_digest


def test_concurrent_first_pulls_fetch_each_blob_once(setup: Setup, tmp_path: Path) -> None:
    server, upstream = setup.server, setup.anonymous
    image = build_image(tmp_path / "fresh", [8192, 2_000_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "app/fresh:v1")
    session = server.session()
    accept = "application/vnd.oci.image.manifest.v1+json"

    def first_pull(_: int) -> dict[str, bytes]:
        got = {}
        manifest = session.get(
            f"{server.url}/v2/anon/app/fresh/manifests/v1", headers={"Accept": accept}
        )
        assert manifest.status_code == 200, manifest.text
        got["manifest"] = manifest.content
        for digest in image.blobs:
            response = session.get(f"{server.url}/v2/anon/app/fresh/blobs/{digest}")
            assert response.status_code == 200, response.text
            got[digest] = response.content
        return got

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(first_pull, range(20)))
    for got in results:
        assert got["manifest"] == image.manifest
        for digest, data in image.blobs.items():
            assert got[digest] == data
    for digest in image.blobs:
        assert blob_fetches(upstream, "app/fresh", digest) == 1, digest


def test_a_moved_tag_is_picked_up_after_the_recheck_interval(setup: Setup, tmp_path: Path) -> None:
    server, upstream = setup.server, setup.anonymous
    first = build_image(tmp_path / "first", [1024], tag="v1")
    second = build_image(tmp_path / "second", [1024], tag="v1")
    upstream.push(f"oci:{first.layout}:v1", "app/moving:v1")
    pull(server, "anon/app/moving:v1", tmp_path / "a")
    pulled_at = time.monotonic()
    assert pulled_manifest(tmp_path / "a")[0] == first.manifest_digest
    upstream.push(f"oci:{second.layout}:v1", "app/moving:v1")
    pull(server, "anon/app/moving:v1", tmp_path / "b")
    if time.monotonic() - pulled_at < RECHECK - 0.5:  # still within the interval: cached
        assert pulled_manifest(tmp_path / "b")[0] == first.manifest_digest
    time.sleep(RECHECK + 0.5)
    pull(server, "anon/app/moving:v1", tmp_path / "c")
    assert pulled_manifest(tmp_path / "c") == (second.manifest_digest, second.manifest)
    # The old image stays cached, by digest.
    pull(server, f"anon/app/moving@{first.manifest_digest}", tmp_path / "d")
    assert pulled_manifest(tmp_path / "d")[1] == first.manifest


def test_a_push_into_a_cache_repository_is_refused(setup: Setup, tmp_path: Path) -> None:
    server = setup.server
    pushed = push(server, setup.image, "anon/app/single:mine", check=False)
    assert pushed.returncode != 0
    response = server.session().post(f"{server.url}/v2/anon/app/pushed/blobs/uploads/")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert "pull through cache" in response.json()["errors"][0]["message"]


def test_pulling_through_needs_import_and_create(setup: Setup, tmp_path: Path) -> None:
    server = setup.server
    pulls = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    steps = [[], ["ecr:BatchImportUpstreamImage"], ["ecr:CreateRepository"]]
    users, granted = [], list(pulls)
    for extra in steps:
        granted = [*granted, *extra]
        users.append(iam_user(server, granted))
    url = f"{server.url}/v2/anon/app/single/manifests/v1"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    answers = [requests.get(url, auth=user, headers=accept, timeout=30) for user in users]
    assert [a.status_code for a in answers] == [403, 403, 200]
    assert "ecr:BatchImportUpstreamImage" in answers[0].json()["errors"][0]["message"]
    assert "ecr:CreateRepository" in answers[1].json()["errors"][0]["message"]
    assert answers[2].content == setup.image.manifest
    # Once cached, pulling needs only the pull actions (a due re-check is skipped for them).
    again = requests.get(url, auth=users[0], headers=accept, timeout=30)
    assert again.status_code == 200 and again.content == setup.image.manifest


def test_validate_and_a_stopped_upstream(setup: Setup, tmp_path: Path) -> None:
    """Last in the module: it stops the basic upstream."""
    server, image = setup.server, setup.image
    pull(server, "basic/app/single:v1", tmp_path / "warm")
    setup.basic.stop()
    try:
        time.sleep(RECHECK + 0.5)  # the next tag pull asks the (stopped) upstream: stale-if-error
        pull(server, "basic/app/single:v1", tmp_path / "tag")
        assert pulled_manifest(tmp_path / "tag")[1] == image.manifest
        pull(server, f"basic/app/single@{image.manifest_digest}", tmp_path / "digest")
        for blob_digest, data in image.blobs.items():
            assert pulled_blob(tmp_path / "digest", blob_digest) == data
        uncached = pull(server, "basic/app/single:v2", tmp_path / "v2", check=False)
        assert uncached.returncode != 0
        assert "manifest unknown" in uncached.stderr.lower()
        assert setup.basic.url in uncached.stderr and "UpstreamUnavailable" in uncached.stderr
        invalid = aws(
            server, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "basic"
        ).json  # fmt: skip
        assert invalid["isValid"] is False and "UpstreamUnavailable" in invalid["failure"]
    finally:
        setup.basic.start()
