"""A manifest GET reads its policies with the manifest, in one statement, so a change made
through one node binds the very next pull on another: two nodes on one PostgreSQL database and
one bucket; repository, registry and identity policies and an access key are changed through
node A (boto3) and the next GET through node B is checked, with no wait in between."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import pgcluster
from e2e.ecrhelp import ACCOUNT, allow, aws_client, client
from e2e.ocihttp import Client
from e2e.roundtriphelp import HEADER
from server import Server

REPO = "policy/pulled"
ADMIN_KEY = "AKIAPULLPOLICYTEST00"
ADMIN_SECRET = "pull-policy-admin-secret-0123456789"
PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")


@pytest.fixture
def nodes(tmp_path: Path, s3_server) -> Iterator[tuple[Server, Server]]:
    pg = pgcluster.shared_cluster()
    database = pg.url(pg.database_for(tmp_path / "shared"))
    bucket = s3_server.create_bucket(f"pullpolicy-{os.urandom(4).hex()}")
    env = {
        **s3_server.env,
        "CARGOBAY_DATABASE": database,
        "CARGOBAY_STORAGE": s3_server.storage_url(bucket, "registry"),
        "CARGOBAY_AUTO_UPGRADE": "true",
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": ADMIN_KEY,
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET,
        "CARGOBAY_COUNT_DB_STATEMENTS": "true",
        "CARGOBAY_JOBS_ENABLED": "false",
    }
    started = []
    for name in ("a", "b"):
        node = Server(tmp_path / f"node-{name}", workers=1, env=dict(env))
        node.backend_env = {}  # the shared backends above
        started.append(node.start())
    yield started[0], started[1]
    for node in started:
        node.stop()
    pg.drop_database(pg.database_for(tmp_path / "shared"))


def _deny(principal_arn: str, resource: str | None = None) -> str:
    statement = {
        "Sid": "NoPulls",
        "Effect": "Deny",
        "Principal": {"AWS": principal_arn},
        "Action": "ecr:BatchGetImage",
    }
    if resource:
        statement["Resource"] = resource
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_a_policy_change_on_one_node_binds_the_next_pull_on_the_other(
    nodes: tuple[Server, Server],
) -> None:
    a, b = nodes
    admin = requests.Session()
    admin.auth = (ADMIN_KEY, ADMIN_SECRET)
    Client(a, admin).push_image(REPO, "v1", layer_sizes=(64,))
    iam = aws_client(a, "iam", (ADMIN_KEY, ADMIN_SECRET))
    iam.create_user(UserName="puller")
    iam.put_user_policy(
        UserName="puller", PolicyName="pull", PolicyDocument=json.dumps(allow(*PULL))
    )
    key = iam.create_access_key(UserName="puller")["AccessKey"]
    user = requests.Session()
    user.auth = (key["AccessKeyId"], key["SecretAccessKey"])
    arn = f"arn:aws:iam::{ACCOUNT}:user/puller"
    url = f"{b.url}/v2/{REPO}/manifests/v1"

    def status() -> int:
        return user.get(url, timeout=60).status_code

    # Warm: node B remembers the key's verification and the parsed policies.
    counts = []
    for _ in range(4):
        response = user.get(url, timeout=60)
        assert response.status_code == 200, response.text
        counts.append(int(response.headers[HEADER]))
    # A non-administrator's warm pull is one statement too (identity policies included);
    # the least of three, as the credential store's once-a-second revocation poll may land
    # in any one of them.
    assert min(counts[1:]) <= 1, counts

    ecr = client(a, ADMIN_KEY, ADMIN_SECRET)
    ecr.set_repository_policy(repositoryName=REPO, policyText=_deny(arn))
    assert status() == 403
    ecr.delete_repository_policy(repositoryName=REPO)
    assert status() == 200

    ecr.put_registry_policy(policyText=_deny(arn, f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*"))
    assert status() == 403
    ecr.delete_registry_policy()
    assert status() == 200

    iam.put_user_policy(
        UserName="puller",
        PolicyName="pull",
        PolicyDocument=json.dumps(allow("ecr:DescribeImages")),
    )
    assert status() == 403
    iam.put_user_policy(
        UserName="puller", PolicyName="pull", PolicyDocument=json.dumps(allow(*PULL))
    )
    assert status() == 200

    iam.update_access_key(UserName="puller", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert status() == 401
