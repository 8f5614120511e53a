"""The unmodified AWS CLI (v1) against cargobay's ECR API: the user journeys (login, push,
inspect, pull, clean up) and a representative set of calls and errors. Every `aws ecr <op>`
output is checked against the botocore model by `ecrhelp.aws`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import requests

from e2e.ecrhelp import (
    ACCOUNT,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    aws,
    cli_error,
    pull,
    pulled_blob,
    pulled_manifest,
    push,
    require_tool,
    skopeo,
    unique,
)
from imagebuilder import Image, sha256


def login(registry, authfile: Path, creds: tuple[str, str] | None = None) -> str:
    """`aws ecr get-login-password | skopeo login --username AWS --password-stdin ...`, a real
    pipe; the password printed."""
    key, secret = creds or registry.credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    script = (
        f"set -o pipefail; {require_tool('aws')} ecr get-login-password "
        f"--endpoint-url {registry.url} | tee {authfile}.password | "
        f"{require_tool('skopeo')} login --username AWS --password-stdin --tls-verify=false "
        f"--authfile {authfile} {registry.host}"
    )
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Login Succeeded" in proc.stdout
    return Path(f"{authfile}.password").read_text().strip()


def test_login_push_describe_pull_delete_journey(registry, image: Image, tmp_path: Path) -> None:
    name = unique("cli/journey")
    repo = aws(
        registry,
        "ecr", "create-repository", "--repository-name", name,
        "--image-tag-mutability", "MUTABLE",
        "--image-scanning-configuration", "scanOnPush=true",
        "--encryption-configuration", "encryptionType=AES256",
        "--tags", "Key=team,Value=platform",
    ).json["repository"]  # fmt: skip
    assert repo["repositoryName"] == name
    assert repo["registryId"] == ACCOUNT
    assert repo["repositoryUri"] == f"127.0.0.1:{registry.port}/{name}"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}

    # Log in with the token the CLI prints, then push and pull with only that login.
    authfile = tmp_path / "auth.json"
    password = login(registry, authfile)
    assert ":" not in password
    auths = json.loads(authfile.read_text())["auths"]
    assert base64.b64decode(auths[registry.host]["auth"]).decode() == f"AWS:{password}"
    skopeo(
        "copy", "--authfile", str(authfile), "--dest-tls-verify=false",
        f"oci:{image.layout}:latest", f"docker://{registry.host}/{name}:1.0",
    )  # fmt: skip
    back = tmp_path / "back"
    skopeo(
        "copy", "--authfile", str(authfile), "--src-tls-verify=false",
        f"docker://{registry.host}/{name}:1.0", f"dir:{back}",
    )  # fmt: skip
    assert pulled_manifest(back) == (image.manifest_digest, image.manifest)
    for digest, data in image.blobs.items():
        assert pulled_blob(back, digest) == data
    # Without the login the same pull is refused.
    refused = skopeo(
        "copy", "--authfile", str(tmp_path / "none.json"), "--src-tls-verify=false",
        f"docker://{registry.host}/{name}:1.0", f"dir:{tmp_path / 'anon'}", check=False,
    )  # fmt: skip
    assert refused.returncode != 0

    details = aws(
        registry, "ecr", "describe-images", "--repository-name", name
    ).json["imageDetails"]  # fmt: skip
    # Scan on push may already have attached the image's SBOM as a referrer (an artifact that
    # names the image as its subject, listed as ECR lists referrers): leave it aside.
    sboms = {d["imageDigest"] for d in details if d.get("subjectManifestDigest")}
    assert all(d["artifactMediaType"] == "application/vnd.cyclonedx+json" for d in details
               if d["imageDigest"] in sboms)  # fmt: skip
    details = [d for d in details if d["imageDigest"] not in sboms]
    assert len(details) == 1
    assert details[0]["imageDigest"] == image.manifest_digest
    assert details[0]["imageTags"] == ["1.0"]
    assert details[0]["imageSizeInBytes"] == sum(len(b) for b in image.blobs.values())
    assert details[0]["imageManifestMediaType"] == OCI_MANIFEST
    ids = aws(registry, "ecr", "list-images", "--repository-name", name).json["imageIds"]
    # The SBOM may have been attached since describe-images: untagged, and naming the image.
    assert [i for i in ids if "imageTag" in i] == [
        {"imageDigest": image.manifest_digest, "imageTag": "1.0"}
    ]
    for untagged in (i["imageDigest"] for i in ids if "imageTag" not in i):
        (detail,) = aws(
            registry, "ecr", "describe-images", "--repository-name", name,
            "--image-ids", f"imageDigest={untagged}",
        ).json["imageDetails"]  # fmt: skip
        assert detail["subjectManifestDigest"] == image.manifest_digest
    got = aws(
        registry, "ecr", "batch-get-image", "--repository-name", name,
        "--image-ids", "imageTag=1.0", "imageTag=missing",
    ).json  # fmt: skip
    assert got["images"][0]["imageManifest"].encode() == image.manifest
    assert got["failures"] == [
        {
            "imageId": {"imageTag": "missing"},
            "failureCode": "ImageNotFound",
            "failureReason": got["failures"][0]["failureReason"],
        }
    ]

    # Not empty: refused without --force.
    proc = aws(registry, "ecr", "delete-repository", "--repository-name", name, check=False)
    assert cli_error(proc) == "RepositoryNotEmptyException"
    deleted = aws(
        registry, "ecr", "batch-delete-image", "--repository-name", name,
        "--image-ids", "imageTag=1.0",
    ).json  # fmt: skip
    assert deleted == {
        "imageIds": [{"imageDigest": image.manifest_digest, "imageTag": "1.0"}],
        "failures": [],
    }
    aws(registry, "ecr", "delete-repository", "--repository-name", name, "--force")
    proc = aws(registry, "ecr", "describe-repositories", "--repository-names", name, check=False)
    assert cli_error(proc) == "RepositoryNotFoundException"


def test_get_authorization_token_and_legacy_get_login(registry) -> None:
    data = aws(registry, "ecr", "get-authorization-token").json["authorizationData"]
    assert len(data) == 1
    user, _, token = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and token and ":" not in token
    assert data[0]["proxyEndpoint"] == registry.url
    # `aws ecr get-login` (CLI v1) prints a docker login line built from the same data.
    line = aws(
        registry, "ecr", "get-login", "--no-include-email", output_json=False
    ).stdout.split()  # fmt: skip
    assert line[:4] == ["docker", "login", "-u", "AWS"]
    assert line[4] == "-p" and ":" not in line[5]
    assert line[6] == data[0]["proxyEndpoint"]


def test_put_image_and_layers_through_the_cli(registry, image: Image, tmp_path: Path) -> None:
    """Blobs pushed with skopeo, a Docker manifest put with `aws ecr put-image`, the layer
    calls, then a skopeo pull of the put image: byte-identical."""
    name = unique("cli/put")
    push(registry, image, f"{name}:seed")
    config, layers = image.config, image.layers
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": len(x), "digest": sha256(x)} for x in layers
            ],
        }
    ).encode()
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_bytes(manifest)
    put = aws(
        registry, "ecr", "put-image", "--repository-name", name, "--image-tag", "cli",
        "--image-manifest", f"file://{manifest_file}",
        "--image-manifest-media-type", DOCKER_MANIFEST,
    ).json["image"]  # fmt: skip
    assert put["imageId"] == {"imageDigest": sha256(manifest), "imageTag": "cli"}
    pull(registry, f"{name}:cli", tmp_path / "back")
    assert pulled_manifest(tmp_path / "back") == (sha256(manifest), manifest)

    proc = aws(
        registry, "ecr", "put-image", "--repository-name", name, "--image-tag", "cli",
        "--image-manifest", f"file://{manifest_file}", check=False,
    )  # fmt: skip
    assert cli_error(proc) == "ImageAlreadyExistsException"

    layer = sha256(layers[0])
    checked = aws(
        registry, "ecr", "batch-check-layer-availability", "--repository-name", name,
        "--layer-digests", layer,
    ).json  # fmt: skip
    assert checked["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert checked["layers"][0]["layerSize"] == len(layers[0])
    url = aws(
        registry, "ecr", "get-download-url-for-layer", "--repository-name", name,
        "--layer-digest", layer,
    ).json["downloadUrl"]  # fmt: skip
    assert requests.get(url, timeout=30).content == layers[0]


def test_policies_tags_and_settings(registry, tmp_path: Path) -> None:
    name = unique("cli/policy")
    arn = aws(registry, "ecr", "create-repository", "--repository-name", name).json["repository"][
        "repositoryArn"
    ]
    proc = aws(registry, "ecr", "get-repository-policy", "--repository-name", name, check=False)
    assert cli_error(proc) == "RepositoryPolicyNotFoundException"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "pull",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                "Action": "ecr:BatchGetImage",
            }
        ],
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    out = aws(
        registry, "ecr", "set-repository-policy", "--repository-name", name,
        "--policy-text", f"file://{path}",
    ).json  # fmt: skip
    assert json.loads(out["policyText"]) == policy
    got = aws(registry, "ecr", "get-repository-policy", "--repository-name", name).json
    assert json.loads(got["policyText"]) == policy
    aws(registry, "ecr", "delete-repository-policy", "--repository-name", name)
    path.write_text(json.dumps({"Statement": [{"Effect": "Allow"}]}))
    proc = aws(
        registry, "ecr", "set-repository-policy", "--repository-name", name,
        "--policy-text", f"file://{path}", check=False,
    )  # fmt: skip
    assert cli_error(proc) == "InvalidParameterException"
    # ECR's message; the reason is logged, not returned.
    assert "'Invalid repository policy provided'" in proc.stderr

    aws(registry, "ecr", "tag-resource", "--resource-arn", arn, "--tags", "Key=a,Value=1")
    tags = aws(registry, "ecr", "list-tags-for-resource", "--resource-arn", arn).json["tags"]
    assert tags == [{"Key": "a", "Value": "1"}]
    aws(registry, "ecr", "untag-resource", "--resource-arn", arn, "--tag-keys", "a")

    proc = aws(registry, "ecr", "create-repository", "--repository-name", name, check=False)
    assert cli_error(proc) == "RepositoryAlreadyExistsException"


def test_registry_level_calls(fresh_registry, tmp_path: Path) -> None:
    """Registry policy, DescribeRegistry and the scanning configuration, on a registry of the
    test's own (a registry policy applies to every repository)."""
    registry = fresh_registry
    proc = aws(registry, "ecr", "get-registry-policy", check=False)
    assert cli_error(proc) == "RegistryPolicyNotFoundException"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": ["ecr:ReplicateImage", "ecr:CreateRepository"],
                "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
            }
        ],
    }
    path = tmp_path / "registry-policy.json"
    path.write_text(json.dumps(policy))
    out = aws(registry, "ecr", "put-registry-policy", "--policy-text", f"file://{path}").json
    assert out["registryId"] == ACCOUNT
    assert json.loads(aws(registry, "ecr", "get-registry-policy").json["policyText"]) == policy
    aws(registry, "ecr", "delete-registry-policy")

    described = aws(registry, "ecr", "describe-registry").json
    assert described["registryId"] == ACCOUNT
    assert described["replicationConfiguration"] == {"rules": []}
    scanning = aws(registry, "ecr", "get-registry-scanning-configuration").json
    assert scanning["registryId"] == ACCOUNT


def test_cli_signature_errors(registry) -> None:
    key, secret = registry.credentials
    proc = aws(
        registry, "ecr", "describe-repositories", creds=("AKIANOSUCHKEY0000000", secret),
        check=False,
    )  # fmt: skip
    assert cli_error(proc) == "UnrecognizedClientException"
    proc = aws(registry, "ecr", "describe-repositories", creds=(key, secret + "x"), check=False)
    assert cli_error(proc) == "InvalidSignatureException"
