"""OCI Distribution v1.1 over raw HTTP against a real `cargobay serve`: pull, push, manifests,
referrers, discovery and content management, checked status line, headers and bytes."""

from __future__ import annotations

import itertools
import json
import os
import uuid

import pytest
import requests

from e2e.ocihttp import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    assert_error,
    descriptor,
    sha256,
    sha512,
    stream,
    unique_repo,
)


@pytest.fixture
def client(registry) -> Client:
    return Client(registry)


@pytest.fixture
def repo() -> str:
    return unique_repo()


# -- pull -------------------------------------------------------------------------------------


def test_base_endpoint_get_and_head(client: Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {}
    head = client.head("/v2/")
    assert head.status_code == 200
    assert head.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert head.content == b""
    assert client.get("/v2").status_code == 200


def test_manifest_by_tag_and_digest(client: Client, repo: str) -> None:
    image = client.push_image(repo, "v1", layer_sizes=[100, 2000])
    for reference in ("v1", image.digest):
        response = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200
        assert response.content == image.manifest
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.headers["Docker-Content-Digest"] == image.digest
        assert int(response.headers["Content-Length"]) == len(image.manifest)

        head = client.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Docker-Content-Digest"] == image.digest
        assert head.headers["Content-Type"] == OCI_MANIFEST
        assert int(head.headers["Content-Length"]) == len(image.manifest)


@pytest.mark.parametrize(
    ("accept", "admitted"),
    [
        (None, True),
        (OCI_MANIFEST, True),
        (f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5", True),
        (f"{OCI_INDEX}, {OCI_MANIFEST}", True),
        ("*/*", True),
        ("application/json", True),
        (DOCKER_MANIFEST, False),
        (f"{DOCKER_MANIFEST}, {DOCKER_LIST}", False),
        (OCI_INDEX, False),
    ],
)
def test_accept_negotiation(client: Client, repo: str, accept: str | None, admitted: bool) -> None:
    image = client.push_image(repo, "neg")
    headers = {"Accept": accept} if accept else {}
    # requests adds "Accept: */*" by default; send exactly what the parameter says.
    session = requests.Session()
    session.auth = client.session.auth
    session.headers.pop("Accept", None)
    raw = Client(client.server, session)
    for reference in ("neg", image.digest):
        response = raw.get(f"/v2/{repo}/manifests/{reference}", headers=headers)
        head = raw.head(f"/v2/{repo}/manifests/{reference}", headers=headers)
        if admitted:
            assert response.status_code == 200, response.text
            assert response.content == image.manifest
            assert head.status_code == 200
        else:
            assert_error(response, 404, "MANIFEST_UNKNOWN")
            assert head.status_code == 404


def test_blob_get_head_and_ranges(client: Client, repo: str) -> None:
    data = os.urandom(10_000)
    digest = client.push_blob(repo, data)

    # The registry answers with the bytes, or (object storage) with a 307 to a presigned URL
    # that serves them and any Range; its own answer carries the digest either way.
    answer, response = client.get_blob(repo, digest)
    assert response.status_code == 200
    assert response.content == data
    assert answer.headers["Docker-Content-Digest"] == digest

    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Docker-Content-Digest"] == digest

    answer, partial = client.get_blob(repo, digest, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206
    assert partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert answer.headers["Docker-Content-Digest"] == digest

    _, tail = client.get_blob(repo, digest, headers={"Range": "bytes=9000-"})
    assert tail.status_code == 206
    assert tail.content == data[9000:]
    assert tail.headers["Content-Range"] == f"bytes 9000-9999/{len(data)}"

    _, suffix = client.get_blob(repo, digest, headers={"Range": "bytes=-10"})
    assert suffix.status_code == 206
    assert suffix.content == data[-10:]

    # An unsatisfiable range is refused by the registry itself, redirect or not.
    beyond = client.get(
        f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10000-10010"}, allow_redirects=False
    )
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"


def test_empty_blob(client: Client, repo: str) -> None:
    digest = client.push_blob(repo, b"")
    assert digest == sha256(b"")
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"
    # And through a session closed by a body-less PUT.
    location = client.start_upload(repo)
    done = client.put(location, params={"digest": digest})
    assert done.status_code == 201, done.text


# -- push -------------------------------------------------------------------------------------


def test_monolithic_post(client: Client, repo: str) -> None:
    data = os.urandom(50_000)
    digest = sha256(data)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    location = response.headers["Location"]
    assert location.endswith(f"/v2/{repo}/blobs/{digest}")
    assert client.get(location).content == data


def test_post_then_put_with_body(client: Client, repo: str) -> None:
    data = os.urandom(70_000)
    digest = sha256(data)
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    assert f"/v2/{repo}/blobs/uploads/" in location
    assert start.headers["Range"] == "0-0"
    done = client.put(
        location,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert client.get(done.headers["Location"]).content == data


def test_chunked_upload_with_content_range(client: Client, repo: str) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    location = client.start_upload(repo)
    cuts = [0, 100_000, 100_001, 250_000, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = client.patch(
            location,
            data=data[start:end],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{end - 1}"
        location = response.headers["Location"]

        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{end - 1}"
        assert status.headers["Location"] == location
    done = client.put(location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert client.pull_blob(repo, digest) == data


def test_out_of_order_chunk_is_416_and_upload_resumes(client: Client, repo: str) -> None:
    data = os.urandom(40_000)
    location = client.start_upload(repo)
    first = client.patch(location, data=data[:10_000], headers={"Content-Range": "0-9999"})
    assert first.status_code == 202
    location = first.headers["Location"]

    for bad in ("20000-29999", "5000-14999", "0-9999"):
        response = client.patch(location, data=data[20_000:30_000], headers={"Content-Range": bad})
        assert_error(response, 416, "BLOB_UPLOAD_INVALID")
        assert response.headers["Range"] == "0-9999"
        assert response.headers["Location"] == location

    # The rejected chunks changed nothing: the client resumes from the reported offset.
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9999"
    rest = client.patch(location, data=data[10_000:], headers={"Content-Range": "10000-39999"})
    assert rest.status_code == 202
    done = client.put(rest.headers["Location"], params={"digest": sha256(data)})
    assert done.status_code == 201, done.text
    assert client.pull_blob(repo, sha256(data)) == data


def test_streamed_patch_without_content_range(client: Client, repo: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    location = client.start_upload(repo)
    # Two streamed (chunked transfer-encoding) PATCHes, then a PUT with the last piece.
    first = client.patch(location, data=stream(data[:1_000_000]))
    assert first.status_code == 202, first.text
    assert first.headers["Range"] == "0-999999"
    second = client.patch(first.headers["Location"], data=stream(data[1_000_000:3_000_000]))
    assert second.status_code == 202
    assert second.headers["Range"] == "0-2999999"
    done = client.put(
        second.headers["Location"],
        params={"digest": sha256(data)},
        data=stream(data[3_000_000:]),
    )
    assert done.status_code == 201, done.text
    assert client.pull_blob(repo, sha256(data)) == data


def test_upload_status_and_cancel(client: Client, repo: str) -> None:
    location = client.start_upload(repo)
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
    assert status.headers["Location"] == location
    assert status.headers["Docker-Upload-UUID"] in location

    client.patch(location, data=b"x" * 1234)
    assert client.get(location).headers["Range"] == "0-1233"

    cancel = client.delete(location)
    assert cancel.status_code == 204
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(location, data=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        client.put(location, params={"digest": sha256(b"x" * 1234)}), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_cross_repository_mount(client: Client) -> None:
    source, target = unique_repo("mount"), unique_repo("mount")
    data = os.urandom(5000)
    digest = client.push_blob(source, data)
    assert_error(client.get(f"/v2/{target}/blobs/{digest}"), 404, "NAME_UNKNOWN")

    response = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source})
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"].endswith(f"/v2/{target}/blobs/{digest}")
    assert client.pull_blob(target, digest) == data
    # The mounted blob is usable in a manifest of the target repository.
    config = b'{"mounted": true}'
    client.push_blob(target, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, data)],
        }
    ).encode()
    client.push_manifest(target, "mounted", manifest, OCI_MANIFEST)


@pytest.mark.parametrize("source_kind", ["blob-absent", "repo-absent", "no-from"])
def test_mount_falls_back_to_upload(client: Client, source_kind: str) -> None:
    source, target = unique_repo("mount"), unique_repo("mount")
    data = os.urandom(3000)
    digest = sha256(data)
    if source_kind == "blob-absent":
        client.push_blob(source, b"something else " + os.urandom(8))
    params = {"mount": digest}
    if source_kind != "no-from":
        params["from"] = source
    response = client.post(f"/v2/{target}/blobs/uploads/", params=params)
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert f"/v2/{target}/blobs/uploads/" in location
    done = client.put(location, params={"digest": digest}, data=data)
    assert done.status_code == 201, done.text
    assert client.pull_blob(target, digest) == data
    assert_error(
        client.get(f"/v2/{source}/blobs/{digest}"),
        404,
        "NAME_UNKNOWN" if source_kind != "blob-absent" else "BLOB_UNKNOWN",
    )


def test_sha512_blobs(client: Client, repo: str) -> None:
    data = os.urandom(20_000)
    digest = sha512(data)
    assert client.push_blob(repo, data, digest) == digest
    assert client.pull_blob(repo, digest) == data
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest

    other = os.urandom(30_000)
    location = client.start_upload(repo)
    part = client.patch(location, data=other[:12_345], headers={"Content-Range": "0-12344"})
    assert part.status_code == 202
    done = client.put(
        part.headers["Location"], params={"digest": sha512(other)}, data=other[12_345:]
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == sha512(other)
    assert client.pull_blob(repo, sha512(other)) == other

    wrong = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": sha512(b"not it")}, data=b"it"
    )
    assert_error(wrong, 400, "DIGEST_INVALID")


def test_pushing_an_existing_blob_succeeds(client: Client, repo: str) -> None:
    data = os.urandom(8000)
    digest = client.push_blob(repo, data)
    assert client.push_blob(repo, data) == digest
    location = client.start_upload(repo)
    again = client.put(location, params={"digest": digest}, data=data)
    assert again.status_code == 201
    # The same bytes in a second repository: one blob, visible in both.
    other = unique_repo()
    assert client.push_blob(other, data) == digest
    assert client.pull_blob(repo, digest) == data
    assert client.pull_blob(other, digest) == data


def test_blob_is_scoped_to_its_repository(client: Client) -> None:
    first, second = unique_repo(), unique_repo()
    data = os.urandom(1000)
    digest = client.push_blob(first, data)
    client.push_blob(second, b"unrelated " + os.urandom(4))
    assert_error(client.get(f"/v2/{second}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{second}/blobs/{digest}").status_code == 404
    config = b'{"a": 1}'
    client.push_blob(second, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, data)],
        }
    ).encode()
    response = client.put_manifest(second, "x", manifest, OCI_MANIFEST)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


# -- manifests --------------------------------------------------------------------------------


def test_docker_schema2_manifest_and_list(client: Client, repo: str) -> None:
    amd = client.push_image(repo, None, media_type=DOCKER_MANIFEST)
    arm = client.push_image(repo, None, media_type=DOCKER_MANIFEST)
    listing = client.push_index(repo, "multi", [amd, arm], media_type=DOCKER_LIST)

    response = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": DOCKER_LIST})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_LIST
    assert response.content == listing.manifest
    assert response.headers["Docker-Content-Digest"] == listing.digest

    child = client.get(f"/v2/{repo}/manifests/{amd.digest}", headers={"Accept": DOCKER_MANIFEST})
    assert child.status_code == 200
    assert child.headers["Content-Type"] == DOCKER_MANIFEST
    assert child.content == amd.manifest
    for digest, data in amd.blobs.items():
        assert client.pull_blob(repo, digest) == data

    only_oci = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX})
    assert_error(only_oci, 404, "MANIFEST_UNKNOWN")


