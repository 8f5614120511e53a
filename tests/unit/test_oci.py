"""The pure OCI domain: digests, repository names, tags, manifest parsing, Accept negotiation."""

from __future__ import annotations

import hashlib
import json

import pytest

from cargobay import errors
from cargobay.distribution.errors import oci_error
from cargobay.oci.digest import Digest, check_digest, compute, is_digest, parse_digest
from cargobay.oci.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    accepts,
    parse_manifest,
)
from cargobay.oci.names import validate_name, validate_tag

H64 = "a" * 64
H128 = "b" * 128
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def desc(media_type: str = LAYER, digest: str = "sha256:" + H64, size: int = 10, **extra):
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def image(**changes) -> dict:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(CONFIG, "sha256:" + "c" * 64, 2),
        "layers": [desc(), desc(digest="sha256:" + "d" * 64, size=20)],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


# -- digests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "algorithm", "hexpart"),
    [("sha256:" + H64, "sha256", H64), ("sha512:" + H128, "sha512", H128)],
)
def test_parse_valid_digests(value: str, algorithm: str, hexpart: str) -> None:
    digest = parse_digest(value)
    assert digest == Digest(algorithm, hexpart)
    assert check_digest(value) is None  # the same checks pass
    assert str(digest) == value
    assert digest.hasher().name == algorithm


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        ":" + H64,
        "sha256:" + H64[:-1],
        "sha256:" + H64 + "a",
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + H64 + "\n",
        "sha256:" + H64[:-1] + "\n",
        "\nsha256:" + H64,
        " sha256:" + H64,
        "SHA256:" + H64,
        "sha512:" + H64,
        "sha256::" + H64,
        "sha256:" + H64 + "/x",
    ],
)
@pytest.mark.parametrize("check", [parse_digest, check_digest])
def test_malformed_digests_are_invalid(value: str, check) -> None:
    with pytest.raises(errors.DigestInvalid) as caught:
        check(value)
    assert oci_error(caught.value) == ("DIGEST_INVALID", 400)


@pytest.mark.parametrize(
    "value", ["md5:" + "0" * 32, "sha384:" + "0" * 96, "blake3:" + H64, "sha256+b64:" + H64]
)
@pytest.mark.parametrize("check", [parse_digest, check_digest])
def test_unknown_algorithms_are_unsupported(value: str, check) -> None:
    with pytest.raises(errors.Unsupported) as caught:
        check(value)
    # The distribution-spec: an unsupported algorithm is a 400 Bad Request.
    assert oci_error(caught.value) == ("UNSUPPORTED", 400)


def test_compute_and_is_digest() -> None:
    assert compute(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert compute(b"abc", "sha512") == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    assert parse_digest(compute(b"x"))
    assert is_digest("sha256:" + H64)
    assert is_digest("md5:x")
    assert not is_digest("latest")
    assert not is_digest("sha256")


# -- names and tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "library/ubuntu",
        "a/b/c/d/e",
        "my-app",
        "my--app",
        "my_app",
        "my__app",
        "my.app",
        "team.a/app-1_x__y.z",
        "x" * 255,
        "a/" + "b" * 253,
    ],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Library/ubuntu",
        "a/",
        "/a",
        "a//b",
        "a..b",
        "a.-b",
        "a___b",
        "-a",
        "a-",
        "_a",
        "a_",
        ".a",
        "a b",
        "a:b",
        "a@b",
        "a\n",
        "a\nb",
        "\na",
        "a/b\n",
        "x" * 256,
        "é",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(errors.NameInvalid) as caught:
        validate_name(name)
    assert oci_error(caught.value) == ("NAME_INVALID", 400)


@pytest.mark.parametrize(
    "tag", ["latest", "v1.0.0", "1", "_", "_x", "A-b_c.D", "0" * 128, "a" + "-" * 127, "x.."]
)
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".x", "-x", "a" * 129, "a:b", "a/b", "a b", "a+b", "latest\n", "\nlatest", "é"]
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(errors.TagInvalid) as caught:
        validate_tag(tag)
    assert oci_error(caught.value) == ("TAG_INVALID", 400)


