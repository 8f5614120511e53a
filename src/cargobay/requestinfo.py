"""Facts about an HTTP request that policies condition on: the client's address and whether the
transport was TLS, also when a trusted load balancer sits in front (X-Forwarded-For/-Proto)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from cargobay.iam.authz import RequestContext


@lru_cache(maxsize=16)
def _networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in setting.split(",")
        if part.strip()
    )


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def request_context(request: web.Request, trusted_proxies: str) -> RequestContext:
    """`aws:SourceIp` is the nearest address not in `trusted_proxies`, walking X-Forwarded-For
    from the right; `aws:SecureTransport` follows X-Forwarded-Proto only from a trusted proxy."""
    remote = request.remote or ""
    secure = request.secure
    networks = _networks(trusted_proxies)
    if networks and _trusted(remote, networks):
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            remote = hop
            if not _trusted(hop, networks):
                break
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto:
            secure = proto == "https"
    return RequestContext(source_ip=remote, secure_transport=secure)