def test_oci_manifest_and_index(client: Client, repo: str) -> None:
    children = [client.push_image(repo, None) for _ in range(3)]
    index = client.push_index(repo, "1.0", children)
    response = client.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": OCI_INDEX})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.content == index.manifest
    body = response.json()
    assert [m["digest"] for m in body["manifests"]] == [c.digest for c in children]
    for child in children:
        got = client.get(f"/v2/{repo}/manifests/{child.digest}", headers={"Accept": OCI_MANIFEST})
        assert got.content == child.manifest


def test_an_index_child_is_not_deleted_under_its_index(client: Client, repo: str) -> None:
    """The same parent-index rule as BatchDeleteImage: 409 MANIFEST_REFERENCED (GitLab's
    registry's answer), the index still whole; once the index is gone, the child can go."""
    child = client.push_image(repo, None)
    index = client.push_index(repo, "multi", [child])
    refused = client.delete(f"/v2/{repo}/manifests/{child.digest}")
    assert_error(refused, 409, "MANIFEST_REFERENCED")
    assert client.get(f"/v2/{repo}/manifests/{child.digest}").status_code == 200
    index_digest = index.digest
    assert client.delete(f"/v2/{repo}/manifests/{index_digest}").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{child.digest}").status_code == 202
    assert_error(client.get(f"/v2/{repo}/manifests/{child.digest}"), 404, "MANIFEST_UNKNOWN")


