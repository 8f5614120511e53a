"""Registry-level settings are per account and region, as in ECR: one `cargobay serve` answering
for two regions (`regions_served`), boto3 clients signed for each. A registry policy, a
replication or scanning configuration, pull-through cache rules, creation templates, account
settings, a signing configuration and pull-time update exclusions set in one region are
invisible in the other and change nothing there; the default region keeps its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from e2e.ecrhelp import ACCOUNT, allow, client, make_user, raises, unique
from e2e.ocihttp import Client
from e2e.signinghelp import profile_name, wait_signed
from server import Server

pytestmark = pytest.mark.backend

SUFFIX = "registry.example.test"
DEFAULT, OTHER = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"CARGOBAY_REGIONS_SERVED": OTHER, "CARGOBAY_HOST_SUFFIX": SUFFIX}
    started = Server(tmp_path_factory.mktemp("regset") / "data", workers=1, env=env).start()
    yield started
    started.discard()


def _ecr(server: Server, region: str, creds: tuple[str, str] | None = None):
    key, secret = creds or server.credentials
    return boto3.client(
        "ecr",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _v2(server: Server, region: str, creds: tuple[str, str] | None = None) -> Client:
    """`/v2/` as a client that resolved the region's ECR-form host to this server."""
    session = requests.Session()
    session.auth = creds or server.credentials
    session.headers["Host"] = f"{ACCOUNT}.dkr.ecr.{region}.{SUFFIX}"
    return Client(server, session)


def _to_default_region(prefix: str) -> list[dict]:
    """Replication rules that copy the names under `prefix` to the default region."""
    return [
        {
            "destinations": [{"region": DEFAULT, "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": prefix, "filterType": "PREFIX_MATCH"}],
        }
    ]


