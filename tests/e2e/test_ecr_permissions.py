"""The permission matrix: IAM users made with `cargobay admin` against a running server, their
identity policies, repository policies, a second account, conditions and tokens, checked through
both front doors (the ECR API with boto3, `/v2/` with skopeo and requests)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from cargobay.iam.principal import Principal
from cargobay.iam.tokens import TokenClaims, TokenSigner, blob_scope, load_signer
from cargobay.metadata.db import Database
from e2e.ecrhelp import (
    ACCOUNT,
    OCI_MANIFEST,
    allow,
    client,
    make_user,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    raises,
    unique,
)
from e2e.ocihttp import follow_blob_redirect
from imagebuilder import build_image, sha256

OTHER_ACCOUNT = "111111111111"
PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetAuthorizationToken",
    "ecr:DescribeImages",
)
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)


def repo_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:ecr:us-east-1:{account}:repository/{name}"


def v2_error(response: requests.Response) -> str:
    return response.json()["errors"][0]["code"]


def token_of(ecr) -> str:
    raw = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, token = base64.b64decode(raw).decode().partition(":")
    assert user == "AWS"
    return token


@pytest.fixture(scope="module")
def seeded(registry, tmp_path_factory) -> dict:
    """An image pushed by the administrator to a repository of account 0."""
    image = build_image(tmp_path_factory.mktemp("perm-image") / "img", [3000, 1500])
    name = unique("perm/seed")
    push(registry, image, f"{name}:1")
    return {"name": name, "image": image}


def test_read_only_user_pulls_but_cannot_push(registry, seeded, tmp_path: Path) -> None:
    name, image = seeded["name"], seeded["image"]
    key, secret = make_user(registry, unique("reader"), allow(*PULL_ACTIONS), tmp=tmp_path)
    creds = f"{key}:{secret}"

    # Pull with the access key, and with an authorization token of the user's own.
    pull(registry, f"{name}:1", tmp_path / "with-key", creds=creds)
    assert pulled_manifest(tmp_path / "with-key") == (image.manifest_digest, image.manifest)
    ecr = client(registry, key, secret)
    token = token_of(ecr)
    pull(registry, f"{name}:1", tmp_path / "with-token", creds=f"AWS:{token}")
    for digest, data in image.blobs.items():
        assert pulled_blob(tmp_path / "with-token", digest) == data

    # skopeo push is refused, and /v2/ says DENIED with 403 (not 401: the caller is known).
    other = build_image(tmp_path / "other", [700])
    for push_creds in (creds, f"AWS:{token}"):
        failed = push(registry, other, f"{name}:2", creds=push_creds, check=False)
        assert failed.returncode != 0
        assert "denied" in failed.stderr.lower(), failed.stderr
    session = requests.Session()
    session.auth = (key, secret)
    response = session.post(f"{registry.url}/v2/{name}/blobs/uploads/")
    assert response.status_code == 403 and v2_error(response) == "DENIED"
    response = session.put(
        f"{registry.url}/v2/{name}/manifests/2",
        data=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 403 and v2_error(response) == "DENIED"
    assert session.get(f"{registry.url}/v2/{name}/manifests/1").status_code == 200

    # Through the API: what the policy grants works, everything else is AccessDeniedException.
    detail = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert [d["imageDigest"] for d in detail] == [image.manifest_digest]
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "1"}])["images"]
    assert got[0]["imageManifest"].encode() == image.manifest
    with raises("AccessDeniedException") as info:
        ecr.put_image(repositoryName=name, imageManifest=image.manifest.decode(), imageTag="x")
    message = info.value.response["Error"]["Message"]
    assert "ecr:PutImage" in message and repo_arn(name) in message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with raises("AccessDeniedException"):
        ecr.list_images(repositoryName=name)
    with raises("AccessDeniedException"):
        ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "1"}])
    with raises("AccessDeniedException"):
        ecr.initiate_layer_upload(repositoryName=name)
    with raises("AccessDeniedException"):
        ecr.create_repository(repositoryName=unique("perm/reader-new"))
    with raises("AccessDeniedException"):
        ecr.describe_repositories()


def test_push_only_user(registry, seeded, tmp_path: Path) -> None:
    name = unique("perm/push")
    client(registry).create_repository(repositoryName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": list(PUSH_ACTIONS), "Resource": repo_arn(name)},
        ],
    }
    key, secret = make_user(registry, unique("pusher"), policy, tmp=tmp_path)
    creds = f"{key}:{secret}"
    image = build_image(tmp_path / "img", [1200])
    push(registry, image, f"{name}:v1", creds=creds)
    token = token_of(client(registry, key, secret))
    push(registry, image, f"{name}:v2", creds=f"AWS:{token}")

    # The pushed image is there (as the administrator sees it) ...
    tags = client(registry).describe_images(repositoryName=name)["imageDetails"][0]["imageTags"]
    assert sorted(tags) == ["v1", "v2"]
    # ... but the pusher cannot pull it, or push anywhere else.
    failed = pull(registry, f"{name}:v1", tmp_path / "back", creds=creds, check=False)
    assert failed.returncode != 0
    response = requests.get(f"{registry.url}/v2/{name}/manifests/v1", auth=(key, secret))
    assert response.status_code == 403 and v2_error(response) == "DENIED"
    failed = push(registry, image, f"{seeded['name']}:from-pusher", creds=creds, check=False)
    assert failed.returncode != 0
    ecr = client(registry, key, secret)
    with raises("AccessDeniedException"):
        ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    with raises("AccessDeniedException"):
        ecr.initiate_layer_upload(repositoryName=seeded["name"])
    # The layer API works on the granted repository.
    upload = ecr.initiate_layer_upload(repositoryName=name)
    assert upload["uploadId"]


def test_explicit_deny_beats_allow(registry, seeded, tmp_path: Path) -> None:
    name = unique("perm/deny")
    push(registry, seeded["image"], f"{name}:1")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": ["ecr:BatchDeleteImage", "ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
        ],
    }
    user = unique("denied")
    key, secret = make_user(registry, user, policy, tmp=tmp_path)
    ecr = client(registry, key, secret)
    assert ecr.list_images(repositoryName=name)["imageIds"]
    with raises("AccessDeniedException"):
        ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "1"}])
    with raises("AccessDeniedException"):
        ecr.get_authorization_token()
    response = requests.delete(
        f"{registry.url}/v2/{name}/manifests/{seeded['image'].manifest_digest}", auth=(key, secret)
    )
    assert response.status_code == 403 and v2_error(response) == "DENIED"

    # A Deny in the repository policy beats the identity Allow too, on both doors ...
    admin = client(registry)
    admin.set_repository_policy(
        repositoryName=name,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
                        "Action": "ecr:BatchGetImage",
                    },
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "ecr:DeleteRepository",
                    },
                ],
            }
        ),
    )
    with raises("AccessDeniedException"):
        ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "1"}])
    response = requests.get(f"{registry.url}/v2/{name}/manifests/1", auth=(key, secret))
    assert response.status_code == 403
    assert ecr.describe_images(repositoryName=name)["imageDetails"]
    # ... and binds the account's administrator as well.
    with raises("AccessDeniedException"):
        admin.delete_repository(repositoryName=name, force=True)
    admin.delete_repository_policy(repositoryName=name)
    admin.delete_repository(repositoryName=name, force=True)


@pytest.fixture(scope="module")
def bob(registry) -> tuple[str, str]:
    """An administrator of a second account, 111111111111."""
    return make_user(registry, unique("bob"), account=OTHER_ACCOUNT, is_admin=True)


def ecr_host(registry, account: str = ACCOUNT) -> str:
    return f"{account}.dkr.ecr.us-east-1.localhost:{registry.port}"


def test_cross_account_pull_needs_a_repository_policy(registry, seeded, bob, tmp_path) -> None:
    name, image = seeded["name"], seeded["image"]
    shared = unique("perm/shared")
    push(registry, image, f"{shared}:1")
    key, secret = bob
    ecr = client(registry, key, secret)
    host = {"Host": ecr_host(registry)}
    manifest_url = f"{registry.url}/v2/{shared}/manifests/1"
    blob_digest = sha256(image.layers[0])

    # Without a policy: denied on both doors.
    with raises("AccessDeniedException"):
        ecr.batch_get_image(registryId=ACCOUNT, repositoryName=shared, imageIds=[{"imageTag": "1"}])
    response = requests.get(manifest_url, headers=host, auth=(key, secret))
    assert response.status_code == 403 and v2_error(response) == "DENIED"
    # Without the ECR host, /v2/ means bob's own account, where the repository does not exist.
    response = requests.get(manifest_url, auth=(key, secret))
    assert response.status_code == 404 and v2_error(response) == "NAME_UNKNOWN"

    client(registry).set_repository_policy(
        repositoryName=shared,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AllowPullFromOtherAccount",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                        "Action": [
                            "ecr:BatchGetImage",
                            "ecr:GetDownloadUrlForLayer",
                            "ecr:BatchCheckLayerAvailability",
                        ],
                    }
                ],
            }
        ),
    )
    got = ecr.batch_get_image(
        registryId=ACCOUNT, repositoryName=shared, imageIds=[{"imageTag": "1"}]
    )
    assert got["failures"] == []
    assert got["images"][0]["registryId"] == ACCOUNT
    assert got["images"][0]["imageManifest"].encode() == image.manifest
    url = ecr.get_download_url_for_layer(
        registryId=ACCOUNT, repositoryName=shared, layerDigest=blob_digest
    )["downloadUrl"]
    assert requests.get(url, timeout=30).content == image.layers[0]

    # /v2/ with the ECR-style host, by access key and by bob's authorization token.
    token = token_of(ecr)
    for auth in ((key, secret), ("AWS", token)):
        response = requests.get(
            manifest_url, headers={**host, "Accept": OCI_MANIFEST}, auth=auth, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.content == image.manifest
        response = requests.get(
            f"{registry.url}/v2/{shared}/blobs/{blob_digest}",
            headers=host,
            auth=auth,
            allow_redirects=False,
        )
        # On object storage a 307 to a presigned URL, fetched without the registry's Host.
        response = follow_blob_redirect(response)
        assert response.status_code == 200 and response.content == image.layers[0]
    if _resolves(ecr_host(registry).split(":")[0]):
        pull_ecr_host(registry, shared, tmp_path / "via-host", f"{key}:{secret}")
        assert pulled_manifest(tmp_path / "via-host")[1] == image.manifest

    # The policy grants pulls only.
    with raises("AccessDeniedException"):
        ecr.put_image(
            registryId=ACCOUNT,
            repositoryName=shared,
            imageManifest=image.manifest.decode(),
            imageTag="bob",
        )
    response = requests.put(
        f"{registry.url}/v2/{shared}/manifests/bob",
        data=image.manifest,
        headers={**host, "Content-Type": OCI_MANIFEST},
        auth=(key, secret),
    )
    assert response.status_code == 403
    with raises("AccessDeniedException"):
        ecr.batch_get_image(registryId=ACCOUNT, repositoryName=name, imageIds=[{"imageTag": "1"}])

    # Removing the policy removes the access.
    client(registry).delete_repository_policy(repositoryName=shared)
    with raises("AccessDeniedException"):
        ecr.batch_get_image(registryId=ACCOUNT, repositoryName=shared, imageIds=[{"imageTag": "1"}])
    assert requests.get(manifest_url, headers=host, auth=(key, secret)).status_code == 403


def _resolves(hostname: str) -> bool:
    try:
        socket.getaddrinfo(hostname, None)
    except OSError:
        return False
    return True


def pull_ecr_host(registry, name: str, dest: Path, creds: str) -> None:
    from e2e.ecrhelp import skopeo

    skopeo(
        "copy", "--src-creds", creds, "--src-tls-verify=false",
        f"docker://{ecr_host(registry)}/{name}:1", f"dir:{dest}",
    )  # fmt: skip


def test_accounts_are_isolated(registry, seeded, bob) -> None:
    key, secret = bob
    ecr = client(registry, key, secret)
    admin = client(registry)
    # Bob creates a repository with the same name as one in account 0: a different repository.
    mine = ecr.create_repository(repositoryName=seeded["name"])["repository"]
    assert mine["registryId"] == OTHER_ACCOUNT
    assert mine["repositoryArn"] == repo_arn(seeded["name"], OTHER_ACCOUNT)
    # No host_suffix: the URI is the address bob used, which names bob's own registry.
    assert mine["repositoryUri"] == f"{registry.host}/{seeded['name']}"
    listed = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert seeded["name"] in listed
    assert all(
        r["registryId"] == OTHER_ACCOUNT for r in ecr.describe_repositories()["repositories"]
    )
    assert ecr.list_images(repositoryName=seeded["name"])["imageIds"] == []
    # Account 0's repositories are not visible to bob, nor bob's to account 0.
    admin_names = {
        r["repositoryName"]
        for page in admin.get_paginator("describe_repositories").paginate()
        for r in page["repositories"]
    }
    assert not (set(listed) - {seeded["name"]}) & admin_names
    only_mine = unique("perm/bobs")
    ecr.create_repository(repositoryName=only_mine)
    with raises("RepositoryNotFoundException"):
        admin.describe_repositories(repositoryNames=[only_mine])
    with raises("AccessDeniedException"):
        ecr.describe_repositories(registryId=ACCOUNT)
    with raises("AccessDeniedException"):
        ecr.create_repository(registryId=ACCOUNT, repositoryName=unique("perm/intrusion"))
    catalog = requests.get(f"{registry.url}/v2/_catalog", auth=(key, secret)).json()
    assert seeded["name"] in catalog["repositories"] and only_mine in catalog["repositories"]
    assert set(catalog["repositories"]) <= set(listed) | {only_mine}
    # Bob's authorization token names his own registry.
    data = ecr.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == registry.url  # bob's own registry, at the address he used


def test_source_ip_condition(registry, seeded, tmp_path: Path) -> None:
    allowed_repo, denied_repo = unique("perm/ip-ok"), unique("perm/ip-no")
    for name in (allowed_repo, denied_repo):
        push(registry, seeded["image"], f"{name}:1")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecr:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
            },
            {
                "Effect": "Deny",
                "Action": "ecr:*",
                "Resource": repo_arn(denied_repo),
                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
        ],
    }
    key, secret = make_user(registry, unique("iprestricted"), policy, tmp=tmp_path)
    ecr = client(registry, key, secret)
    assert ecr.list_images(repositoryName=allowed_repo)["imageIds"]
    with raises("AccessDeniedException"):
        ecr.list_images(repositoryName=denied_repo)
    with raises("AccessDeniedException"):
        ecr.describe_repositories(repositoryNames=[denied_repo])
    ok = requests.get(f"{registry.url}/v2/{allowed_repo}/manifests/1", auth=(key, secret))
    assert ok.status_code == 200
    no = requests.get(f"{registry.url}/v2/{denied_repo}/manifests/1", auth=(key, secret))
    assert no.status_code == 403 and v2_error(no) == "DENIED"


def _signer(registry) -> TokenSigner:
    async def load() -> TokenSigner:
        db = Database(registry.settings.database_url)
        try:
            return await load_signer(db)
        finally:
            await db.dispose()

    return asyncio.run(load())


def test_expired_and_tampered_tokens(registry, seeded) -> None:
    name, image = seeded["name"], seeded["image"]
    key, _ = registry.credentials
    admin = Principal(ACCOUNT, "admin", key, True)
    signer = _signer(registry)
    manifest_url = f"{registry.url}/v2/{name}/manifests/1"
    blob_url = f"{registry.url}/v2/{name}/blobs/{sha256(image.config)}?registryId={ACCOUNT}&token="
    scope = blob_scope(ACCOUNT, name, sha256(image.config))

    live = signer.issue(TokenClaims.for_principal(admin))
    assert requests.get(manifest_url, auth=("AWS", live)).status_code == 200
    download = signer.issue(replace(TokenClaims.for_principal(admin), scope=scope))
    assert requests.get(blob_url + download).content == image.config
    # A login token does not work as a download token, nor the reverse.
    assert requests.get(blob_url + live).status_code == 401
    assert requests.get(manifest_url, auth=("AWS", download)).status_code == 401

    past = time.time() - 13 * 3600
    expired = signer.issue(TokenClaims.for_principal(admin, now=past))
    response = requests.get(manifest_url, auth=("AWS", expired))
    assert response.status_code == 401 and v2_error(response) == "UNAUTHORIZED"
    expired_download = signer.issue(
        replace(TokenClaims.for_principal(admin, now=past), scope=scope)
    )
    assert requests.get(blob_url + expired_download).status_code == 401

    head, _, mac = live.rpartition(".")
    tampered_mac = f"{head}.{('A' if mac[0] != 'A' else 'B')}{mac[1:]}"
    # Same MAC, different claims (a non-admin made admin, say): the MAC no longer matches.
    version, key_id, payload, _ = live.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 3600
    forged_claims = f"{version}.{key_id}.{_b64(claims)}.{mac}"
    # Signed with a key the server does not hold, under the server's key id.
    foreign = TokenSigner({key_id: secrets.token_bytes(32)}, key_id).issue(
        TokenClaims.for_principal(admin)
    )
    for bad in (tampered_mac, forged_claims, foreign):
        response = requests.get(manifest_url, auth=("AWS", bad))
        assert response.status_code == 401, bad
    # A download token whose scope was edited to another blob no longer verifies.
    version, key_id, payload, mac = download.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["s"] = blob_scope(ACCOUNT, name, sha256(image.layers[0]))
    rescoped = f"{version}.{key_id}.{_b64(claims)}.{mac}"
    layer_url = f"{registry.url}/v2/{name}/blobs/{sha256(image.layers[0])}"
    assert requests.get(f"{layer_url}?registryId={ACCOUNT}&token={rescoped}").status_code == 401


def _b64(claims: dict) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        .rstrip(b"=")
        .decode()
    )