def test_manifest_media_type_from_body_or_header(client: Client, repo: str) -> None:
    image = client.push_image(repo, None)
    # No Content-Type: the manifest's own mediaType decides.
    body = json.loads(image.manifest)
    body["annotations"] = {"variant": "no-content-type"}
    raw = json.dumps(body).encode()
    response = client.put(f"/v2/{repo}/manifests/nohdr", data=raw)
    assert response.status_code == 201, response.text
    got = client.get(f"/v2/{repo}/manifests/nohdr")
    assert got.headers["Content-Type"] == OCI_MANIFEST
    # No mediaType field: the Content-Type header decides.
    del body["mediaType"]
    raw = json.dumps(body).encode()
    assert client.put_manifest(repo, "nofield", raw, OCI_MANIFEST).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/nofield").headers["Content-Type"] == OCI_MANIFEST


def test_artifact_with_artifact_type_and_subject(client: Client, repo: str) -> None:
    image = client.push_image(repo, "app")
    sbom, response = client.push_artifact(
        repo, image, "application/spdx+json", annotations={"org.example": "sbom"}
    )
    assert response.headers["OCI-Subject"] == image.digest
    got = client.get(f"/v2/{repo}/manifests/{sbom.digest}", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200
    assert got.content == sbom.manifest
    assert got.json()["artifactType"] == "application/spdx+json"
    assert got.json()["config"]["mediaType"] == OCI_EMPTY
    assert client.pull_blob(repo, sha256(EMPTY_JSON)) == EMPTY_JSON


def test_subject_may_be_pushed_before_its_target(client: Client, repo: str) -> None:
    absent = {"mediaType": OCI_MANIFEST, "digest": sha256(os.urandom(16)), "size": 123}
    signature, response = client.push_artifact(repo, absent, "application/vnd.example.sig")
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == absent["digest"]
    listed = client.get(f"/v2/{repo}/referrers/{absent['digest']}")
    assert [m["digest"] for m in listed.json()["manifests"]] == [signature.digest]


def test_arbitrary_config_media_type(client: Client, repo: str) -> None:
    helm = client.push_image(
        repo,
        "0.1.0",
        config_media_type="application/vnd.cncf.helm.config.v1+json",
        layer_media_type="application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    )
    got = client.get(f"/v2/{repo}/manifests/0.1.0", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200
    assert got.content == helm.manifest
    # With no artifactType, the referrers API reports the config media type.
    client.push_artifact(
        repo, helm, None, config_media_type="application/vnd.example.custom.config+json"
    )
    listed = client.get(f"/v2/{repo}/referrers/{helm.digest}").json()["manifests"]
    assert listed[0]["artifactType"] == "application/vnd.example.custom.config+json"


def test_manifest_with_missing_blobs_is_rejected(client: Client, repo: str) -> None:
    config, layer = b'{"c": 1}', os.urandom(100)
    client.push_blob(repo, config)

    def manifest(layers: list[bytes], cfg: bytes) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, cfg),
                "layers": [descriptor(OCI_LAYER, x) for x in layers],
            }
        ).encode()

    missing_layer = client.put_manifest(repo, "a", manifest([layer], config), OCI_MANIFEST)
    body = assert_error(missing_layer, 400, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(layer) in json.dumps(body)
    missing_config = client.put_manifest(repo, "b", manifest([], b'{"other": 2}'), OCI_MANIFEST)
    assert_error(missing_config, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")
    # Once the layer is there the same bytes are accepted.
    client.push_blob(repo, layer)
    assert (
        client.put_manifest(repo, "a", manifest([layer], config), OCI_MANIFEST).status_code == 201
    )


def test_index_with_missing_child_is_rejected(client: Client, repo: str) -> None:
    present = client.push_image(repo, None)
    absent = {"mediaType": OCI_MANIFEST, "digest": sha256(os.urandom(8)), "size": 500}
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [present.descriptor(), absent]}
    ).encode()
    response = client.put_manifest(repo, "idx", index, OCI_INDEX)
    body = assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert absent["digest"] in json.dumps(body)
    assert_error(client.get(f"/v2/{repo}/manifests/idx"), 404, "MANIFEST_UNKNOWN")