# -- manifests --------------------------------------------------------------------------------


def test_parse_oci_image_manifest() -> None:
    parsed = parse_manifest(raw(image(annotations={"k": "v"})), OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert not parsed.is_index
    assert parsed.config is not None and parsed.config.media_type == CONFIG
    assert [d.size for d in parsed.layers] == [10, 20]
    assert [d.digest for d in parsed.blob_references()] == [
        "sha256:" + "c" * 64,
        "sha256:" + H64,
        "sha256:" + "d" * 64,
    ]
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.annotations == {"k": "v"}
    # Without artifactType, the referrers API reports the config media type.
    assert parsed.artifact_type == CONFIG


def test_parse_artifact_with_subject() -> None:
    body = image(
        artifactType="application/spdx+json",
        config=desc(OCI_EMPTY_JSON, "sha256:" + "e" * 64, 2),
        subject=desc(OCI_MANIFEST, "sha256:" + "f" * 64, 123),
    )
    parsed = parse_manifest(raw(body), OCI_MANIFEST)
    assert parsed.artifact_type == "application/spdx+json"
    assert parsed.subject is not None
    assert parsed.subject.digest == "sha256:" + "f" * 64
    assert parsed.subject.media_type == OCI_MANIFEST
    # The subject is not a blob the registry must already hold.
    assert parsed.subject.digest not in {d.digest for d in parsed.blob_references()}


def test_parse_manifest_without_layers() -> None:
    parsed = parse_manifest(raw(image(layers=None)), OCI_MANIFEST)
    assert parsed.layers == ()
    with pytest.raises(errors.ManifestInvalid):
        parse_manifest(raw(image(mediaType=DOCKER_MANIFEST, layers=None)), DOCKER_MANIFEST)


def test_non_distributable_layers_are_not_required() -> None:
    foreign = desc(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "sha256:" + "9" * 64,
        urls=["https://example.com/layer"],
    )
    parsed = parse_manifest(raw(image(layers=[desc(), foreign])), OCI_MANIFEST)
    assert len(parsed.layers) == 2
    assert "sha256:" + "9" * 64 not in {d.digest for d in parsed.blob_references()}
    # A nondistributable type without urls is an ordinary layer the registry must hold.
    bare = desc("application/vnd.oci.image.layer.nondistributable.v1.tar", "sha256:" + "8" * 64)
    parsed = parse_manifest(raw(image(layers=[bare])), OCI_MANIFEST)
    assert "sha256:" + "8" * 64 in {d.digest for d in parsed.blob_references()}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_parse_indexes(media_type: str) -> None:
    children = [desc(OCI_MANIFEST, "sha256:" + c * 64, 100) for c in "12"]
    body = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    parsed = parse_manifest(raw(body), media_type)
    assert parsed.is_index
    assert parsed.media_type == media_type
    assert [d.digest for d in parsed.manifests] == [c["digest"] for c in children]
    assert parsed.blob_references() == []
    assert parsed.config is None


def test_parse_docker_manifest() -> None:
    body = image(mediaType=DOCKER_MANIFEST)
    assert parse_manifest(raw(body), DOCKER_MANIFEST).media_type == DOCKER_MANIFEST


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (None, image(), OCI_MANIFEST),
        ("", image(), OCI_MANIFEST),
        ("application/json", image(mediaType=DOCKER_MANIFEST), DOCKER_MANIFEST),
        ("application/octet-stream", image(), OCI_MANIFEST),
        (OCI_MANIFEST, image(mediaType=None), OCI_MANIFEST),
        (f"{OCI_MANIFEST}; charset=utf-8", image(), OCI_MANIFEST),
        (OCI_MANIFEST.upper(), image(), OCI_MANIFEST),
        (None, image(mediaType=None), OCI_MANIFEST),
        (None, {"schemaVersion": 2, "manifests": []}, OCI_INDEX),
    ],
)
def test_media_type_resolution(content_type, body: dict, expected: str) -> None:
    assert parse_manifest(raw(body), content_type).media_type == expected


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b"\xff\xfe", OCI_MANIFEST),
        (b"", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b"null", OCI_MANIFEST),
        (raw(image(schemaVersion=1)), OCI_MANIFEST),
        (raw(image(schemaVersion="2")), OCI_MANIFEST),
        (raw(image(schemaVersion=None)), OCI_MANIFEST),
        (raw(image()), OCI_INDEX),
        (raw(image()), DOCKER_MANIFEST),
        (raw(image(mediaType=7)), None),
        (raw(image(mediaType="application/x-unknown")), None),
        (raw(image()), "text/html"),
        (raw(image(mediaType=DOCKER_SCHEMA1)), None),
        (raw(image()), DOCKER_SCHEMA1_SIGNED),
        (raw(image(config=None)), OCI_MANIFEST),
        (raw(image(config="sha256:" + H64)), OCI_MANIFEST),
        (raw(image(config={"digest": "sha256:" + H64, "size": 1})), OCI_MANIFEST),
        (raw(image(config=desc(size=-1))), OCI_MANIFEST),
        (raw(image(config=desc(size=True))), OCI_MANIFEST),
        (raw(image(config=desc(size="1"))), OCI_MANIFEST),
        (raw(image(config=desc(digest="sha256:short"))), OCI_MANIFEST),
        (raw(image(config=desc(digest="md5:" + "0" * 32))), OCI_MANIFEST),
        (raw(image(layers={"a": 1})), OCI_MANIFEST),
        (raw(image(layers=[desc(urls="http://x")])), OCI_MANIFEST),
        (raw(image(annotations=["a"])), OCI_MANIFEST),
        (raw(image(annotations={"a": 1})), OCI_MANIFEST),
        (raw(image(artifactType=["x"])), OCI_MANIFEST),
        (raw(image(subject={"digest": "sha256:" + H64})), OCI_MANIFEST),
        (raw({"schemaVersion": 2, "mediaType": OCI_INDEX}), OCI_INDEX),
        (raw({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}), OCI_INDEX),
        (raw({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "layers": []}), None),
        (raw({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"size": 1}]}), None),
    ],
)
def test_invalid_manifests(payload: bytes, content_type: str | None) -> None:
    with pytest.raises(errors.ManifestInvalid) as caught:
        parse_manifest(payload, content_type)
    assert oci_error(caught.value) == ("MANIFEST_INVALID", 400)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_a_lone_surrogate_escape_is_refused_in_every_json_encoding(encoding: str) -> None:
    """The surrogate check runs only on documents with a `\\u` escape or a NUL byte (any
    UTF-16/32 document): in every encoding JSON allows, a lone one is still refused."""
    text = raw(image(annotations={"a": "x"})).decode().replace('"x"', '"\\ud800"')
    with pytest.raises(errors.ManifestInvalid, match="surrogate"):
        parse_manifest(text.encode(encoding), OCI_MANIFEST)
    paired = text.replace("\\ud800", "\\ud83d\\ude00")
    assert parse_manifest(paired.encode(encoding), OCI_MANIFEST).annotations == {"a": "\U0001f600"}


