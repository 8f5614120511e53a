"""The upstream client against real CNCF Distribution registries (anonymous, htpasswd Basic,
token auth): manifests and blobs come back byte-identical with their digests verified, tokens
are cached, and failures map to the error classes the cache acts on."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from cargobay.upstream.auth import Credentials, TokenCache
from cargobay.upstream.client import Manifest, UpstreamClient
from cargobay.upstream.errors import NotFound, Unauthorized, UpstreamUnavailable
from cargobay.upstream.urls import DOCKER_HUB, UpstreamRegistry
from imagebuilder import sha256 as _sha256
from upstream.conftest import Upstream
from upstream.distribution import PASSWORD, USER, Distribution

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def client_for(upstream: Upstream, **options: object) -> UpstreamClient:
    registry = upstream.registry
    if registry.mode != "anonymous":
        options.setdefault("credentials", Credentials(USER, PASSWORD))
    return UpstreamClient(registry.url, chunk_size=64 * 1024, **options)  # type: ignore[arg-type]


async def read_blob(client: UpstreamClient, repository: str, digest: str, **kw: object) -> bytes:
    return b"".join([chunk async for chunk in client.get_blob(repository, digest, **kw)])


def test_fetches_an_image_byte_identical(upstream: Upstream) -> None:
    """By tag and by digest, HEAD and GET, every blob: what was pushed comes back exactly."""
    image = upstream.image

    async def scenario() -> tuple[Manifest, Manifest, object, dict[str, bytes], int]:
        async with client_for(upstream) as client:
            await client.ping()
            by_tag = await client.get_manifest("app/single", "v1")
            by_digest = await client.get_manifest("app/single", image.manifest_digest)
            head = await client.head_manifest("app/single", "v1")
            blobs = {d: await read_blob(client, "app/single", d) for d in image.blobs}
            size = await client.blob_size("app/single", _sha256(image.layers[1]))
            return by_tag, by_digest, head, blobs, size

    by_tag, by_digest, head, blobs, size = asyncio.run(scenario())
    assert by_tag == Manifest(image.manifest_digest, OCI_MANIFEST, image.manifest)
    assert by_digest == by_tag
    assert (head.digest, head.media_type, head.size) == (  # type: ignore[attr-defined]
        image.manifest_digest, OCI_MANIFEST, len(image.manifest),
    )  # fmt: skip
    assert blobs == image.blobs
    assert size == len(image.layers[1])


def test_blob_chunks_are_whole_blocks_but_the_last(upstream: Upstream) -> None:
    """The socket's pieces are joined into blocks of at least `chunk_size` (fewer hand-offs
    downstream); the bytes are the blob's, in order, verified."""
    layer = upstream.image.layers[1]  # 300,000 bytes: four 64 KiB blocks and a tail

    async def scenario() -> list[bytes]:
        async with client_for(upstream) as client:
            return [c async for c in client.get_blob("app/single", _sha256(layer), size=len(layer))]

    chunks = asyncio.run(scenario())
    assert b"".join(chunks) == layer
    assert len(chunks) > 1 and all(len(c) >= 64 * 1024 for c in chunks[:-1])
    assert chunks[-1]


def test_fetches_a_multi_arch_index_and_its_children(upstream: Upstream) -> None:
    index = upstream.index

    async def scenario() -> tuple[Manifest, list[Manifest], dict[str, bytes]]:
        async with client_for(upstream) as client:
            top = await client.get_manifest("app/multi", "v1")
            children = [
                await client.get_manifest("app/multi", entry["digest"])
                for entry in json.loads(top.content)["manifests"]
            ]
            blobs = {}
            for child in children:
                manifest = json.loads(child.content)
                for layer in [manifest["config"], *manifest["layers"]]:
                    blobs[layer["digest"]] = await read_blob(
                        client, "app/multi", layer["digest"], size=layer["size"]
                    )
            return top, children, blobs

    top, children, blobs = asyncio.run(scenario())
    assert top == Manifest(index.digest, OCI_INDEX, index.content)
    assert {c.digest: c.content for c in children} == {
        image.manifest_digest: image.manifest for image in index.images.values()
    }
    expected = {d: b for image in index.images.values() for d, b in image.blobs.items()}
    assert blobs == expected


def test_docker_schema2_manifests_keep_their_media_type(
    upstreams: dict[str, Upstream], built: tuple
) -> None:
    """An image pushed as Docker v2 schema 2 comes back as one, its digest checked."""
    upstream = upstreams["anonymous"]
    upstream.registry.push(f"oci:{upstream.image.layout}:v1", "app/docker:v1", "--format", "v2s2")

    async def scenario() -> Manifest:
        async with client_for(upstream) as client:
            return await client.get_manifest("app/docker", "v1")

    manifest = asyncio.run(scenario())
    assert manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert json.loads(manifest.content)["mediaType"] == manifest.media_type
    assert manifest.digest != upstream.image.manifest_digest


def test_missing_manifest_and_blob_are_not_found(upstreams: dict[str, Upstream]) -> None:
    upstream = upstreams["token"]
    missing = "sha256:" + "0" * 64

    async def scenario() -> list[str]:
        caught = []
        async with client_for(upstream) as client:
            for call in (
                client.get_manifest("app/single", "nope"),
                client.head_manifest("app/single", "nope"),
                client.blob_size("app/single", missing),
                read_blob(client, "app/single", missing),
                client.get_manifest("app/absent", "v1"),
            ):
                try:
                    await call
                except NotFound as exc:
                    caught.append(exc.upstream)
        return caught

    assert asyncio.run(scenario()) == [upstream.registry.host] * 5