def test_manifest_bytes_are_stored_exactly(client: Client, repo: str) -> None:
    config, layer = b'{"architecture":"arm64","os":"linux"}', os.urandom(64)
    client.push_blob(repo, config)
    client.push_blob(repo, layer)
    # Odd key order, indentation, a tab, unicode escapes and a trailing newline.
    layer_d, config_d = sha256(layer), sha256(config)
    raw = (
        f'{{\n\t"layers" : [ {{"size": {len(layer)}, "digest": "{layer_d}",\n'
        f' "mediaType": "{OCI_LAYER}"}} ],\n'
        f'   "config":{{"size":{len(config)},"mediaType":"{OCI_CONFIG}","digest":"{config_d}"}},'
        '"annotations": {"note": "caf\\u00e9 \u2603"},\n'
        f'"mediaType":"{OCI_MANIFEST}",   "schemaVersion" :2 }}\n\n'
    ).encode()
    response = client.put_manifest(repo, "odd", raw, OCI_MANIFEST)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == sha256(raw)
    assert response.headers["Location"].endswith(f"/v2/{repo}/manifests/{sha256(raw)}")
    for reference in ("odd", sha256(raw)):
        got = client.get(f"/v2/{repo}/manifests/{reference}")
        assert got.content == raw
        assert got.headers["Docker-Content-Digest"] == sha256(raw)


