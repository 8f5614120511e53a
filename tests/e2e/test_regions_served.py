"""One `cargobay serve` answering for two regions (`regions_served`): boto3 clients signed for
each region see their own repositories (same name, different ARNs and URIs), KMS keys and
secrets; a region not served is refused with InvalidSignatureException; on `/v2/` the ECR-form
host (`host_suffix`) selects the region (skopeo through this server as its HTTP proxy, and
requests with an explicit Host header, since the made-up host names have no DNS), and the
default host keeps the default region."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import require_tool
from e2e.ecrhelp import ACCOUNT, client, pull, pulled_blob, pulled_manifest, push, raises, unique
from e2e.ocihttp import Client
from e2e.replhelp import statuses, wait_statuses
from e2e.signinghelp import PLATFORM, profile_name, wait_signed
from imagebuilder import Image
from server import Server

pytestmark = pytest.mark.backend

SUFFIX = "registry.example.test"
DEFAULT, OTHER, NOT_SERVED = "us-east-1", "eu-west-1", "ap-south-1"


def _host(region: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{region}.{SUFFIX}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"CARGOBAY_REGIONS_SERVED": f"{OTHER}", "CARGOBAY_HOST_SUFFIX": SUFFIX}
    started = Server(tmp_path_factory.mktemp("regions") / "data", workers=1, env=env).start()
    yield started
    started.discard()


def _aws(server: Server, service: str, region: str):
    key, secret = server.credentials
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _v2(server: Server, region: str) -> Client:
    """`/v2/` as a client that resolved the region's ECR-form host to this server."""
    session = server.session()
    session.headers["Host"] = _host(region)
    return Client(server, session)


def test_the_same_name_in_two_regions_is_two_repositories(server: Server) -> None:
    here, there = client(server), _aws(server, "ecr", OTHER)
    name = unique("team/app")
    a = here.create_repository(repositoryName=name, tags=[{"Key": "r", "Value": DEFAULT}])
    b = there.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    a, b = a["repository"], b["repository"]
    assert a["repositoryArn"] == f"arn:aws:ecr:{DEFAULT}:{ACCOUNT}:repository/{name}"
    assert b["repositoryArn"] == f"arn:aws:ecr:{OTHER}:{ACCOUNT}:repository/{name}"
    assert (a["repositoryUri"], b["repositoryUri"]) == (
        f"{_host(DEFAULT)}/{name}",
        f"{_host(OTHER)}/{name}",
    )
    assert a["registryId"] == b["registryId"] == ACCOUNT
    with raises("RepositoryAlreadyExistsException"):
        there.create_repository(repositoryName=name)

    # Each region describes its own: settings, tags and listings do not leak across.
    [mine] = here.describe_repositories(repositoryNames=[name])["repositories"]
    [theirs] = there.describe_repositories(repositoryNames=[name])["repositories"]
    assert (mine["imageTagMutability"], theirs["imageTagMutability"]) == ("MUTABLE", "IMMUTABLE")
    assert there.list_tags_for_resource(resourceArn=b["repositoryArn"])["tags"] == []
    with raises("InvalidParameterException"):  # an ARN of the other region
        there.list_tags_for_resource(resourceArn=a["repositoryArn"])
    only_there = unique("only/there")
    there.create_repository(repositoryName=only_there)
    with raises("RepositoryNotFoundException"):
        here.describe_repositories(repositoryNames=[only_there])
    endpoint = there.get_authorization_token()["authorizationData"][0]["proxyEndpoint"]
    assert endpoint == f"http://{_host(OTHER)}"

    # Deleting one leaves the other.
    there.delete_repository(repositoryName=name)
    assert here.describe_repositories(repositoryNames=[name])["repositories"][0] == mine


def test_a_region_not_served_is_refused(server: Server) -> None:
    for service, call in (
        ("ecr", lambda c: c.describe_repositories()),
        ("kms", lambda c: c.list_keys()),
        ("secretsmanager", lambda c: c.list_secrets()),
        ("cloudtrail", lambda c: c.lookup_events()),
        ("signer", lambda c: c.list_signing_profiles()),
    ):
        with raises("InvalidSignatureException") as info:
            call(_aws(server, service, NOT_SERVED))
        assert "region" in info.value.response["Error"]["Message"]
    for service, call in (  # and a served region is accepted on every door
        ("cloudtrail", lambda c: c.lookup_events()),
        ("signer", lambda c: c.list_signing_profiles()),
        ("kms", lambda c: c.list_keys()),
    ):
        call(_aws(server, service, OTHER))
    refused = _v2(server, NOT_SERVED).get("/v2/_catalog")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "DENIED"


