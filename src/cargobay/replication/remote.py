"""Pushing one image to another deployment over `/v2/`, as any OCI client would.

The destination is addressed by its endpoint; the account inside it by an ECR-style `Host`
header (`<account>.dkr.ecr.<region>.<suffix>`), which cargobay's data plane reads to pick the
registry. Blobs the destination already has are not sent (a HEAD first); each blob that must
move is streamed from the local store, never held in memory. Children of an index go before
the index, and every manifest goes by digest before its tag, so the destination never names
what it does not hold.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from cargobay.oci.manifest import parse_manifest

# (digest, size) -> the blob's bytes, streamed.
ReadBlob = Callable[[str, int], AsyncIterator[bytes]]
ReadManifest = Callable[[str], Awaitable[tuple[bytes, str]]]


class RemoteError(Exception):
    """The destination refused or could not be reached; `code` is ECR's failure code."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass
class PushStats:
    blobs_sent: int = 0
    blobs_present: int = 0
    bytes_sent: int = 0
    manifests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    """Another deployment: where it listens and the key the source presents there."""

    url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


def _error_for(status: int, body: str, what: str) -> RemoteError:
    if status in (401, 403):
        return RemoteError(
            "ACCESS_DENIED", f"{what}: the destination refused access ({status})", retryable=False
        )
    if status == 404 and "NAME_UNKNOWN" in body:
        return RemoteError(
            "REPOSITORY_NOT_FOUND",
            f"{what}: the destination repository does not exist",
            retryable=False,
        )
    retryable = status >= 500 or status == 429
    return RemoteError(
        "DESTINATION_ERROR" if retryable else "DESTINATION_REFUSED",
        f"{what}: the destination answered {status}: {body[:200]}",
        retryable=retryable,
    )


class RemoteRegistry:
    """One destination account in another deployment."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        registry_id: str,
        region: str,
        source_region: str = "",
    ) -> None:
        self.session = session
        self.base = endpoint.url.rstrip("/")
        self.source_region = source_region
        pair = f"{endpoint.access_key_id}:{endpoint.secret_access_key}".encode()
        self.headers = {
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
            # The data plane picks the account from an ECR-style host name.
            "Host": f"{registry_id}.dkr.ecr.{region}.replication.invalid",
            # The destination authorizes a replica as ecr:ReplicateImage and never replicates
            # it further (distribution/call.py); the value names the source's region.
            "X-Cargobay-Replication": source_region or "1",
        }

    async def _request(
        self, method: str, path: str, what: str, *, ok: tuple[int, ...], **kwargs
    ) -> aiohttp.ClientResponse:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            response = await self.session.request(
                method, self.base + path, headers=headers, allow_redirects=False, **kwargs
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RemoteError(
                "DESTINATION_UNREACHABLE", f"{what}: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        if response.status not in ok:
            body = await response.text(errors="replace")
            response.release()
            raise _error_for(response.status, body, what)
        return response

    async def has_blob(self, name: str, digest: str) -> bool:
        try:
            response = await self._request(
                "HEAD", f"/v2/{name}/blobs/{digest}", f"HEAD blob {digest}", ok=(200, 404)
            )
        except RemoteError:
            return False  # an error here is not an answer: send the blob and let PUT decide
        response.release()
        return response.status == 200

    async def send_blob(self, name: str, digest: str, size: int, read: ReadBlob) -> None:
        """One monolithic upload (POST, then PUT with the streamed body and its digest)."""
        started = await self._request(
            "POST", f"/v2/{name}/blobs/uploads/", f"start upload of {digest}", ok=(202,)
        )
        location = started.headers.get("Location", "")
        started.release()
        if not location:
            raise RemoteError(
                "DESTINATION_ERROR", "the destination gave no upload location", retryable=True
            )
        if location.startswith(("http://", "https://")):
            # Only the path and query: the Host header (the account) must stay ours.
            location = "/" + location.split("://", 1)[1].split("/", 1)[1]
        separator = "&" if "?" in location else "?"
        finished = await self._request(
            "PUT",
            f"{location}{separator}digest={quote(digest, safe='')}",
            f"upload of {digest}",
            ok=(201,),
            data=read(digest, size),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        finished.release()

    async def put_manifest(
        self, name: str, reference: str, content: bytes, media_type: str, *, last: bool = False
    ):
        """PUT a manifest; `last` marks the PUT that completes the image (the destination then
        emits `ECR Replication Action` for it)."""
        headers = {"Content-Type": media_type}
        if last and self.source_region:
            headers["X-Cargobay-Replicated-Image"] = "1"
        response = await self._request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            f"manifest {reference}",
            ok=(201,),
            data=content,
            headers=headers,
        )
        response.release()

    async def push_image(
        self,
        name: str,
        digest: str,
        tag: str | None,
        read_manifest: ReadManifest,
        read_blob: ReadBlob,
        stats: PushStats | None = None,
    ) -> PushStats:
        """Copy the manifest `digest` (and, for an index, every child) with its blobs, then
        point `tag` at it."""
        top = stats is None  # children of an index are parts of the image, not images
        stats = stats or PushStats()
        content, media_type = await read_manifest(digest)
        parsed = parse_manifest(content, media_type)
        for child in parsed.manifests:
            await self.push_image(name, child.digest, None, read_manifest, read_blob, stats)
        for blob in parsed.blob_references():
            if await self.has_blob(name, blob.digest):
                stats.blobs_present += 1
                continue
            await self.send_blob(name, blob.digest, blob.size, read_blob)
            stats.blobs_sent += 1
            stats.bytes_sent += blob.size
        await self.put_manifest(name, digest, content, media_type, last=top and not tag)
        if tag:
            await self.put_manifest(name, tag, content, media_type, last=top)
        stats.manifests.append(digest)
        return stats
