"""Small HTTP clients for the registry API: a keep-alive synchronous one (for timing single
requests with as little client overhead as possible) and asyncio helpers (for seeding and
concurrent clients)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

from benchmarks.registries import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HTTPError(RuntimeError):
    pass


class Client:
    """One keep-alive connection to a registry, authenticated when the registry wants it."""

    def __init__(self, registry: Registry, timeout: float = 600.0) -> None:
        self.registry = registry
        self.conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | memoryview | None = None,
        headers: dict[str, str] | None = None,
        expect: Iterable[int] = (200,),
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = {**self.registry.auth_header, **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Length", str(len(body)))
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in expect:
            raise HTTPError(
                f"{self.registry.name}: {method} {path} -> {response.status} {data[:300]!r}"
            )
        return response.status, dict(response.getheaders()), data

    def start_upload(self, repo: str) -> str:
        _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        return location_path(headers["Location"])

    def put_blob(self, repo: str, data: bytes) -> str:
        """POST + PUT ?digest= with the whole body (works on every registry)."""
        digest = sha256(data)
        location = self.start_upload(repo)
        self.request(
            "PUT",
            with_query(location, digest=digest),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        return digest

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            body=manifest,
            headers={"Content-Type": OCI_MANIFEST},
            expect=(201,),
        )


def location_path(location: str) -> str:
    """A Location header as a path (Distribution answers with absolute URLs)."""
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    return location


def with_query(path: str, **params: str) -> str:
    sep = "&" if "?" in path else "?"
    return path + sep + "&".join(f"{k}={v}" for k, v in params.items())


@dataclass
class SmallImage:
    config: bytes
    layers: list[bytes]

    @property
    def manifest(self) -> bytes:
        return manifest_for(self.config, self.layers)


def small_image(layer_bytes: int, label: str) -> SmallImage:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(label.encode())]},
        }
    ).encode()
    return SmallImage(config, [os.urandom(layer_bytes)])


def manifest_for(config: bytes, layers: list[bytes], annotations: dict | None = None) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()


# -- asyncio -----------------------------------------------------------------------------------


def async_session(registry: Registry, limit: int, timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=registry.url,
        headers=registry.auth_header,
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def acheck(response: aiohttp.ClientResponse, expect: Iterable[int]) -> bytes:
    body = await response.read()
    if response.status not in expect:
        raise HTTPError(
            f"{response.method} {response.url.path} -> {response.status} {body[:300]!r}"
        )
    return body


async def apush_blob(session: aiohttp.ClientSession, repo: str, data: bytes) -> str:
    digest = sha256(data)
    async with session.post(f"/v2/{repo}/blobs/uploads/") as response:
        await acheck(response, (202,))
        location = location_path(response.headers["Location"])
    async with session.put(
        with_query(location, digest=digest),
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        await acheck(response, (201,))
    return digest


async def amount(session: aiohttp.ClientSession, repo: str, digest: str, source: str) -> None:
    async with session.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}
    ) as response:
        await acheck(response, (201,))


async def aput_manifest(
    session: aiohttp.ClientSession, repo: str, reference: str, manifest: bytes
) -> None:
    async with session.put(
        f"/v2/{repo}/manifests/{reference}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    ) as response:
        await acheck(response, (201,))


async def bounded(coros: Iterable, concurrency: int) -> None:
    """Run coroutines with at most `concurrency` in flight; the first failure propagates."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(coro) -> None:
        async with semaphore:
            await coro

    iterator = iter(coros)
    pending: set[asyncio.Task] = set()
    for coro in iterator:
        pending.add(asyncio.ensure_future(one(coro)))
        if len(pending) >= concurrency * 4:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    if pending:
        for task in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(task, BaseException):
                raise task
