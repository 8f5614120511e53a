"""Replication's push client against a real `cargobay serve`: an image (and a multi-arch
index) copied from an OCI layout arrives byte-identical, blobs the destination already holds
are not sent again, and the account is chosen by the ECR-style Host header."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest

from cargobay.replication.remote import Endpoint, RemoteError, RemoteRegistry
from imagebuilder import _write_blob, build_image, build_index, layout_blob, sha256
from server import Server


def _readers(layout: Path):
    async def read_manifest(digest: str) -> tuple[bytes, str]:
        content = layout_blob(layout, digest)
        return content, json.loads(content)["mediaType"]

    async def read_blob(digest: str, size: int):
        data = layout_blob(layout, digest)
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    return read_manifest, read_blob


async def _push(server: Server, layout: Path, name: str, digest: str, tag: str, account: str):
    key, secret = server.credentials
    read_manifest, read_blob = _readers(layout)
    async with aiohttp.ClientSession() as session:
        remote = RemoteRegistry(session, Endpoint(server.url, key, secret), account, "eu-west-1")
        return await remote.push_image(name, digest, tag, read_manifest, read_blob)


def _pull(server: Server, name: str, tag: str, dest: Path) -> None:
    subprocess.run(
        [
            "skopeo", "copy", "--all", "--src-tls-verify=false",
            "--src-creds", server.creds_arg,
            f"docker://{server.host}/{name}:{tag}", f"oci:{dest}",
        ],
        check=True, capture_output=True,
    )  # fmt: skip


def test_an_image_arrives_byte_identical_and_shared_blobs_are_not_resent(
    registry: Server, tmp_path: Path
) -> None:
    first = build_image(tmp_path / "first", [200_000, 300_000, 50_000])
    stats = asyncio.run(
        _push(registry, first.layout, "repl/app", first.manifest_digest, "1.0", "000000000000")
    )
    assert stats.blobs_sent == 4 and stats.blobs_present == 0
    assert stats.bytes_sent == sum(len(b) for b in first.blobs.values())
    _pull(registry, "repl/app", "1.0", tmp_path / "back")
    for digest, data in first.blobs.items():
        assert layout_blob(tmp_path / "back", digest) == data
    assert layout_blob(tmp_path / "back", first.manifest_digest) == first.manifest

    # A second image sharing the first's big layers sends only its new layer and config.
    layout = tmp_path / "second"
    second = build_image(layout, [10_000])
    new_layer = second.layers[0]
    for blob in first.layers:
        _write_blob(layout, blob)
    manifest = json.loads(second.manifest)
    media_type = manifest["layers"][0]["mediaType"]
    shared = [{"mediaType": media_type, "digest": sha256(b), "size": len(b)} for b in first.layers]
    manifest["layers"] = shared + manifest["layers"]
    content = json.dumps(manifest).encode()
    digest = _write_blob(layout, content)
    stats = asyncio.run(_push(registry, layout, "repl/app", digest, "2.0", "000000000000"))
    assert stats.blobs_present == len(first.layers)
    assert stats.bytes_sent == len(new_layer) + len(second.config)


def test_an_index_goes_children_first(registry: Server, tmp_path: Path) -> None:
    index = build_index(tmp_path / "multi", ["amd64", "arm64"])
    stats = asyncio.run(
        _push(registry, index.layout, "repl/multi", index.digest, "v1", "000000000000")
    )
    assert stats.manifests[-1] == index.digest
    assert len(stats.manifests) == 3
    _pull(registry, "repl/multi", "v1", tmp_path / "back")
    assert layout_blob(tmp_path / "back", index.digest) == index.content


def test_a_refusal_is_a_failure_code_not_a_retry(registry: Server, tmp_path: Path) -> None:
    image = build_image(tmp_path / "img", [1000])
    read_manifest, read_blob = _readers(image.layout)

    async def scenario() -> RemoteError:
        async with aiohttp.ClientSession() as session:
            endpoint = Endpoint(registry.url, "AKIANOTAREALKEY00000", "wrong-secret-wrong")
            remote = RemoteRegistry(session, endpoint, "000000000000", "eu-west-1")
            with pytest.raises(RemoteError) as caught:
                await remote.push_image(
                    "repl/denied", image.manifest_digest, "x", read_manifest, read_blob
                )
            return caught.value

    error = asyncio.run(scenario())
    assert error.code == "ACCESS_DENIED" and not error.retryable


def test_an_unreachable_destination_is_retryable(tmp_path: Path) -> None:
    image = build_image(tmp_path / "img", [1000])
    read_manifest, read_blob = _readers(image.layout)

    async def scenario() -> RemoteError:
        async with aiohttp.ClientSession() as session:
            endpoint = Endpoint(
                "http://127.0.0.1:9", "AKIAEXAMPLE000000000", "secret-secret-secret"
            )
            remote = RemoteRegistry(session, endpoint, "000000000000", "eu-west-1")
            with pytest.raises(RemoteError) as caught:
                await remote.push_image(
                    "repl/x", image.manifest_digest, "x", read_manifest, read_blob
                )
            return caught.value

    error = asyncio.run(scenario())
    assert error.code == "DESTINATION_UNREACHABLE" and error.retryable
