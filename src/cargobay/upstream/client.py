"""An OCI distribution client for one upstream registry: ping, manifests by tag or digest, and
blobs streamed with their digest verified before the last chunk is handed over.

The digest of the bytes is authoritative: a manifest whose bytes do not hash to the digest
asked for, or to the `Docker-Content-Digest` the upstream announced, is an error, and so is a
blob whose bytes do not hash to its digest. Authentication, redirects and error statuses are
the transport's job (`transport.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from cargobay.oci.digest import Digest, compute, is_digest, parse_digest
from cargobay.oci.errors import RegistryError
from cargobay.upstream.auth import CredentialProvider, Credentials, TokenCache
from cargobay.upstream.errors import BadResponse, DigestMismatch, UpstreamUnavailable
from cargobay.upstream.transport import DEFAULT_TIMEOUT, NETWORK_ERRORS, Transport
from cargobay.upstream.urls import UpstreamRegistry, parse_upstream_url, upstream_repository

# Every manifest type the cache keeps, in the Accept header of each manifest request.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.artifact.manifest.v1+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what Distribution accepts


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What a HEAD says about a manifest."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest's bytes, their (verified) digest and media type."""

    digest: str
    media_type: str
    content: bytes


class UpstreamClient:
    """One upstream registry. `credentials` (static) or `credential_provider` (awaited before
    each authentication, e.g. `EcrTokenProvider`) serve Basic auth and token requests; without
    either the client is anonymous. Pass a shared `token_cache` and `session` to reuse tokens
    and connections across clients. Close with `close()` or `async with`."""

    def __init__(
        self,
        registry: UpstreamRegistry | str,
        *,
        credentials: Credentials | None = None,
        credential_provider: CredentialProvider | None = None,
        token_cache: TokenCache | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        chunk_size: int = 1024 * 1024,
    ) -> None:
        if not isinstance(registry, UpstreamRegistry):
            registry = parse_upstream_url(registry)
        self.registry = registry
        self.chunk_size = chunk_size
        self.transport = Transport(
            registry,
            credentials=credentials,
            credential_provider=credential_provider,
            token_cache=token_cache,
            session=session,
            timeout=timeout,
        )

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    @property
    def token_requests(self) -> int:
        """Token-server requests this client made (each cached until it expires)."""
        return self.transport.token_requests

    def repository(self, name: str) -> str:
        """`name` as the upstream knows it (Docker Hub's `library/` for official images)."""
        return upstream_repository(self.registry, name)

    def _error(self, cls: type[Exception], message: str) -> Exception:
        return cls(message, upstream=self.registry.host)  # type: ignore[call-arg]

    async def ping(self) -> None:
        """`GET /v2/`, authenticating if asked: proves the upstream speaks the protocol and,
        with credentials, that it accepts them."""
        async with self.transport.fetch("GET", "/v2/", scope="") as response:
            await self.transport.expect(response, 200, "registry")

    async def head_manifest(self, repository: str, reference: str) -> ManifestInfo:
        """A manifest's digest, media type and size from a HEAD (from a GET when the upstream
        does not announce `Docker-Content-Digest`)."""
        name = self.repository(repository)
        if is_digest(reference):
            _requested_digest(reference)
        path = f"/v2/{name}/manifests/{reference}"
        async with self.transport.fetch("HEAD", path, _pull(name), _accept()) as response:
            await self.transport.expect(response, 200, f"manifest {name}:{reference}")
            announced = response.headers.get("Docker-Content-Digest", "")
            media_type = _media_type(response)
            size = response.content_length
        if not announced or size is None:
            manifest = await self.get_manifest(repository, reference)
            return ManifestInfo(manifest.digest, manifest.media_type, len(manifest.content))
        self._announced(announced)
        if is_digest(reference) and announced != reference:
            raise self._error(
                DigestMismatch, f"asked for manifest {reference}, upstream announced {announced}"
            )
        return ManifestInfo(announced, media_type, size)

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """A manifest by tag or digest, its digest verified against its bytes."""
        name = self.repository(repository)
        algorithm = _requested_digest(reference).algorithm if is_digest(reference) else "sha256"
        path = f"/v2/{name}/manifests/{reference}"
        async with self.transport.fetch("GET", path, _pull(name), _accept()) as response:
            await self.transport.expect(response, 200, f"manifest {name}:{reference}")
            content = await self._read_manifest(response)
            announced = response.headers.get("Docker-Content-Digest", "")
            media_type = _media_type(response)
        actual = compute(content, algorithm)
        if is_digest(reference) and actual != reference:
            raise self._error(
                DigestMismatch, f"manifest bytes hash to {actual}, not the requested {reference}"
            )
        if announced and compute(content, self._announced(announced).algorithm) != announced:
            raise self._error(
                DigestMismatch, f"manifest bytes do not match Docker-Content-Digest {announced}"
            )
        return Manifest(actual, media_type, content)

    async def _read_manifest(self, response: aiohttp.ClientResponse) -> bytes:
        if (response.content_length or 0) > MAX_MANIFEST_BYTES:
            raise self._error(BadResponse, "upstream manifest is larger than 4 MiB")
        parts: list[bytes] = []
        total = 0
        try:
            async for chunk in response.content.iter_chunked(64 * 1024):
                total += len(chunk)
                if total > MAX_MANIFEST_BYTES:
                    raise self._error(BadResponse, "upstream manifest is larger than 4 MiB")
                parts.append(chunk)
        except NETWORK_ERRORS as exc:
            raise self._error(UpstreamUnavailable, f"reading a manifest failed: {exc!r}") from None
        return b"".join(parts)

    async def blob_size(self, repository: str, digest: str) -> int:
        """The size of a blob from a HEAD (NotFound when the upstream lacks it)."""
        name = self.repository(repository)
        _requested_digest(digest)
        async with self.transport.fetch("HEAD", f"/v2/{name}/blobs/{digest}", _pull(name)) as r:
            await self.transport.expect(r, 200, f"blob {digest}")
            if r.content_length is None:
                raise self._error(BadResponse, "blob HEAD without Content-Length")
            return r.content_length

    async def get_blob(
        self, repository: str, digest: str, *, size: int | None = None
    ) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks. The last chunk is held back until the whole body hashes
        to `digest` (and is `size` bytes long, if given): on a mismatch DigestMismatch comes
        instead of it, so a consumer that commits when the iteration ends never commits bad
        bytes. Call `aclose()` on the iterator when abandoning it early."""
        name = self.repository(repository)
        parsed = _requested_digest(digest)
        async with self.transport.fetch("GET", f"/v2/{name}/blobs/{digest}", _pull(name)) as r:
            await self.transport.expect(r, 200, f"blob {digest}")
            hasher = parsed.hasher()
            total = 0
            held = b""
            try:
                async for block in _blocks(r.content, self.chunk_size):
                    total += len(block)
                    if size is not None and total > size:
                        break
                    # On the loop: handing each block to a thread to hash was measured at
                    # 0.3 CPU s/GiB more (what a pull through the cache competes for).
                    hasher.update(block)
                    if held:
                        yield held
                    held = block
            except NETWORK_ERRORS as exc:
                raise self._error(
                    UpstreamUnavailable, f"blob {digest} cut short: {exc!r}"
                ) from None
            if size is not None and total != size:
                raise self._error(DigestMismatch, f"blob {digest} is not {size} bytes long")
            if f"{parsed.algorithm}:{hasher.hexdigest()}" != digest:
                raise self._error(DigestMismatch, f"blob bytes do not hash to {digest}")
            if held:
                yield held

    def _announced(self, value: str) -> Digest:
        try:
            return parse_digest(value)
        except RegistryError:
            raise self._error(BadResponse, f"upstream sent an invalid digest {value!r}") from None


async def _blocks(body: aiohttp.StreamReader, size: int) -> AsyncIterator[bytes]:
    """The body in blocks of at least `size` bytes (the last may be shorter). The socket
    gives a few hundred kB at a time, and every piece handed on costs the tee, the store and
    the client's response a round of Python work; joining them costs one copy."""
    pieces: list[bytes] = []
    pending = 0
    async for piece in body.iter_any():
        pieces.append(piece)
        pending += len(piece)
        if pending >= size:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces, pending = [], 0
    if pieces:
        yield b"".join(pieces)


def _requested_digest(digest: str) -> Digest:
    """A digest the caller asked for; ValueError when it is not one."""
    try:
        return parse_digest(digest)
    except RegistryError as exc:
        raise ValueError(f"{digest!r}: {exc.message}") from None


def _pull(name: str) -> str:
    return f"repository:{name}:pull"


def _accept() -> dict[str, str]:
    return {"Accept": ", ".join(MANIFEST_TYPES)}


def _media_type(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip()