# -- Accept negotiation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "stored", "admitted"),
    [
        (None, OCI_MANIFEST, True),
        ("", OCI_INDEX, True),
        (OCI_MANIFEST, OCI_MANIFEST, True),
        (f"{DOCKER_MANIFEST}, {OCI_MANIFEST}", OCI_MANIFEST, True),
        (f"{DOCKER_MANIFEST};q=0.9,{OCI_MANIFEST};q=0.1", OCI_MANIFEST, True),
        (f"  {OCI_INDEX}  ;q=1 ", OCI_INDEX, True),
        (OCI_MANIFEST.upper(), OCI_MANIFEST, True),
        ("*/*", DOCKER_MANIFEST_LIST, True),
        ("application/*", OCI_INDEX, True),
        (f"{DOCKER_MANIFEST}, */*;q=0.1", OCI_INDEX, True),
        ("application/json", OCI_MANIFEST, True),
        ("text/plain, application/json", DOCKER_MANIFEST, True),
        (DOCKER_MANIFEST, OCI_MANIFEST, False),
        (OCI_MANIFEST, OCI_INDEX, False),
        (OCI_INDEX, OCI_MANIFEST, False),
        (f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}", OCI_INDEX, False),
        (f"{DOCKER_SCHEMA1_SIGNED}, application/json", DOCKER_MANIFEST, False),
        (f"{OCI_MANIFEST}, application/json", DOCKER_MANIFEST, False),
    ],
)
def test_accepts(accept: str | None, stored: str, admitted: bool) -> None:
    assert accepts(accept, stored) is admitted


