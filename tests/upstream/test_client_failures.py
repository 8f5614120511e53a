"""The upstream client when the upstream misbehaves: bytes that do not match their digest are
refused (a blob's last chunk never reaches the consumer), redirects to another origin do not
carry our credentials, and 429 / 5xx map to RateLimited / UpstreamUnavailable."""

from __future__ import annotations

import asyncio

import pytest

from cargobay.upstream.auth import Credentials
from cargobay.upstream.client import UpstreamClient
from cargobay.upstream.errors import DigestMismatch, RateLimited, UpstreamUnavailable
from upstream.conftest import Upstream
from upstream.distribution import PASSWORD, USER
from upstream.proxy import Proxy


def _client(url: str, basic: bool = False) -> UpstreamClient:
    credentials = Credentials(USER, PASSWORD) if basic else None
    return UpstreamClient(url, credentials=credentials, chunk_size=64 * 1024)


def test_tampered_manifest_is_refused(upstreams: dict[str, Upstream]) -> None:
    upstream = upstreams["anonymous"]

    async def scenario() -> list[str]:
        caught = []
        async with Proxy(upstream.registry.url) as proxy, _client(proxy.url) as client:
            proxy.mode = "tamper-manifest"
            for reference in ("v1", upstream.image.manifest_digest):
                with pytest.raises(DigestMismatch) as info:
                    await client.get_manifest("app/single", reference)
                caught.append(info.value.message)
            proxy.mode = "pass"
            await client.get_manifest("app/single", "v1")  # the same client, honest again
        return caught

    messages = asyncio.run(scenario())
    assert "Docker-Content-Digest" in messages[0]
    assert "not the requested" in messages[1]


def test_a_manifest_other_than_the_digest_asked_for_is_refused(
    upstreams: dict[str, Upstream],
) -> None:
    """The upstream serves a valid manifest, but not the one asked for by digest."""
    upstream = upstreams["anonymous"]
    other = upstream.index.digest  # in app/multi; swapped in under app/single's name below

    async def scenario() -> None:
        async with Proxy(upstream.registry.url) as proxy, _client(proxy.url) as client:
            proxy.mode, proxy.swap_digest = "swap", upstream.image.manifest_digest
            await client.get_manifest("app/single", upstream.image.manifest_digest)  # same: ok
            with pytest.raises(DigestMismatch):
                await client.get_manifest("app/single", other)

    asyncio.run(scenario())


def test_tampered_blob_raises_before_its_last_chunk(upstreams: dict[str, Upstream]) -> None:
    upstream = upstreams["anonymous"]
    layer = upstream.image.layers[1]  # ~300 kB: several 64 KiB chunks
    digest = next(d for d, b in upstream.image.blobs.items() if b == layer)

    async def scenario() -> tuple[bytes, Exception | None]:
        received = b""
        error = None
        async with Proxy(upstream.registry.url) as proxy, _client(proxy.url) as client:
            proxy.mode = "tamper-blob"
            try:
                async for chunk in client.get_blob("app/single", digest):
                    received += chunk
            except DigestMismatch as exc:
                error = exc
        return received, error

    received, error = asyncio.run(scenario())
    assert isinstance(error, DigestMismatch)
    assert 0 < len(received) < len(layer)
    assert layer.startswith(received)  # what was yielded was genuine, the rest withheld


def test_blob_redirects_to_another_origin_carry_no_credentials(
    upstreams: dict[str, Upstream],
) -> None:
    upstream = upstreams["basic"]
    blobs = upstream.image.blobs

    async def scenario(proxy_credentials: str) -> tuple[dict[str, bytes], Proxy]:
        fetched = {}
        async with (
            Proxy(upstream.registry.url, proxy_credentials) as proxy,
            _client(proxy.url, basic=True) as client,
        ):
            await client.get_manifest("app/single", "v1")  # learns Basic
            proxy.mode = "redirect"
            for digest in blobs:
                fetched[digest] = b"".join([c async for c in client.get_blob("app/single", digest)])
        return fetched, proxy

    fetched, proxy = asyncio.run(scenario(upstream.registry.creds_arg))
    assert fetched == blobs
    assert len(proxy.redirected_auth) == len(blobs)
    assert all(auth and auth.startswith("Basic ") for auth in proxy.redirected_auth)
    assert proxy.blob_host_auth == [None] * len(blobs)


def test_rate_limits_and_server_errors_are_distinct(upstreams: dict[str, Upstream]) -> None:
    upstream = upstreams["anonymous"]

    async def scenario() -> tuple[float | None, str]:
        async with Proxy(upstream.registry.url) as proxy, _client(proxy.url) as client:
            proxy.mode, proxy.status = "status", 429
            proxy.status_headers = {"Retry-After": "7"}
            with pytest.raises(RateLimited) as limited:
                await client.get_manifest("app/single", "v1")
            proxy.status, proxy.status_headers = 503, {}
            with pytest.raises(UpstreamUnavailable) as unavailable:
                await client.head_manifest("app/single", "v1")
            digest = upstream.image.manifest_digest
            with pytest.raises(UpstreamUnavailable):
                await client.get_blob("app/single", digest).__anext__()
        return limited.value.retry_after, unavailable.value.upstream

    retry_after, host = asyncio.run(scenario())
    assert retry_after == 7.0
    assert host.startswith("127.0.0.1:")
