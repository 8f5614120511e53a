"""Upstream registry URLs as pull-through cache rules take them (`upstreamRegistryUrl`), and
the repository names an upstream expects.

The hosted upstreams ECR knows are checked against their `upstreamRegistry` kind; any other
OCI registry (Harbor, Artifactory, another cargobay) is kind `oci`. Plain `http://` is only
accepted for loopback and private-network addresses: credentials and images would otherwise
cross the internet unprotected. Link-local, multicast and unspecified addresses are refused
whatever the scheme (169.254.169.254 is a cloud metadata service, not a registry).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cargobay.upstream.errors import InvalidUpstreamUrl

DOCKER_HUB = "registry-1.docker.io"

# upstreamRegistry (botocore's enum) -> the only host ECR accepts for it.
FIXED_HOSTS: dict[str, str] = {
    "docker-hub": DOCKER_HUB,
    "ecr-public": "public.ecr.aws",
    "quay": "quay.io",
    "k8s": "registry.k8s.io",
    "github-container-registry": "ghcr.io",
    "gitlab-container-registry": "registry.gitlab.com",
}
_AZURE = re.compile(r"^[a-z0-9]{5,50}\.azurecr\.io$")
_ECR = re.compile(r"^[0-9]{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
# Hosts Docker clients treat as Docker Hub; the registry API itself lives on registry-1.
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry.hub.docker.com", DOCKER_HUB}
# Kinds whose upstream always needs a credential secret, as in ECR.
CREDENTIALED_KINDS = frozenset(
    {"docker-hub", "github-container-registry", "gitlab-container-registry",
     "azure-container-registry"}
)  # fmt: skip
KINDS = frozenset({*FIXED_HOSTS, "azure-container-registry", "ecr", "oci"})

Resolver = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class UpstreamRegistry:
    """A validated upstream: `url` is `scheme://host[:port]` with no trailing slash."""

    url: str
    host: str  # host[:port], lower case
    kind: str  # an upstreamRegistry enum value, or "oci" for any other OCI registry

    @property
    def requires_credentials(self) -> bool:
        return self.kind in CREDENTIALED_KINDS


def _system_resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise InvalidUpstreamUrl(f"cannot resolve upstream host {host!r}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def _refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_link_local or address.is_multicast or address.is_unspecified


def _local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (address.is_loopback or address.is_private) and not _refused_address(address)


def is_local_host(host: str, resolve: Resolver = _system_resolve) -> bool:
    """True when every address of `host` is loopback or private (RFC 1918, ULA)."""
    try:
        return _local_address(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return True
    addresses = resolve(host)
    return bool(addresses) and all(_local_address(ipaddress.ip_address(a)) for a in addresses)


def parse_upstream_url(
    value: str, upstream_registry: str | None = None, *, resolve: Resolver = _system_resolve
) -> UpstreamRegistry:
    """Validate and normalise an `upstreamRegistryUrl` (host, `https://host`, or `http://host:
    port` on a local network) for the given `upstreamRegistry` kind (inferred when None)."""
    text = value.strip()
    if not text or len(text) > 512 or any(c.isspace() for c in text):
        raise InvalidUpstreamUrl(f"invalid upstream registry URL {value!r}")
    parts = urlsplit(text if "://" in text else f"https://{text}")
    if parts.scheme not in ("https", "http"):
        raise InvalidUpstreamUrl(f"upstream registry URL scheme must be https: {value!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidUpstreamUrl(f"upstream registry URL takes only a host: {value!r}")
    if parts.path not in ("", "/"):
        raise InvalidUpstreamUrl(f"upstream registry URL takes no path: {value!r}")
    try:
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidUpstreamUrl(f"invalid port in upstream registry URL {value!r}") from None
    if not hostname:
        raise InvalidUpstreamUrl(f"upstream registry URL has no host: {value!r}")
    hostname = hostname.rstrip(".")
    if hostname in _DOCKER_HUB_ALIASES and port is None:
        hostname = DOCKER_HUB
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            hostname
        )
    except ValueError:
        literal = None
    if literal is not None and _refused_address(literal):
        raise InvalidUpstreamUrl(f"upstream registry address {hostname} is not allowed")
    if parts.scheme == "http" and not is_local_host(hostname, resolve):
        raise InvalidUpstreamUrl(
            f"http:// upstreams must be on a loopback or private network: {value!r}"
        )
    display = f"[{hostname}]" if literal is not None and literal.version == 6 else hostname
    host = display if port is None else f"{display}:{port}"
    kind = _kind(hostname, port, upstream_registry, value)
    return UpstreamRegistry(url=f"{parts.scheme}://{host}", host=host, kind=kind)


def _kind(hostname: str, port: int | None, declared: str | None, value: str) -> str:
    inferred = "oci"
    if port is None:
        for kind, fixed in FIXED_HOSTS.items():
            if hostname == fixed:
                inferred = kind
        if _AZURE.fullmatch(hostname):
            inferred = "azure-container-registry"
        elif _ECR.fullmatch(hostname):
            inferred = "ecr"
    if declared is None:
        return inferred
    if declared not in KINDS:
        raise InvalidUpstreamUrl(f"unsupported upstream registry {declared!r}")
    if declared != inferred:
        raise InvalidUpstreamUrl(f"{value!r} is not a valid URL for upstream registry {declared}")
    return declared


def upstream_repository(registry: UpstreamRegistry | str, name: str) -> str:
    """The repository name as the upstream knows it: Docker Hub's official images live under
    `library/` (`alpine` is `library/alpine`)."""
    host = registry.host if isinstance(registry, UpstreamRegistry) else registry
    if host == DOCKER_HUB and "/" not in name:
        return f"library/{name}"
    return name