# -- error values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.BlobUnknown, "BLOB_UNKNOWN", 404),
        (errors.UploadInvalid, "BLOB_UPLOAD_INVALID", 400),
        (errors.UploadNotFound, "BLOB_UPLOAD_UNKNOWN", 404),
        (errors.RangeInvalid, "BLOB_UPLOAD_INVALID", 416),
        (errors.DigestInvalid, "DIGEST_INVALID", 400),
        (errors.LayersNotFound, "MANIFEST_BLOB_UNKNOWN", 400),
        (errors.ManifestInvalid, "MANIFEST_INVALID", 400),
        (errors.ImageNotFound, "MANIFEST_UNKNOWN", 404),
        (errors.NameInvalid, "NAME_INVALID", 400),
        (errors.RepositoryNotFound, "NAME_UNKNOWN", 404),
        (errors.SizeInvalid, "SIZE_INVALID", 400),
        (errors.PayloadTooLarge, "SIZE_INVALID", 413),
        (errors.TagInvalid, "TAG_INVALID", 400),
        (errors.Unauthenticated, "UNAUTHORIZED", 401),
        (errors.AccessDenied, "DENIED", 403),
        (errors.Unsupported, "UNSUPPORTED", 405),
        (errors.PaginationInvalid, "PAGINATION_NUMBER_INVALID", 400),
        (errors.TooManyRequests, "TOOMANYREQUESTS", 429),
    ],
)
def test_error_codes(cls: type[errors.DomainError], code: str, status: int) -> None:
    """The `/v2/` door's table gives each domain error its distribution-spec code."""
    error = cls()
    assert oci_error(error) == (code, status)
    assert error.message and str(error) == error.message
    assert cls("custom", detail={"x": 1}).detail == {"x": 1}


def test_parsed_manifest_says_whether_it_declares_its_media_type() -> None:
    """ECR's PutImage refuses a manifest that names no type when the request names none; the
    door reads that from the one parse the push then takes."""
    config = {"mediaType": OCI_EMPTY_JSON, "digest": "sha256:" + "a" * 64, "size": 2}
    bare = {"schemaVersion": 2, "config": config, "layers": []}
    assert parse_manifest(json.dumps(bare).encode(), None).declared is False
    assert parse_manifest(json.dumps(bare).encode(), OCI_MANIFEST).declared is False
    declared = {**bare, "mediaType": OCI_MANIFEST}
    parsed = parse_manifest(json.dumps(declared).encode(), None)
    assert parsed.declared is True and parsed.media_type == OCI_MANIFEST
    index = {"schemaVersion": 2, "manifests": []}
    assert parse_manifest(json.dumps(index).encode(), None).declared is False
    assert parse_manifest(json.dumps({**index, "mediaType": OCI_INDEX}).encode(), None).declared
