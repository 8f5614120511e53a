"""Access keys remembered by SigV4 (per credentials generation) on two nodes sharing one
metadata database: a key deactivated, re-activated or deleted through the IAM API of one node
is refused or accepted by every worker of the other from the very next call."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from e2e.ecrhelp import allow, aws_client, raises, unique
from e2e.ecrhelp import client as ecr_client
from server import Server

ADMIN_KEY = "AKIAKEYGENERATION000"
ADMIN_SECRET = "key-generation-admin-secret-0123456789"
CALLS = 6  # enough calls for both workers of a node to answer some


def _two_nodes(tmp_path: Path) -> tuple[Server, Server]:
    shared = {
        # Both nodes open the same sealed secrets and accept the same administrator.
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": ADMIN_KEY,
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET,
    }
    first = Server(tmp_path / "node-a", workers=2, env=dict(shared)).start()
    database = first.database_url or f"sqlite:///{(tmp_path / 'node-a' / 'metadata.db')}"
    second = Server(tmp_path / "node-b", workers=2, env={**shared, "CARGOBAY_DATABASE": database})
    second.backend_env = dict(first.backend_env or {})
    second.backend_env["CARGOBAY_DATABASE"] = database
    return first, second.start()


def test_a_key_changed_on_one_node_is_refused_on_the_other_at_once(tmp_path: Path) -> None:
    first, second = _two_nodes(tmp_path)
    try:
        iam = aws_client(first, "iam", (ADMIN_KEY, ADMIN_SECRET))
        name = unique("keygen")
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=json.dumps(allow("ecr:DescribeRepositories")),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        ecr = ecr_client(second, key["AccessKeyId"], key["SecretAccessKey"])
        for _ in range(CALLS):  # every worker of the second node now remembers the key
            assert "repositories" in ecr.describe_repositories()

        iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
        for _ in range(CALLS):
            with raises("UnrecognizedClientException"):
                ecr.describe_repositories()

        iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Active")
        for _ in range(CALLS):
            assert "repositories" in ecr.describe_repositories()

        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for _ in range(CALLS):
            with raises("UnrecognizedClientException"):
                ecr.describe_repositories()
        # The second node's own IAM API refuses it too (the IAM door shares the lookup).
        with raises("InvalidClientTokenId"):
            aws_client(second, "iam", (key["AccessKeyId"], key["SecretAccessKey"])).get_user()
    finally:
        second.stop()
        first.discard()
