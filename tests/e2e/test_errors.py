"""Every way a `/v2/` request can be wrong, against a real server: each answer is checked for
its status and its OCI error body `{"errors": [{"code", "message"}]}`."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
import requests

from e2e import ecrhelp
from e2e.ocihttp import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    assert_error,
    descriptor,
    sha256,
    unique_repo,
)
from server import Server

MD5 = "md5:" + "0" * 32
GOOD_DIGEST = sha256(b"never pushed")


@pytest.fixture
def client(registry) -> Client:
    return Client(registry)


@pytest.fixture(scope="module")
def existing(registry) -> tuple[str, str]:
    """A repository holding one image tagged `latest`; returns (name, manifest digest)."""
    repo = unique_repo("errors")
    image = Client(registry).push_image(repo, "latest")
    return repo, image.digest


# -- authentication ---------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "wrong-secret",
        "unknown-key",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer some-token",
        "Basic",
    ],
)
@pytest.mark.parametrize("path", ["/v2/", "/v2/_catalog", "/v2/some/repo/manifests/latest"])
def test_bad_credentials_are_challenged(registry, authorization, path) -> None:
    key, secret = registry.credentials
    if authorization == "wrong-secret":
        authorization = _basic(key, secret + "x")
    elif authorization == "unknown-key":
        authorization = _basic("AKIAUNKNOWNUNKNOWN12", secret)
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(registry.url + path, headers=headers, timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cargobay"'
    head = requests.head(registry.url + path, headers=headers, timeout=30)
    assert head.status_code == 401
    assert head.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_unauthenticated_push_is_refused(registry) -> None:
    repo = unique_repo("errors")
    data = b"anonymous"
    response = requests.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, data=data
    )
    assert_error(response, 401, "UNAUTHORIZED")
    # Nothing was created.
    assert_error(Client(registry).get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


# -- names and tags ---------------------------------------------------------------------------

INVALID_NAMES = [
    "Upper/case",
    "a..b",
    "-leading",
    "trailing-",
    "a___b",
    "a/.b",
    "under_/x",
    "x" * 256,
    "a/" + "b" * 254,
    "sp%20ace",
    "new%0Aline",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_repository_names(client: Client, name: str) -> None:
    for method, path in [
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("PUT", f"/v2/{name}/manifests/latest"),
        ("GET", f"/v2/{name}/blobs/{GOOD_DIGEST}"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/referrers/{GOOD_DIGEST}"),
    ]:
        response = client.request(method, path, data=b"{}" if method == "PUT" else None)
        assert_error(response, 400, "NAME_INVALID")
    monolithic = client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": sha256(b"x")}, data=b"x"
    )
    assert_error(monolithic, 400, "NAME_INVALID")


def test_invalid_name_is_not_created(client: Client) -> None:
    name = f"Bad-{uuid.uuid4().hex[:6]}"
    assert_error(client.post(f"/v2/{name}/blobs/uploads/"), 400, "NAME_INVALID")
    assert name not in client.get("/v2/_catalog").json()["repositories"]


@pytest.mark.parametrize(
    "tag", [".dot", "-dash", "t" * 129, "bad!tag", "sp%20ace", "new%0Aline", "caf%C3%A9"]
)
def test_invalid_tags(client: Client, existing: tuple[str, str], tag: str) -> None:
    repo, digest = existing
    manifest = client.get(f"/v2/{repo}/manifests/{digest}").content
    assert_error(client.put_manifest(repo, tag, manifest, OCI_MANIFEST), 400, "TAG_INVALID")
    # A reference that is no valid tag names nothing: 404 on a read, as Distribution and Zot.
    assert_error(client.get(f"/v2/{repo}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/{tag}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/manifests/{tag}"), 400, "TAG_INVALID")


def test_longest_valid_tag(client: Client, existing: tuple[str, str]) -> None:
    repo, digest = existing
    manifest = client.get(f"/v2/{repo}/manifests/{digest}").content
    tag = "_" + "T" * 127
    assert client.put_manifest(repo, tag, manifest, OCI_MANIFEST).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/{tag}").content == manifest


# -- digests ----------------------------------------------------------------------------------

MALFORMED_DIGESTS = [
    "sha256:1234",
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "sha256:" + "0" * 65,
    "sha512:" + "0" * 64,
    "sha256:",
    ":" + "0" * 64,
    "SHA256:" + "0" * 64,
    "sha256:" + "0" * 63 + "%0A",
]


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
def test_malformed_digests(client: Client, existing: tuple[str, str], digest: str) -> None:
    repo, _ = existing
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 400
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/{digest}").status_code == 404
    assert_error(client.get(f"/v2/{repo}/referrers/{digest}"), 400, "DIGEST_INVALID")
    monolithic = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=b"x")
    assert_error(monolithic, 400, "DIGEST_INVALID")
    location = client.start_upload(repo)
    assert_error(client.put(location, params={"digest": digest}, data=b"x"), 400, "DIGEST_INVALID")


def test_blob_reference_must_be_a_digest(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    # Without a ':' a manifest reference is a tag; a blob reference is always a digest.
    for reference in ("sha256", "latest"):
        assert_error(client.get(f"/v2/{repo}/blobs/{reference}"), 400, "DIGEST_INVALID")


def test_unknown_digest_algorithm_is_unsupported(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    for method, path in [
        ("GET", f"/v2/{repo}/blobs/{MD5}"),
        ("DELETE", f"/v2/{repo}/blobs/{MD5}"),
        ("GET", f"/v2/{repo}/referrers/{MD5}"),
    ]:
        assert_error(client.request(method, path), 400, "UNSUPPORTED")
    # Reading a manifest by a digest no algorithm here produces finds nothing.
    assert_error(client.get(f"/v2/{repo}/manifests/{MD5}"), 404, "MANIFEST_UNKNOWN")
    monolithic = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": MD5}, data=b"x")
    assert_error(monolithic, 400, "UNSUPPORTED")
    location = client.start_upload(repo)
    assert_error(client.put(location, params={"digest": MD5}, data=b"x"), 400, "UNSUPPORTED")
    manifest = client.get(f"/v2/{repo}/manifests/latest").content
    assert_error(client.put_manifest(repo, MD5, manifest, OCI_MANIFEST), 400, "UNSUPPORTED")


def test_content_not_matching_its_digest(client: Client) -> None:
    repo = unique_repo("errors")
    data = os.urandom(1000)
    wrong = sha256(data + b"!")
    monolithic = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, data=data)
    assert_error(monolithic, 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/blobs/{wrong}"), 404, "BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/blobs/{sha256(data)}"), 404, "BLOB_UNKNOWN")

    location = client.start_upload(repo)
    client.patch(location, data=data)
    assert_error(client.put(location, params={"digest": wrong}), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/blobs/{wrong}"), 404, "BLOB_UNKNOWN")

    location = client.start_upload(repo)
    assert_error(client.put(location, data=data), 400, "DIGEST_INVALID")  # no ?digest=


# -- unknown things ---------------------------------------------------------------------------


def test_unknown_repository(client: Client) -> None:
    repo = unique_repo("nosuch")
    upload = f"/v2/{repo}/blobs/uploads/{uuid.uuid4().hex}"
    for method, path in [
        ("GET", f"/v2/{repo}/tags/list"),
        ("GET", f"/v2/{repo}/manifests/latest"),
        ("GET", f"/v2/{repo}/manifests/{GOOD_DIGEST}"),
        ("DELETE", f"/v2/{repo}/manifests/latest"),
        ("DELETE", f"/v2/{repo}/manifests/{GOOD_DIGEST}"),
        ("GET", f"/v2/{repo}/blobs/{GOOD_DIGEST}"),
        ("DELETE", f"/v2/{repo}/blobs/{GOOD_DIGEST}"),
        ("GET", upload),
        ("PATCH", upload),
        ("PUT", upload + f"?digest={GOOD_DIGEST}"),
        ("DELETE", upload),
    ]:
        assert_error(client.request(method, path), 404, "NAME_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/latest").status_code == 404
    assert client.head(f"/v2/{repo}/blobs/{GOOD_DIGEST}").status_code == 404


def test_unknown_manifest_and_blob(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    for reference in ("no-such-tag", GOOD_DIGEST):
        assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404
        assert_error(client.delete(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/blobs/{GOOD_DIGEST}"), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/blobs/{GOOD_DIGEST}"), 404, "BLOB_UNKNOWN")
    head = client.head(f"/v2/{repo}/blobs/{GOOD_DIGEST}")
    assert head.status_code == 404
    assert head.content == b""


@pytest.mark.parametrize(
    "upload_id", [uuid.uuid4().hex, "not-an-upload", "0" * 32, uuid.uuid4().hex.upper()]
)
def test_unknown_upload(client: Client, existing: tuple[str, str], upload_id: str) -> None:
    repo, _ = existing
    path = f"/v2/{repo}/blobs/uploads/{upload_id}"
    assert_error(client.get(path), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(path, data=b"abc"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        client.patch(path, data=b"abc", headers={"Content-Range": "0-2"}),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    assert_error(
        client.put(path, params={"digest": sha256(b"abc")}, data=b"abc"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    assert_error(client.delete(path), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_belongs_to_its_repository(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    location = client.start_upload(repo)
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    other = unique_repo("errors")
    client.push_blob(other, b"other")
    foreign = f"/v2/{other}/blobs/uploads/{upload_id}"
    assert_error(client.get(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(foreign, data=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.get(location).status_code == 204


# -- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_range", ["bytes", "abc", "5-2", "-1-3", "1-"])
def test_malformed_content_range(
    client: Client, existing: tuple[str, str], content_range: str
) -> None:
    repo, _ = existing
    location = client.start_upload(repo)
    response = client.patch(location, data=b"abcd", headers={"Content-Range": content_range})
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-0"
    assert response.headers["Location"] == location


def test_content_range_not_matching_body(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    location = client.start_upload(repo)
    response = client.patch(location, data=b"abcd", headers={"Content-Range": "0-9"})
    assert_error(response, 400, "SIZE_INVALID")
    # The upload did not move; the client can send the chunk again.
    assert client.get(location).headers["Range"] == "0-0"
    ok = client.patch(location, data=b"abcd", headers={"Content-Range": "0-3"})
    assert ok.status_code == 202
    done = client.put(location, params={"digest": sha256(b"abcd")})
    assert done.status_code == 201


# -- manifests --------------------------------------------------------------------------------


def _manifest(repo: str, client: Client, **changes: object) -> bytes:
    config = b'{"errors": "config"}'
    client.push_blob(repo, config)
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [],
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_invalid_manifests(client: Client, existing: tuple[str, str]) -> None:
    repo, _ = existing
    cases: list[tuple[bytes, str | None]] = [
        (b"not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (b"", OCI_MANIFEST),
        (_manifest(repo, client, schemaVersion=1), OCI_MANIFEST),
        (_manifest(repo, client, schemaVersion=None), OCI_MANIFEST),
        (_manifest(repo, client), OCI_INDEX),  # Content-Type disagrees with mediaType
        (_manifest(repo, client), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (_manifest(repo, client, mediaType="application/x-unknown"), None),
        (_manifest(repo, client, config=None), OCI_MANIFEST),
        (_manifest(repo, client, config={"mediaType": OCI_CONFIG, "size": 2}), OCI_MANIFEST),
        (_manifest(repo, client, layers=[{"digest": GOOD_DIGEST, "size": -1}]), OCI_MANIFEST),
        (_manifest(repo, client, layers={"not": "a list"}), OCI_MANIFEST),
        (_manifest(repo, client, annotations={"n": 1}), OCI_MANIFEST),
        (_manifest(repo, client, artifactType=7), OCI_MANIFEST),
        (_manifest(repo, client, subject={"digest": "sha256:bad"}), OCI_MANIFEST),
        (
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "layers": []}).encode(),
            OCI_INDEX,
        ),
    ]
    for raw, media_type in cases:
        response = client.put_manifest(repo, "invalid", raw, media_type)
        assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/invalid"), 404, "MANIFEST_UNKNOWN")


# -- pagination and methods -------------------------------------------------------------------


@pytest.mark.parametrize("n", ["abc", "-1", "1.5", "1e3", " 2"])
def test_invalid_pagination(client: Client, existing: tuple[str, str], n: str) -> None:
    repo, _ = existing
    assert_error(
        client.get(f"/v2/{repo}/tags/list", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID"
    )
    assert_error(client.get("/v2/_catalog", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


def test_unsupported_methods(client: Client, existing: tuple[str, str]) -> None:
    repo, digest = existing
    for method, path in [
        ("POST", f"/v2/{repo}/manifests/latest"),
        ("PATCH", f"/v2/{repo}/manifests/latest"),
        ("PUT", f"/v2/{repo}/blobs/{digest}"),
        ("DELETE", f"/v2/{repo}/tags/list"),
        ("PUT", f"/v2/{repo}/blobs/uploads/"),
        ("DELETE", f"/v2/{repo}/referrers/{digest}"),
    ]:
        assert_error(client.request(method, path), 405, "UNSUPPORTED")


# -- the manifest size limit ------------------------------------------------------------------


def test_max_manifest_bytes_is_the_limit_on_both_doors(tmp_path) -> None:
    """The `max_manifest_bytes` setting is the limit, checked once by the manifest service:
    lowered, it refuses a larger manifest through `/v2/` (413 SIZE_INVALID) and PutImage
    (InvalidParameterException) alike, and stores nothing."""
    server = Server(tmp_path / "data", workers=1, env={"CARGOBAY_MAX_MANIFEST_BYTES": "2048"})
    server.start(timeout=90)
    try:
        client, repo = Client(server), unique_repo("limit")
        body = json.loads(client.push_image(repo, "small").manifest)
        body["annotations"] = {"pad": "p" * 2500}
        too_big = json.dumps(body).encode()
        assert_error(client.put_manifest(repo, "big", too_big, OCI_MANIFEST), 413, "SIZE_INVALID")
        ecr = ecrhelp.client(server)
        with ecrhelp.raises("InvalidParameterException"):
            ecr.put_image(repositoryName=repo, imageManifest=too_big.decode(), imageTag="big")
        assert [i.get("imageTag") for i in ecr.list_images(repositoryName=repo)["imageIds"]] == [
            "small"
        ]
    finally:
        server.discard()
