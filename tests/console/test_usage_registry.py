"""The usage page and its JSON, and the registry page, against a real server."""

from __future__ import annotations

import time

from console.consolehelp import signed_in
from e2e.ecrhelp import allow, make_user, pull, unique


def test_usage_counts_stored_and_pulled_bytes(console_server, pushed, tmp) -> None:
    pull(console_server, f"{pushed}:1.0", tmp / "pulled")
    visitor = signed_in(console_server)
    page = visitor.get("usage")
    assert page.status_code == 200
    assert 'id="usage-chart"' in page.text and 'data-source="/console/usage.json"' in page.text
    assert pushed in page.text
    # Bytes out are flushed by each worker every few seconds.
    deadline = time.monotonic() + 60
    while True:
        data = visitor.get("usage.json").json()
        repo = next(r for r in data["repositories"] if r["repository"] == pushed)
        if repo["transferred_bytes"] > 200_000 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert repo["stored_bytes"] > 200_000
    assert repo["transferred_bytes"] > 200_000
    assert len(data["days"]) == len(data["stored"]) == len(data["transferred"]) == 30
    assert data["stored"][-1] >= repo["stored_bytes"]
    assert sum(data["transferred"]) >= repo["transferred_bytes"]
    assert float(repo["cost"]["storage_usd_per_month"]) > 0
    assert data["prices"]["per_gb_month"] == "0.10"


def test_usage_is_authorized_as_describe_repositories(console_server, tmp) -> None:
    key, secret = make_user(console_server, unique("nousage"), allow("ecr:DescribeImages"), tmp=tmp)
    visitor = signed_in(console_server, key, secret)
    assert visitor.get("usage").status_code == 403
    data = visitor.get("usage.json")
    assert data.status_code == 403
    assert data.json()["error"] == "AccessDeniedException"


def test_registry_page_sections_follow_permissions(console_server, tmp) -> None:
    import boto3

    key_id, secret = console_server.credentials
    kms = boto3.client(
        "kms",
        endpoint_url=console_server.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    made = kms.create_key(Description="console")["KeyMetadata"]["KeyId"]
    admin = signed_in(console_server)
    page = admin.get("registry")
    assert made in page.text
    assert page.status_code == 200
    assert 'id="users-table"' in page.text
    assert console_server.credentials[0] in page.text  # the key id, listed
    assert console_server.credentials[1] not in page.text  # never its secret
    assert 'id="audit-table"' in page.text
    # The sign-in itself is in the audit trail (written within a moment, by its worker).
    deadline = time.monotonic() + 60
    while "ConsoleLogin" not in page.text and time.monotonic() < deadline:
        time.sleep(0.5)
        page = admin.get("registry")
    assert "ConsoleLogin" in page.text
    key, secret = make_user(
        console_server, unique("plain"), allow("ecr:DescribeRepositories"), tmp=tmp
    )
    user = signed_in(console_server, key, secret).get("registry")
    assert user.status_code == 200
    assert 'id="users-table"' not in user.text
    assert "iam:ListUsers" in user.text
    assert "cloudtrail:LookupEvents" in user.text
    assert "kms:ListKeys" in user.text
    assert console_server.credentials[0] not in user.text
