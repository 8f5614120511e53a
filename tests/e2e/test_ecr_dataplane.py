"""ECR semantics on the `/v2/` door: immutable tags, ECR-style hosts, the referrers tag-schema
fallback, and repository settings made through the API taking effect on pushes."""

from __future__ import annotations

import json

import pytest
import requests

from e2e.ecrhelp import client, push, unique
from e2e.ocihttp import OCI_INDEX, OCI_MANIFEST, Client, assert_error, sha256
from imagebuilder import build_image
from server import Server


def test_immutable_tags_hold_on_the_data_plane(registry, tmp_path) -> None:
    ecr = client(registry)
    name = unique("dp/immutable")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    first = build_image(tmp_path / "one", [1000])
    second = build_image(tmp_path / "two", [2000])
    push(registry, first, f"{name}:release")

    # skopeo cannot move the tag ...
    result = push(registry, second, f"{name}:release", check=False)
    assert result.returncode != 0 and "TAG_INVALID" in result.stderr.upper().replace(" ", "_")
    # ... and neither can a raw manifest PUT, which gets the spec's error body.
    http = Client(registry)
    for digest, data in second.blobs.items():
        assert http.push_blob(name, data) == digest
    response = http.put_manifest(name, "release", second.manifest, OCI_MANIFEST)
    assert_error(response, 400, "TAG_INVALID")
    assert "immutable" in response.json()["errors"][0]["message"]
    # The tag still names the first image; pushing that same image again is fine.
    assert http.get(f"/v2/{name}/manifests/release").content == first.manifest
    assert http.put_manifest(name, "release", first.manifest, OCI_MANIFEST).status_code == 201
    # A new tag, and the second image by digest, are allowed.
    assert http.put_manifest(name, "next", second.manifest, OCI_MANIFEST).status_code == 201

    # Turning immutability off through the API lets the data plane move the tag.
    ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="MUTABLE")
    assert http.put_manifest(name, "release", second.manifest, OCI_MANIFEST).status_code == 201
    assert http.get(f"/v2/{name}/manifests/release").content == second.manifest


def test_ecr_style_host_names_the_registry(registry) -> None:
    ecr = client(registry)
    name = unique("dp/host")
    repo = ecr.create_repository(repositoryName=name)["repository"]
    assert repo["repositoryUri"] == f"127.0.0.1:{registry.port}/{name}"
    uri_host = f"000000000000.dkr.ecr.us-east-1.localhost:{registry.port}"
    http = Client(registry)
    http.push_image(name, "v1")
    # The same repository through the repositoryUri host (resolved here by the Host header).
    response = requests.get(
        f"{registry.url}/v2/{name}/tags/list",
        headers={"Host": uri_host},
        auth=registry.credentials,
    )
    assert response.json() == {"name": name, "tags": ["v1"]}
    # Another account's registry host: the administrator of account 0 has no rights there.
    other = requests.get(
        f"{registry.url}/v2/{name}/tags/list",
        headers={"Host": uri_host.replace("000000000000", "111111111111")},
        auth=registry.credentials,
    )
    assert_error(other, 403, "DENIED")


def test_referrers_tag_schema_fallback_is_an_ordinary_tag(registry) -> None:
    """Clients that do not trust the referrers API keep an index under the tag
    `sha256-<hex of the subject>`; the registry stores and serves it like any tag."""
    http = Client(registry)
    name = unique("dp/fallback")
    subject = http.push_image(name, "app")
    artifact, _ = http.push_artifact(name, subject, "application/vnd.example.sig")
    fallback_tag = subject.digest.replace(":", "-")
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [artifact.descriptor()]}
    ).encode()
    assert http.put_manifest(name, fallback_tag, index, OCI_INDEX).status_code == 201
    got = http.get(f"/v2/{name}/manifests/{fallback_tag}")
    assert got.content == index and got.headers["Docker-Content-Digest"] == sha256(index)
    assert fallback_tag in http.get(f"/v2/{name}/tags/list").json()["tags"]
    # And the referrers API answers for the same subject.
    referrers = http.get(f"/v2/{name}/referrers/{subject.digest}").json()
    assert [m["digest"] for m in referrers["manifests"]] == [artifact.digest]


def test_download_token_cannot_be_moved_to_another_registry(registry) -> None:
    ecr = client(registry)
    name = unique("dp/scope")
    ecr.create_repository(repositoryName=name)
    image = Client(registry).push_image(name, "v1", layer_sizes=[3000])
    digest = next(iter(image.blobs))
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=digest)["downloadUrl"]
    if "token=" not in url:
        pytest.skip("object storage: the URL is the bucket's presigned GET, no registry token")
    assert requests.get(url).content == image.blobs[digest]
    # The same URL sent to another account's registry host is refused, not re-scoped.
    path = url[url.index("/v2/") :]
    moved = requests.get(
        f"{registry.url}{path}",
        headers={"Host": "111111111111.dkr.ecr.us-east-1.localhost"},
    )
    assert_error(moved, 401, "UNAUTHORIZED")


def test_host_suffix_gives_ecr_style_uris_that_the_data_plane_accepts(tmp_path) -> None:
    """With `host_suffix`, URIs and proxy endpoints take the ECR host form (wildcard DNS points
    it at the registry); the Host header of that form selects the registry."""
    server = Server(
        tmp_path / "data", workers=1, env={"CARGOBAY_HOST_SUFFIX": "registry.example.test"}
    ).start()
    try:
        ecr = client(server)
        name = unique("dp/suffix")
        uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
        host = "000000000000.dkr.ecr.us-east-1.registry.example.test"
        assert uri == f"{host}/{name}"
        endpoint = ecr.get_authorization_token()["authorizationData"][0]["proxyEndpoint"]
        assert endpoint == f"http://{host}"
        Client(server).push_image(name, "v1")
        response = requests.get(
            f"{server.url}/v2/{name}/tags/list",
            headers={"Host": host},
            auth=server.credentials,
            timeout=30,
        )
        assert response.json() == {"name": name, "tags": ["v1"]}
    finally:
        server.discard()