def test_kms_keys_and_secrets_are_regional(server: Server) -> None:
    for region in (DEFAULT, OTHER):
        kms = _aws(server, "kms", region)
        key = kms.create_key()["KeyMetadata"]
        assert key["Arn"].startswith(f"arn:aws:kms:{region}:{ACCOUNT}:key/")
        secrets = _aws(server, "secretsmanager", region)
        created = secrets.create_secret(Name=unique("regional"), SecretString="s3cr3t")
        assert created["ARN"].startswith(f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:")
    here = {k["KeyId"] for k in _aws(server, "kms", DEFAULT).list_keys()["Keys"]}
    there = {k["KeyId"] for k in _aws(server, "kms", OTHER).list_keys()["Keys"]}
    assert here and there and not here & there


def test_v2_host_selects_the_region(server: Server, image: Image, tmp_path) -> None:
    name = unique("team/web")
    there = _v2(server, OTHER)
    pushed = there.push_image(name, "v1")
    ecr_there = _aws(server, "ecr", OTHER)
    images = ecr_there.describe_images(repositoryName=name)["imageDetails"]
    assert [i["imageDigest"] for i in images] == [pushed.digest]
    with raises("RepositoryNotFoundException"):  # nothing of that name in the default region
        client(server).describe_images(repositoryName=name)
    assert _v2(server, DEFAULT).get(f"/v2/{name}/tags/list").status_code == 404
    got = there.get(f"/v2/{name}/manifests/v1", headers={"Accept": pushed.media_type})
    assert got.status_code == 200 and got.content == pushed.manifest
    listed = there.get("/v2/_catalog").json()["repositories"]
    assert name in listed

    # The same name through the default host (skopeo, no Host trick) is the default region's.
    push(server, image, f"{name}:v1")
    pulled = tmp_path / "pulled"
    pull(server, f"{name}:v1", pulled)
    assert pulled_manifest(pulled)[0] == image.manifest_digest != pushed.digest
    again = there.get(f"/v2/{name}/manifests/v1", headers={"Accept": pushed.media_type})
    assert again.content == pushed.manifest  # untouched by the default region's push
    tags = ecr_there.list_images(repositoryName=name)["imageIds"]
    assert tags == [{"imageDigest": pushed.digest, "imageTag": "v1"}]

    # A layer download URL of the other region fetches that region's blob.
    layer = json.loads(pushed.manifest)["layers"][0]["digest"]
    url = ecr_there.get_download_url_for_layer(repositoryName=name, layerDigest=layer)
    fetched = requests.get(url["downloadUrl"], timeout=60)
    assert fetched.status_code == 200 and fetched.content == pushed.blobs[layer]
    if "token=" in url["downloadUrl"]:  # this registry's URL (not an object store's)
        # Its token is for that region's repository only.
        assert f"&region={OTHER}" in url["downloadUrl"]
        elsewhere = url["downloadUrl"].replace(f"&region={OTHER}", "")
        assert requests.get(elsewhere, timeout=60).status_code == 401


def test_tasks_run_in_the_region_of_the_push(server: Server) -> None:
    """A push in the other region queues its signing task there: the task finds that region's
    repository and signs its image with that region's profile and KMS key."""
    profile = profile_name("regional")
    signer = _aws(server, "signer", OTHER)  # the profile (and its KMS key) of that region
    arn = signer.put_signing_profile(profileName=profile, platformId=PLATFORM)["arn"]
    assert arn.startswith(f"arn:aws:signer:{OTHER}:")
    prefix = unique("signedregion")
    rule = {
        "signingProfileArn": arn,
        "repositoryFilters": [{"filter": f"{prefix}/*", "filterType": "WILDCARD_MATCH"}],
    }
    there = _aws(server, "ecr", OTHER)  # the signing configuration is regional, as in ECR
    there.put_signing_configuration(signingConfiguration={"rules": [rule]})
    try:
        name = f"{prefix}/app"
        pushed = _v2(server, OTHER).push_image(name, "v1")
        assert wait_signed(there, name, pushed.digest) == [
            {"signingProfileArn": arn, "status": "COMPLETE"}
        ]
        referrers = _v2(server, OTHER).get(f"/v2/{name}/referrers/{pushed.digest}").json()
        assert len(referrers["manifests"]) == 1
    finally:
        there.delete_signing_configuration()


def test_replication_to_another_served_region_copies_locally(
    server: Server, image: Image, tmp_path
) -> None:
    """No endpoint is configured for the other region (`[regions.*]`): the replica can only be
    a local copy, pushed in one region and pulled in the other with the same bytes."""
    prefix = unique("replregion")
    rules = [
        {
            "destinations": [{"region": OTHER, "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": prefix, "filterType": "PREFIX_MATCH"}],
        }
    ]
    here = client(server)
    here.put_replication_configuration(replicationConfiguration={"rules": rules})
    try:
        name = f"{prefix}/app"
        push(server, image, f"{name}:v1")
        want = {(OTHER, ACCOUNT): "COMPLETE"}
        found = wait_statuses(server, name, "v1", want)
        assert set(found) == {(OTHER, ACCOUNT)}
        there = _aws(server, "ecr", OTHER)
        [detail] = there.describe_images(repositoryName=name)["imageDetails"]
        assert (detail["imageDigest"], detail["imageTags"]) == (image.manifest_digest, ["v1"])
        got = _v2(server, OTHER).get(
            f"/v2/{name}/manifests/v1", headers={"Accept": json.loads(image.manifest)["mediaType"]}
        )
        assert got.status_code == 200 and got.content == image.manifest
        layer = json.loads(image.manifest)["layers"][0]["digest"]
        assert _v2(server, OTHER).pull_blob(name, layer) == image.blobs[layer]
        # The replica does not replicate again (one hop, and never onto itself).
        assert set(statuses(server, name, "v1")) == {(OTHER, ACCOUNT)}
        assert (
            there.describe_image_replication_status(
                repositoryName=name, imageId={"imageTag": "v1"}
            )["replicationStatuses"]
            == []
        )
    finally:
        here.put_replication_configuration(replicationConfiguration={"rules": []})


def _skopeo_via(server: Server, *args: str) -> None:
    """skopeo reaching the region's ECR-form host: there is no DNS for it, so this server is
    skopeo's HTTP proxy, which gets the absolute URL (and its Host) as a proxy does."""
    env = {**os.environ, "HTTP_PROXY": server.url, "http_proxy": server.url}
    env.update({"NO_PROXY": "", "no_proxy": ""})
    command = [require_tool("skopeo"), *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_skopeo_push_and_pull_through_the_region_host(
    server: Server, image: Image, tmp_path
) -> None:
    name = unique("skopeo/regional")
    ref = f"docker://{_host(OTHER)}/{name}:v1"
    creds = server.creds_arg
    _skopeo_via(
        server, "copy", "--dest-creds", creds, "--dest-tls-verify=false",
        f"oci:{image.layout}:latest", ref,
    )  # fmt: skip
    there = _aws(server, "ecr", OTHER)
    [detail] = there.describe_images(repositoryName=name)["imageDetails"]
    assert detail["imageDigest"] == image.manifest_digest
    with raises("RepositoryNotFoundException"):
        client(server).describe_images(repositoryName=name)
    pulled = tmp_path / "pulled"
    _skopeo_via(
        server, "copy", "--src-creds", creds, "--src-tls-verify=false", ref, f"dir:{pulled}"
    )
    assert pulled_manifest(pulled) == (image.manifest_digest, image.manifest)
    for digest, data in image.blobs.items():
        assert pulled_blob(pulled, digest) == data


def test_usage_and_metrics_tell_the_regions_apart(server: Server) -> None:
    """The same name pushed in two regions is two repositories in `cargobay usage` (each with
    its region, `--region` to pick one) and two Prometheus series (a `region` label)."""
    name = unique("meter/regional")
    here = _v2(server, DEFAULT).push_image(name, "v1", layer_sizes=(2048,))
    there = _v2(server, OTHER).push_image(name, "v1", layer_sizes=(50_000,))

    def usage(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["cargobay", "usage", "--data-dir", str(server.data_dir), *args]
        return subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            env=server.process_env,
            timeout=120,
        )

    def stored(region: str) -> int:
        return sum(len(blob) for blob in (here if region == DEFAULT else there).blobs.values())

    report = json.loads(usage("--json").stdout)
    rows = {(r["region"], r["repository"]): r for r in report["repositories"]}
    assert rows[(DEFAULT, name)]["stored_bytes"] == stored(DEFAULT)
    assert rows[(OTHER, name)]["stored_bytes"] == stored(OTHER)
    only = json.loads(usage("--json", "--region", OTHER).stdout)["repositories"]
    assert {r["region"] for r in only} == {OTHER}
    assert [r["stored_bytes"] for r in only if r["repository"] == name] == [stored(OTHER)]
    refused = usage("--region", NOT_SERVED)
    assert refused.returncode == 2 and f"{NOT_SERVED} is not served here" in refused.stderr

    metrics = Client(server).get("/metrics").text
    for region in (DEFAULT, OTHER):
        series = (
            f'cargobay_repository_stored_bytes{{registry_id="{ACCOUNT}",region="{region}",'
            f'repository="{name}"}} {stored(region)}'
        )
        assert series in metrics


def test_cloudtrail_lookups_are_regional(server: Server) -> None:
    """CloudTrail's event history is regional: LookupEvents signed for a region answers the
    calls made in it (the CreateRepository of the same name in each region is found once in
    each, with that region's awsRegion and ARN)."""
    import time

    name = unique("audited/app")
    client(server).create_repository(repositoryName=name)
    _aws(server, "ecr", OTHER).create_repository(repositoryName=name)

    def created(region: str) -> list[dict]:
        found = _aws(server, "cloudtrail", region).lookup_events(
            LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": name}]
        )["Events"]
        return [e for e in found if e["EventName"] == "CreateRepository"]

    deadline = time.monotonic() + 60  # records are flushed in batches (`audit_flush_ms`)
    while (len(created(DEFAULT)), len(created(OTHER))) != (1, 1):
        assert time.monotonic() < deadline, (created(DEFAULT), created(OTHER))
        time.sleep(0.2)
    for region in (DEFAULT, OTHER):
        (event,) = created(region)
        record = json.loads(event["CloudTrailEvent"])
        assert record["awsRegion"] == region
        arn = f"arn:aws:ecr:{region}:{ACCOUNT}:repository/{name}"
        assert arn in json.dumps(record), record