def test_put_manifest_by_digest(client: Client, repo: str) -> None:
    image = client.push_image(repo, None)
    body = json.loads(image.manifest)
    body["annotations"] = {"by": "digest"}
    raw = json.dumps(body, indent=1).encode()

    response = client.put_manifest(repo, sha256(raw), raw, OCI_MANIFEST)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(raw)

    # sha512 is a registered algorithm: the manifest is addressed by its sha512 digest.
    response = client.put_manifest(repo, sha512(raw), raw, OCI_MANIFEST)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == sha512(raw)
    got = client.get(f"/v2/{repo}/manifests/{sha512(raw)}")
    assert got.status_code == 200
    assert got.content == raw
    assert got.headers["Docker-Content-Digest"] == sha512(raw)

    mismatch = client.put_manifest(repo, sha256(raw + b" "), raw, OCI_MANIFEST)
    assert_error(mismatch, 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/{sha256(raw + b' ')}"), 404, "MANIFEST_UNKNOWN")


def _padded_manifest(client: Client, repo: str, size: int) -> bytes:
    config = b'{"padded": true}'
    client.push_blob(repo, config)
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [],
        "annotations": {"pad": ""},
    }
    base = len(json.dumps(body).encode())
    body["annotations"]["pad"] = "p" * (size - base)
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_manifest_size_limit(client: Client, repo: str) -> None:
    limit = 4 * 1024 * 1024
    at_limit = _padded_manifest(client, repo, limit)
    response = client.put_manifest(repo, "big", at_limit, OCI_MANIFEST)
    assert response.status_code == 201, response.text[:300]
    assert client.get(f"/v2/{repo}/manifests/big").content == at_limit

    too_big = _padded_manifest(client, repo, limit + 1)
    assert_error(client.put_manifest(repo, "toobig", too_big, OCI_MANIFEST), 413, "SIZE_INVALID")
    # Without a Content-Length (chunked), the limit still holds.
    chunked = client.put(
        f"/v2/{repo}/manifests/toobig",
        data=stream(too_big),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_error(chunked, 413, "SIZE_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/toobig"), 404, "MANIFEST_UNKNOWN")


