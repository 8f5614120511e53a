"""Upstream registry URLs as pull-through cache rules accept them."""

from __future__ import annotations

import pytest

from cargobay.upstream.errors import InvalidUpstreamUrl
from cargobay.upstream.urls import UpstreamRegistry, parse_upstream_url, upstream_repository


def no_dns(host: str) -> list[str]:
    raise AssertionError(f"unexpected DNS lookup of {host}")


def fake_dns(table: dict[str, list[str]]):
    return lambda host: table[host]


@pytest.mark.parametrize(
    ("value", "kind", "url"),
    [
        ("registry-1.docker.io", "docker-hub", "https://registry-1.docker.io"),
        ("docker.io", "docker-hub", "https://registry-1.docker.io"),
        ("https://index.docker.io/", "docker-hub", "https://registry-1.docker.io"),
        ("ghcr.io", "github-container-registry", "https://ghcr.io"),
        ("QUAY.IO", "quay", "https://quay.io"),
        ("public.ecr.aws", "ecr-public", "https://public.ecr.aws"),
        ("registry.k8s.io", "k8s", "https://registry.k8s.io"),
        ("registry.gitlab.com", "gitlab-container-registry", "https://registry.gitlab.com"),
        ("myteam.azurecr.io", "azure-container-registry", "https://myteam.azurecr.io"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr",
         "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ("harbor.example.com:8443", "oci", "https://harbor.example.com:8443"),
        ("http://127.0.0.1:5000", "oci", "http://127.0.0.1:5000"),
        ("http://localhost:5000", "oci", "http://localhost:5000"),
        ("http://10.1.2.3:5000", "oci", "http://10.1.2.3:5000"),
        ("http://192.168.0.7", "oci", "http://192.168.0.7"),
        ("http://[::1]:5000", "oci", "http://[::1]:5000"),
        ("http://[fd00::5]:5000", "oci", "http://[fd00::5]:5000"),
    ],
)  # fmt: skip
def test_accepted(value: str, kind: str, url: str) -> None:
    registry = parse_upstream_url(value, resolve=no_dns)
    assert (registry.kind, registry.url) == (kind, url)
    assert parse_upstream_url(value, kind, resolve=no_dns) == registry


def test_http_host_names_must_resolve_to_private_addresses_only() -> None:
    dns = fake_dns({"cache.lan": ["10.0.0.9"], "mixed.lan": ["10.0.0.9", "8.8.8.8"]})
    assert parse_upstream_url("http://cache.lan:5000", resolve=dns).url == "http://cache.lan:5000"
    with pytest.raises(InvalidUpstreamUrl, match="private"):
        parse_upstream_url("http://mixed.lan:5000", resolve=dns)


@pytest.mark.parametrize(
    "value",
    [
        "", "   ", "http://8.8.8.8:5000", "http://registry-1.docker.io", "ftp://quay.io",
        "https://quay.io/v2/", "https://user:pw@quay.io", "https://quay.io?x=1", "quay io",
        "http://169.254.169.254", "https://169.254.169.254", "http://0.0.0.0:5000",
        "https://[fe80::1]", "https://quay.io:notaport", "https://",
    ],
)  # fmt: skip
def test_refused(value: str) -> None:
    with pytest.raises(InvalidUpstreamUrl):
        parse_upstream_url(value, resolve=fake_dns({"registry-1.docker.io": ["3.3.3.3"]}))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("quay.io", "docker-hub"),
        ("ghcr.io", "quay"),
        ("example.azurecr.io.evil.com", "azure-container-registry"),
        ("registry.example.com", "ecr"),
        ("quay.io", "no-such-kind"),
    ],
)
def test_url_must_fit_the_declared_upstream_kind(value: str, kind: str) -> None:
    with pytest.raises(InvalidUpstreamUrl):
        parse_upstream_url(value, kind, resolve=no_dns)


def test_credentialed_kinds() -> None:
    assert parse_upstream_url("docker.io", resolve=no_dns).requires_credentials
    assert not parse_upstream_url("quay.io", resolve=no_dns).requires_credentials


def test_docker_hub_official_images_live_under_library() -> None:
    hub = parse_upstream_url("docker.io", resolve=no_dns)
    assert upstream_repository(hub, "alpine") == "library/alpine"
    assert upstream_repository(hub, "bitnami/redis") == "bitnami/redis"
    quay = UpstreamRegistry("https://quay.io", "quay.io", "quay")
    assert upstream_repository(quay, "alpine") == "alpine"
