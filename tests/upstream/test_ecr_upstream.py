"""An `ecr` upstream: another cargobay, reached with a GetAuthorizationToken password that the
provider obtains by a SigV4-signed call (botocore's signer) and renews before it expires."""

from __future__ import annotations

import asyncio

import pytest

from cargobay.upstream.client import UpstreamClient
from cargobay.upstream.ecr import AwsKeys, EcrTokenProvider
from cargobay.upstream.errors import Unauthorized
from imagebuilder import Image


def test_pulls_from_a_cargobay_upstream_with_an_ecr_token(registry, image: Image) -> None:
    from e2e.test_skopeo import push

    push(registry, f"oci:{image.layout}:latest", "ptc-upstream/app:v1")
    key, secret = registry.credentials

    async def scenario() -> tuple[bytes, dict[str, bytes], int, str]:
        provider = EcrTokenProvider(registry.url, "us-east-1", AwsKeys(key, secret))
        async with UpstreamClient(registry.url, credential_provider=provider) as client:
            manifest = await client.get_manifest("ptc-upstream/app", "v1")
            blobs = {
                d: b"".join([c async for c in client.get_blob("ptc-upstream/app", d)])
                for d in image.blobs
            }
            await client.head_manifest("ptc-upstream/app", image.manifest_digest)
        username = (await provider()).username
        return manifest.content, blobs, provider.requests, username

    content, blobs, token_calls, username = asyncio.run(scenario())
    assert content == image.manifest
    assert blobs == image.blobs
    assert token_calls == 1  # kept for the whole pull (valid 12 h)
    assert username == "AWS"


def test_wrong_aws_keys_are_unauthorized(registry) -> None:
    key, _ = registry.credentials

    async def scenario() -> None:
        provider = EcrTokenProvider(registry.url, "us-east-1", AwsKeys(key, "not-the-secret"))
        async with UpstreamClient(registry.url, credential_provider=provider) as client:
            await client.ping()

    with pytest.raises(Unauthorized):
        asyncio.run(scenario())