def test_a_registry_policy_applies_in_its_region_only(server: Server, tmp_path: Path) -> None:
    """A Deny in the other region's registry policy refuses the user's reads there (ECR API
    and `/v2/`), not the same reads in the default region, which has no policy at all."""
    name = unique("regpol/app")
    pushed = {region: _v2(server, region).push_image(name, "v1") for region in (DEFAULT, OTHER)}
    user = unique("regpol-reader")
    creds = make_user(server, user, allow("ecr:*"), tmp=tmp_path)
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NoReadsHere",
                "Effect": "Deny",
                "Principal": {"AWS": arn},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": f"arn:aws:ecr:*:{ACCOUNT}:repository/*",
            }
        ],
    }
    there = _ecr(server, OTHER)
    there.put_registry_policy(policyText=json.dumps(deny))
    try:
        with raises("RegistryPolicyNotFoundException"):
            client(server).get_registry_policy()
        assert json.loads(there.get_registry_policy()["policyText"]) == deny

        mine = _ecr(server, DEFAULT, creds)
        got = mine.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
        assert [i["imageId"]["imageDigest"] for i in got["images"]] == [pushed[DEFAULT].digest]
        with raises("AccessDeniedException"):
            _ecr(server, OTHER, creds).batch_get_image(
                repositoryName=name, imageIds=[{"imageTag": "v1"}]
            )
        accept = {"Accept": pushed[DEFAULT].media_type}
        here_v2 = _v2(server, DEFAULT, creds).get(f"/v2/{name}/manifests/v1", headers=accept)
        assert here_v2.status_code == 200 and here_v2.content == pushed[DEFAULT].manifest
        there_v2 = _v2(server, OTHER, creds).get(f"/v2/{name}/manifests/v1", headers=accept)
        assert there_v2.status_code == 403, there_v2.text
        with raises("RegistryPolicyNotFoundException"):  # deleting here leaves the other's
            client(server).delete_registry_policy()
    finally:
        there.delete_registry_policy()
    again = _v2(server, OTHER, creds).get(f"/v2/{name}/manifests/v1", headers=accept)
    assert again.status_code == 200


def _replication_statuses(ecr, name: str) -> list[dict]:
    found = ecr.describe_image_replication_status(repositoryName=name, imageId={"imageTag": "v1"})
    return found["replicationStatuses"]


def test_a_replication_configuration_replicates_its_region_s_pushes_only(server: Server) -> None:
    """The other region replicates its pushes to the default region; a push of a matching
    name in the default region, whose configuration is empty, replicates nowhere."""
    prefix = unique("regrepl")
    rules = _to_default_region(prefix)
    there, here = _ecr(server, OTHER), client(server)
    there.put_replication_configuration(replicationConfiguration={"rules": rules})
    try:
        assert there.describe_registry()["replicationConfiguration"]["rules"] == rules
        assert here.describe_registry()["replicationConfiguration"]["rules"] == []

        from_here = f"{prefix}/here"
        _v2(server, DEFAULT).push_image(from_here, "v1")
        assert _replication_statuses(here, from_here) == []
        with raises("RepositoryNotFoundException"):  # nothing went to the other region
            there.describe_repositories(repositoryNames=[from_here])

        from_there = f"{prefix}/there"
        pushed = _v2(server, OTHER).push_image(from_there, "v1")
        deadline = time.monotonic() + 120
        while (statuses := _replication_statuses(there, from_there)) != [
            {"region": DEFAULT, "registryId": ACCOUNT, "status": "COMPLETE"}
        ]:
            assert time.monotonic() < deadline, statuses
            time.sleep(0.3)
        [detail] = here.describe_images(repositoryName=from_there)["imageDetails"]
        assert detail["imageDigest"] == pushed.digest
    finally:
        there.put_replication_configuration(replicationConfiguration={"rules": []})


def test_scanning_configuration_and_account_settings_are_regional(server: Server) -> None:
    """A SCAN_ON_PUSH rule of the other region scans that region's pushes only; an account
    setting put there is not the default region's."""
    prefix = unique("regscan")
    rules = [
        {
            "scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": f"{prefix}*", "filterType": "WILDCARD"}],
        }
    ]
    there, here = _ecr(server, OTHER), client(server)
    there.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
    try:
        assert there.get_registry_scanning_configuration()["scanningConfiguration"] == {
            "scanType": "BASIC",
            "rules": rules,
        }
        assert here.get_registry_scanning_configuration()["scanningConfiguration"] == {
            "scanType": "BASIC",
            "rules": [],
        }
        name = f"{prefix}-app"
        pushed = {region: _v2(server, region).push_image(name, "v1") for region in (DEFAULT, OTHER)}
        with raises("ScanNotFoundException"):  # MANUAL here: nothing scanned it
            here.describe_image_scan_findings(
                repositoryName=name, imageId={"imageDigest": pushed[DEFAULT].digest}
            )
        scanned = there.describe_image_scan_findings(
            repositoryName=name, imageId={"imageDigest": pushed[OTHER].digest}
        )
        assert scanned["imageScanStatus"]["status"] in {"IN_PROGRESS", "COMPLETE", "FAILED"}
        [config] = there.batch_get_repository_scanning_configuration(repositoryNames=[name])[
            "scanningConfigurations"
        ]
        assert config["scanFrequency"] == "SCAN_ON_PUSH"
        [config] = here.batch_get_repository_scanning_configuration(repositoryNames=[name])[
            "scanningConfigurations"
        ]
        assert config["scanFrequency"] == "MANUAL"
    finally:
        there.put_registry_scanning_configuration(scanType="BASIC", rules=[])

    setting = "BASIC_SCAN_TYPE_VERSION"
    there.put_account_setting(name=setting, value="CLAIR")
    try:
        assert there.get_account_setting(name=setting)["value"] == "CLAIR"
        assert here.get_account_setting(name=setting)["value"] == "AWS_NATIVE"
    finally:
        there.put_account_setting(name=setting, value="AWS_NATIVE")


def test_pull_through_rules_cover_their_region_only(server: Server) -> None:
    """A rule of the other region makes its prefix a cache there (pushes refused); the same
    prefix in the default region is an ordinary repository."""
    prefix = unique("regptc")
    there, here = _ecr(server, OTHER), client(server)
    there.create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.example.invalid"
    )
    try:
        listed = there.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        assert prefix in {r["ecrRepositoryPrefix"] for r in listed}
        mine = here.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        assert prefix not in {r["ecrRepositoryPrefix"] for r in mine}
        with raises("PullThroughCacheRuleNotFoundException"):
            here.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)

        name = f"{prefix}/app"
        pushed = _v2(server, DEFAULT).push_image(name, "v1")
        assert here.describe_images(repositoryName=name)["imageDetails"][0]["imageDigest"] == (
            pushed.digest
        )
        refused = _v2(server, OTHER).put(
            f"/v2/{name}/manifests/v1",
            data=pushed.manifest,
            headers={"Content-Type": pushed.media_type},
        )
        assert refused.status_code == 405, refused.text
        assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
    finally:
        there.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)


def test_creation_templates_apply_in_their_region_only(server: Server) -> None:
    """A CREATE_ON_PUSH template of the other region shapes the repositories pushes create
    there; the same push in the default region gets the defaults."""
    prefix = unique("regtpl")
    there, here = _ecr(server, OTHER), client(server)
    there.create_repository_creation_template(
        prefix=prefix, appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE"
    )
    try:
        listed = there.describe_repository_creation_templates(prefixes=[prefix])
        assert [t["prefix"] for t in listed["repositoryCreationTemplates"]] == [prefix]
        mine = here.describe_repository_creation_templates(prefixes=[prefix])
        assert mine["repositoryCreationTemplates"] == []
        with raises("TemplateNotFoundException"):
            here.delete_repository_creation_template(prefix=prefix)

        name = f"{prefix}/app"
        for region in (DEFAULT, OTHER):
            _v2(server, region).push_image(name, "v1")
        [mine] = here.describe_repositories(repositoryNames=[name])["repositories"]
        [theirs] = there.describe_repositories(repositoryNames=[name])["repositories"]
        assert (mine["imageTagMutability"], theirs["imageTagMutability"]) == (
            "MUTABLE",
            "IMMUTABLE",
        )
    finally:
        there.delete_repository_creation_template(prefix=prefix)


def test_a_signing_configuration_signs_its_region_s_pushes_only(server: Server) -> None:
    """A signing rule of the other region queues a signature for that region's pushes (here
    FAILED: its profile does not exist, which is enough to show the rule matched); the same
    push in the default region, which has no configuration, has no signing status."""
    prefix = unique("regsign")
    arn = f"arn:aws:signer:{OTHER}:{ACCOUNT}:/signing-profiles/{profile_name('absent')}"
    rules = [
        {
            "signingProfileArn": arn,
            "repositoryFilters": [{"filter": f"{prefix}*", "filterType": "WILDCARD_MATCH"}],
        }
    ]
    there, here = _ecr(server, OTHER), client(server)
    there.put_signing_configuration(signingConfiguration={"rules": rules})
    try:
        assert there.get_signing_configuration()["signingConfiguration"]["rules"] == rules
        with raises("SigningConfigurationNotFoundException"):
            here.get_signing_configuration()
        with raises("SigningConfigurationNotFoundException"):
            here.delete_signing_configuration()
        name = f"{prefix}-app"
        pushed = {region: _v2(server, region).push_image(name, "v1") for region in (DEFAULT, OTHER)}
        [status] = wait_signed(there, name, pushed[OTHER].digest)
        assert (status["signingProfileArn"], status["status"]) == (arn, "FAILED")
        mine = here.describe_image_signing_status(
            repositoryName=name, imageId={"imageDigest": pushed[DEFAULT].digest}
        )
        assert mine["signingStatuses"] == []
    finally:
        there.delete_signing_configuration()
    with raises("SigningConfigurationNotFoundException"):
        there.get_signing_configuration()


def test_pull_time_exclusions_are_regional(server: Server) -> None:
    """An exclusion registered in the other region is listed there only, and deregistering it
    in the default region finds nothing."""
    arn = f"arn:aws:iam::{ACCOUNT}:user/{unique('regscanner')}"
    there, here = _ecr(server, OTHER), client(server)
    there.register_pull_time_update_exclusion(principalArn=arn)
    try:
        assert arn in there.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
        assert arn not in here.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
        with raises("ExclusionNotFoundException"):
            here.deregister_pull_time_update_exclusion(principalArn=arn)
        here.register_pull_time_update_exclusion(principalArn=arn)  # its own row here
        here.deregister_pull_time_update_exclusion(principalArn=arn)
        assert arn in there.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
    finally:
        there.deregister_pull_time_update_exclusion(principalArn=arn)
    assert arn not in there.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]


def test_a_replication_backfill_belongs_to_its_region(server: Server) -> None:
    """A backfill started in the other region copies that region's images only, and is
    listed, read and stopped there only."""
    prefix = unique("regfill")
    name = f"{prefix}/app"
    pushed = {region: _v2(server, region).push_image(name, "v1") for region in (DEFAULT, OTHER)}
    rules = _to_default_region(prefix)
    there, here = _ecr(server, OTHER), client(server)
    there.put_replication_configuration(replicationConfiguration={"rules": rules})
    try:
        started = there.start_replication_backfill(
            destination={"region": DEFAULT, "registryId": ACCOUNT}
        )
        backfill = started["replicationBackfillId"]
        with raises("ReplicationBackfillNotFoundException"):
            here.describe_replication_backfill_results(replicationBackfillId=backfill)
        with raises("ReplicationBackfillNotFoundException"):
            here.stop_replication_backfill(replicationBackfillId=backfill)
        listed = here.list_replication_backfills()["backfills"]
        assert backfill not in {b["replicationBackfillId"] for b in listed}
        listed = there.list_replication_backfills()["backfills"]
        assert backfill in {b["replicationBackfillId"] for b in listed}
        deadline = time.monotonic() + 120
        while (
            results := there.describe_replication_backfill_results(replicationBackfillId=backfill)
        )["status"] != "COMPLETE":
            assert time.monotonic() < deadline, results
            time.sleep(0.3)
        copied = [r["imageId"]["imageDigest"] for r in results["results"]]
        assert copied == [pushed[OTHER].digest]
    finally:
        there.put_replication_configuration(replicationConfiguration={"rules": []})