def test_referrers(client: Client, repo: str) -> None:
    image = client.push_image(repo, "app")
    sbom_type, sig_type = "application/spdx+json", "application/vnd.example.signature"
    sbom, _ = client.push_artifact(repo, image, sbom_type, annotations={"kind": "sbom"})
    sig, _ = client.push_artifact(repo, image, sig_type)
    sig2, _ = client.push_artifact(repo, image, sig_type, annotations={"n": "2"})
    # An index may have a subject too.
    index_body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [],
            "subject": image.descriptor(),
        }
    ).encode()
    response = client.put_manifest(repo, sha256(index_body), index_body, OCI_INDEX)
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == image.digest
    index = sha256(index_body)
    # Unrelated: an artifact about another image.
    other = client.push_image(repo, "other")
    client.push_artifact(repo, other, sbom_type)

    response = client.get(f"/v2/{repo}/referrers/{image.digest}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response.headers
    listing = response.json()
    assert listing["schemaVersion"] == 2
    assert listing["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in listing["manifests"]}
    assert set(by_digest) == {sbom.digest, sig.digest, sig2.digest, index}
    assert by_digest[sbom.digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom.digest,
        "size": len(sbom.manifest),
        "artifactType": sbom_type,
        "annotations": {"kind": "sbom"},
    }
    assert by_digest[index]["mediaType"] == OCI_INDEX
    assert by_digest[index]["artifactType"] == "application/vnd.example.bundle"
    assert by_digest[index]["size"] == len(index_body)

    filtered = client.get(f"/v2/{repo}/referrers/{image.digest}", params={"artifactType": sig_type})
    assert filtered.status_code == 200
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert {m["digest"] for m in filtered.json()["manifests"]} == {sig.digest, sig2.digest}
    assert all(m["artifactType"] == sig_type for m in filtered.json()["manifests"])

    nothing = client.get(
        f"/v2/{repo}/referrers/{image.digest}", params={"artifactType": "application/none"}
    )
    assert nothing.status_code == 200
    assert nothing.headers["OCI-Filters-Applied"] == "artifactType"
    assert nothing.json()["manifests"] == []

    # Deleting a referrer removes it from the listing.
    assert client.delete(f"/v2/{repo}/manifests/{sig2.digest}").status_code == 202
    again = client.get(f"/v2/{repo}/referrers/{image.digest}").json()["manifests"]
    assert {m["digest"] for m in again} == {sbom.digest, sig.digest, index}


def test_referrers_of_unknown_digest_is_empty(client: Client, repo: str) -> None:
    client.push_image(repo, "x")
    for digest in (sha256(os.urandom(8)), sha512(os.urandom(8))):
        response = client.get(f"/v2/{repo}/referrers/{digest}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == OCI_INDEX
        assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert_error(client.get(f"/v2/{repo}/referrers/sha256:1234"), 400, "DIGEST_INVALID")


# -- discovery --------------------------------------------------------------------------------


def _walk(client: Client, path: str, key: str, n: int) -> tuple[list[str], int]:
    """Follow `Link: <...>; rel="next"` from the first page of n; all items and page count."""
    items: list[str] = []
    url: str | None = f"{path}?n={n}"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()[key]
        assert len(page) <= n
        items.extend(page)
        pages += 1
        link = response.headers.get("Link")
        if link:
            target, _, rel = link.partition(";")
            assert rel.strip() == 'rel="next"', link
            assert target.startswith("<") and target.endswith(">"), link
            url = target[1:-1]
            assert page, "a next link after an empty page"
        else:
            url = None
        assert pages < 1000
    return items, pages


def test_tags_list_and_pagination(client: Client, repo: str) -> None:
    image = client.push_image(repo, None)
    tags = ["latest", "v1.0", "v1.1", "V2", "a", "B", "_x", "1", "z-last", "0.9__rc"]
    for tag in tags:
        client.push_manifest(repo, tag, image.manifest, OCI_MANIFEST)
    expected = sorted(tags)

    full = client.get(f"/v2/{repo}/tags/list")
    assert full.status_code == 200
    assert full.json() == {"name": repo, "tags": expected}
    assert "Link" not in full.headers

    first = client.get(f"/v2/{repo}/tags/list", params={"n": 3})
    assert first.json()["tags"] == expected[:3]
    assert first.headers["Link"].endswith('; rel="next"')

    after = client.get(f"/v2/{repo}/tags/list", params={"n": 4, "last": expected[2]})
    assert after.json()["tags"] == expected[3:7]

    rest = client.get(f"/v2/{repo}/tags/list", params={"last": expected[2]})
    assert rest.json()["tags"] == expected[3:]

    for n in (1, 3, 4, len(expected) - 1):
        items, pages = _walk(client, f"/v2/{repo}/tags/list", "tags", n)
        assert items == expected
        assert pages == -(-len(expected) // n)
    items, pages = _walk(client, f"/v2/{repo}/tags/list", "tags", len(expected))
    assert (items, pages) == (expected, 1)

    beyond = client.get(f"/v2/{repo}/tags/list", params={"n": 5, "last": expected[-1]})
    assert beyond.json()["tags"] == []
    assert "Link" not in beyond.headers


def test_catalog_and_pagination(client: Client) -> None:
    prefix = f"cat-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/b", f"{prefix}/a", f"{prefix}/c-c", f"{prefix}/a/nested", f"{prefix}.x"]
    for name in names:
        client.push_blob(name, b"catalog " + name.encode())

    full = client.get("/v2/_catalog")
    assert full.status_code == 200
    everything = full.json()["repositories"]
    assert everything == sorted(everything)
    assert set(names) <= set(everything)

    ordered = sorted(names)
    after = client.get("/v2/_catalog", params={"n": 2, "last": ordered[0]})
    assert after.json()["repositories"] == ordered[1:3]
    assert 'rel="next"' in after.headers["Link"]

    items, _ = _walk(client, "/v2/_catalog", "repositories", 3)
    assert items == everything


# -- content management -----------------------------------------------------------------------


def test_delete_manifest_by_digest_removes_its_tags(client: Client, repo: str) -> None:
    image = client.push_image(repo, "one")
    client.push_manifest(repo, "two", image.manifest, OCI_MANIFEST)
    keep = client.push_image(repo, "keep")

    response = client.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert response.status_code == 202
    for reference in ("one", "two", image.digest):
        assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keep"]
    assert client.get(f"/v2/{repo}/manifests/keep").content == keep.manifest
    assert_error(client.delete(f"/v2/{repo}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    # The layers stay until garbage collection; pushing the manifest again works.
    client.push_manifest(repo, "again", image.manifest, OCI_MANIFEST)


def test_delete_by_tag_only_untags(client: Client, repo: str) -> None:
    image = client.push_image(repo, "gone")
    client.push_manifest(repo, "stays", image.manifest, OCI_MANIFEST)
    response = client.delete(f"/v2/{repo}/manifests/gone")
    assert response.status_code == 202
    assert_error(client.get(f"/v2/{repo}/manifests/gone"), 404, "MANIFEST_UNKNOWN")
    assert client.get(f"/v2/{repo}/manifests/{image.digest}").content == image.manifest
    assert client.get(f"/v2/{repo}/manifests/stays").content == image.manifest
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["stays"]
    assert_error(client.delete(f"/v2/{repo}/manifests/gone"), 404, "MANIFEST_UNKNOWN")


def test_delete_blob(client: Client, repo: str) -> None:
    data = os.urandom(2048)
    digest = client.push_blob(repo, data)
    response = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # Pushing it again brings it back.
    client.push_blob(repo, data)
    assert client.pull_blob(repo, digest) == data


def test_retagging_moves_the_tag(client: Client, repo: str) -> None:
    first = client.push_image(repo, "moving")
    second = client.push_image(repo, "moving")
    got = client.get(f"/v2/{repo}/manifests/moving")
    assert got.headers["Docker-Content-Digest"] == second.digest
    assert client.get(f"/v2/{repo}/manifests/{first.digest}").content == first.manifest