@pytest.mark.parametrize("mode", ["basic", "token"])
@pytest.mark.parametrize("credentials", [None, Credentials(USER, "wrong")])
def test_missing_or_wrong_credentials_are_unauthorized(
    upstreams: dict[str, Upstream], mode: str, credentials: Credentials | None
) -> None:
    upstream = upstreams[mode]

    async def scenario() -> None:
        async with UpstreamClient(upstream.registry.url, credentials=credentials) as client:
            await client.get_manifest("app/single", "v1")

    with pytest.raises(Unauthorized):
        asyncio.run(scenario())


def test_tokens_are_cached_per_scope_until_they_expire(upstreams: dict[str, Upstream]) -> None:
    """One token request serves a whole image pull; a shared cache serves a second client; an
    expired token is fetched again. Counted at the token server itself."""
    upstream = upstreams["token"]
    server = upstream.registry.tokens
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])

    async def pull(client: UpstreamClient) -> None:
        await client.head_manifest("app/single", "v1")
        await client.get_manifest("app/single", "v1")
        for digest in upstream.image.blobs:
            await read_blob(client, "app/single", digest)

    async def scenario() -> list[int]:
        counts = [server.count()]
        async with client_for(upstream, token_cache=cache) as first:
            await pull(first)
            counts.append(server.count())
            await pull(first)
            counts.append(server.count())
        async with client_for(upstream, token_cache=cache) as second:
            await pull(second)
            counts.append(server.count())
            now[0] += 301  # past expires_in (300 s)
            await pull(second)
            counts.append(server.count())
            await second.get_manifest("app/multi", "v1")  # another repository: another scope
            counts.append(server.count())
        return counts

    counts = asyncio.run(scenario())
    assert [b - a for a, b in itertools.pairwise(counts)] == [1, 0, 0, 1, 1]
    scopes = [r["scope"] for r in server.requests[-3:]]
    assert scopes[0] == ["repository:app/single:pull"]
    assert scopes[2] == ["repository:app/multi:pull"]


def test_a_stopped_upstream_is_unavailable(tmp_path) -> None:
    registry = Distribution(tmp_path / "stopped").start()

    async def scenario() -> tuple[Exception | None, type[Exception]]:
        async with UpstreamClient(registry.url) as client:
            await client.ping()
            registry.stop()
            with pytest.raises(UpstreamUnavailable) as caught:
                await client.get_manifest("app/single", "v1")
            with pytest.raises(UpstreamUnavailable):
                await client.ping()
            return None, type(caught.value)

    try:
        assert asyncio.run(scenario())[1] is UpstreamUnavailable
    finally:
        registry.discard()


def test_concurrent_first_requests_share_one_token_request(upstreams: dict[str, Upstream]) -> None:
    """20 blob fetches started at once on a fresh client: one token request between them."""
    upstream = upstreams["token"]
    server = upstream.registry.tokens
    digests = list(upstream.image.blobs) * 7

    async def scenario() -> tuple[int, int, bool]:
        before = server.count()
        async with client_for(upstream) as client:
            blobs = await asyncio.gather(
                *(read_blob(client, "app/single", d) for d in digests[:20])
            )
            identical = all(
                b == upstream.image.blobs[d] for b, d in zip(blobs, digests, strict=False)
            )
            return server.count() - before, client.token_requests, identical

    hits, requests, identical = asyncio.run(scenario())
    assert (hits, requests, identical) == (1, 1, True)


def test_a_refused_cached_token_is_replaced(upstreams: dict[str, Upstream]) -> None:
    """A token the registry no longer accepts (revoked, signed by a rotated key) is dropped
    and a fresh one fetched, once."""
    upstream = upstreams["token"]
    server = upstream.registry.tokens
    cache = TokenCache()
    cache.put(upstream.registry.host, "repository:app/single:pull", "not.a.valid-token", 300)

    async def scenario() -> tuple[Manifest, int]:
        before = server.count()
        async with client_for(upstream, token_cache=cache) as client:
            manifest = await client.get_manifest("app/single", "v1")
        return manifest, server.count() - before

    manifest, hits = asyncio.run(scenario())
    assert manifest.digest == upstream.image.manifest_digest
    assert hits == 1
    assert cache.get(upstream.registry.host, "repository:app/single:pull") != "not.a.valid-token"


def test_docker_hub_single_component_names_get_the_library_prefix(
    upstreams: dict[str, Upstream],
) -> None:
    """Against an upstream taken for Docker Hub, `alpine` is fetched as `library/alpine`."""
    upstream = upstreams["anonymous"]
    upstream.registry.push(f"oci:{upstream.image.layout}:v1", "library/alpine:3.20")
    hub_like = UpstreamRegistry(upstream.registry.url, DOCKER_HUB, "docker-hub")

    async def scenario() -> Manifest:
        async with UpstreamClient(hub_like) as client:
            return await client.get_manifest("alpine", "3.20")

    assert asyncio.run(scenario()).content == upstream.image.manifest
