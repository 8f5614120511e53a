"""The tag mutability rule (registry.mutability), BatchGetImage's format conversion
(oci.convert) and the registry policy scope (iam.policyscope)."""

from __future__ import annotations

import json

import pytest

from cargobay.errors import InvalidParameter
from cargobay.iam.policy import PolicyError, parse_policy
from cargobay.iam.policyscope import applies, check_registry_policy
from cargobay.oci.convert import for_accepted
from cargobay.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST
from cargobay.registry import mutability as m


def _filters(*values: str) -> list[dict[str, str]]:
    return [{"filterType": "WILDCARD", "filter": v} for v in values]


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        ("dev-*", "dev-1", True),
        ("dev-*", "dev-", True),
        ("dev-*", "xdev-1", False),
        ("latest", "latest", True),
        ("latest", "latest-1", False),
        ("*-rc*", "1.0-rc2", True),
        ("v1.0", "v1x0", False),  # `.` is literal
        ("Dev", "dev", False),  # case-sensitive
    ],
)
def test_wildcard_filter(pattern: str, tag: str, matches: bool) -> None:
    assert m.tag_matches(pattern, tag) is matches


def test_modes() -> None:
    immutable = m.parse("IMMUTABLE_WITH_EXCLUSION", _filters("dev-*"))
    assert immutable.is_immutable("v1") and not immutable.is_immutable("dev-2")
    mutable = m.parse("MUTABLE_WITH_EXCLUSION", _filters("release-*", "stable"))
    assert mutable.is_immutable("release-1") and mutable.is_immutable("stable")
    assert not mutable.is_immutable("edge")
    assert m.parse("IMMUTABLE", None).is_immutable("anything")
    assert not m.parse("MUTABLE", []).is_immutable("anything")


def test_stored_round_trip() -> None:
    setting = m.parse("MUTABLE_WITH_EXCLUSION", _filters("a*", "a*", "b"))
    assert setting.exclusions == ("a*", "b")  # repeated filters kept once
    again = m.load(setting.mode, setting.stored_exclusions())
    assert again == setting
    assert again.filters_shape() == _filters("a*", "b")
    assert m.load("MUTABLE", None).stored_exclusions() is None


@pytest.mark.parametrize(
    ("mode", "filters"),
    [
        ("SOMETIMES", None),
        ("IMMUTABLE_WITH_EXCLUSION", None),
        ("MUTABLE_WITH_EXCLUSION", []),
        ("MUTABLE", _filters("x")),
        ("IMMUTABLE", _filters("x")),
        ("MUTABLE_WITH_EXCLUSION", _filters(*(f"t{i}" for i in range(6)))),
        ("MUTABLE_WITH_EXCLUSION", _filters("a/b")),
        ("MUTABLE_WITH_EXCLUSION", _filters("x" * 129)),
        ("MUTABLE_WITH_EXCLUSION", _filters("")),
        ("MUTABLE_WITH_EXCLUSION", [{"filterType": "REGEX", "filter": "x"}]),
        ("MUTABLE_WITH_EXCLUSION", ["x"]),
        ("MUTABLE_WITH_EXCLUSION", "x"),
    ],
)
def test_invalid_settings(mode: object, filters: object) -> None:
    with pytest.raises(InvalidParameter):
        m.parse(mode, filters)


# -- acceptedMediaTypes ---------------------------------------------------------------------------

_DOCKER = {
    "schemaVersion": 2,
    "mediaType": DOCKER_MANIFEST,
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 10,
        "digest": "sha256:" + "a" * 64,
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 20,
            "digest": "sha256:" + "b" * 64,
        }
    ],
}


def test_stored_format_when_accepted_or_unconstrained() -> None:
    raw = json.dumps(_DOCKER).encode()
    assert for_accepted(raw, DOCKER_MANIFEST, None, False) == (raw, DOCKER_MANIFEST)
    assert for_accepted(raw, DOCKER_MANIFEST, [], True) == (raw, DOCKER_MANIFEST)
    assert for_accepted(raw, DOCKER_MANIFEST, [OCI_MANIFEST, DOCKER_MANIFEST], True) == (
        raw,
        DOCKER_MANIFEST,
    )


def test_docker_to_oci_and_back_by_tag() -> None:
    raw = json.dumps(_DOCKER).encode()
    served = for_accepted(raw, DOCKER_MANIFEST, [OCI_MANIFEST], False)
    assert served is not None
    oci, media_type = served
    body = json.loads(oci)
    assert media_type == OCI_MANIFEST == body["mediaType"]
    assert body["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert body["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert body["layers"][0]["digest"] == _DOCKER["layers"][0]["digest"]
    back = for_accepted(oci, OCI_MANIFEST, [DOCKER_MANIFEST], False)
    assert back is not None and json.loads(back[0]) == _DOCKER


def test_no_conversion_by_digest_for_indexes_or_artifacts() -> None:
    raw = json.dumps(_DOCKER).encode()
    assert for_accepted(raw, DOCKER_MANIFEST, [OCI_MANIFEST], True) is None
    index = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": []})
    assert for_accepted(index.encode(), DOCKER_MANIFEST_LIST, [OCI_MANIFEST], False) is None
    schema1 = "application/vnd.docker.distribution.manifest.v1+json"
    assert for_accepted(raw, DOCKER_MANIFEST, [schema1], False) is None
    oci = json.loads(for_accepted(raw, DOCKER_MANIFEST, [OCI_MANIFEST], False)[0])
    to_docker = [DOCKER_MANIFEST]
    artifact = {**oci, "artifactType": "application/example"}
    assert for_accepted(json.dumps(artifact).encode(), OCI_MANIFEST, to_docker, False) is None
    zstd_layer = {**oci["layers"][0], "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"}
    zstd = {**oci, "layers": [zstd_layer]}
    assert for_accepted(json.dumps(zstd).encode(), OCI_MANIFEST, to_docker, False) is None


# -- registry policy scope ------------------------------------------------------------------------


def _registry_policy(*actions: str, not_action: bool = False) -> object:
    key = "NotAction" if not_action else "Action"
    statement = {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, key: list(actions)}
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    return parse_policy(text, resource_policy=True, unique_sids=False)


def test_registry_policy_scope() -> None:
    check_registry_policy(_registry_policy("ecr:PutImage", "ecr:*"), "V2")
    check_registry_policy(_registry_policy("ecr:ReplicateImage", "ecr:Create*"), "V1")
    check_registry_policy(_registry_policy("ecr:*"), "V1")
    for actions, scope in ((("ecr:PutImage",), "V1"), (("s3:GetObject",), "V2")):
        with pytest.raises(PolicyError):
            check_registry_policy(_registry_policy(*actions), scope)
    with pytest.raises(PolicyError):
        check_registry_policy(_registry_policy("ecr:PutImage", not_action=True), "V1")
    assert applies("V2", "ecr:PutImage") and applies(None, "ecr:PutImage")
    assert applies("V1", "ecr:ReplicateImage") and not applies("V1", "ecr:PutImage")


def test_repeated_sids() -> None:
    statement = {"Sid": "s", "Effect": "Allow", "Action": "*", "Resource": "*"}
    text = json.dumps({"Statement": [statement, statement]})
    with pytest.raises(PolicyError, match="not unique"):
        parse_policy(text)
    assert len(parse_policy(text, unique_sids=False).statements) == 2
