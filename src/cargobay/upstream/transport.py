"""Requests to one upstream registry: authorization (anonymous, Basic, Docker bearer tokens),
redirects, and HTTP statuses mapped to the upstream error classes.

A request first goes out with whatever authorization is already known (a cached token for its
scope, or Basic once the registry asked for it); a 401 is answered from its `WWW-Authenticate`
challenge once. Redirects are followed by hand so that the Authorization header never leaves
the registry's origin (S3 presigned URLs refuse a second authentication, and a third party
must never see our token).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from cargobay.upstream.auth import (
    Challenge,
    CredentialProvider,
    Credentials,
    TokenCache,
    parse_challenge,
    token_from_answer,
)
from cargobay.upstream.errors import (
    BadResponse,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamUnavailable,
)
from cargobay.upstream.urls import UpstreamRegistry

MAX_REDIRECTS = 5
USER_AGENT = "cargobay-pull-through/1"
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15, sock_connect=15, sock_read=60)
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
_REDIRECTS = (301, 302, 303, 307, 308)
MAX_TOKEN_ANSWER = 1024 * 1024  # tokens are a few kB; a larger answer is refused, not buffered
# A response's receive buffer (aiohttp stops reading at twice this): at its 64 KiB default,
# every 256 KiB read of a blob paused and resumed the socket; measured at 1 MiB, with the
# client's 1 MiB blocks, a fill costs about 12 % less CPU.
READ_BUFFER = 1024 * 1024


class Transport:
    """The HTTP side of an UpstreamClient."""

    def __init__(
        self,
        registry: UpstreamRegistry,
        *,
        credentials: Credentials | None,
        credential_provider: CredentialProvider | None,
        token_cache: TokenCache | None,
        session: aiohttp.ClientSession | None,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self.registry = registry
        self.host = registry.host
        self._credentials = credentials
        self._provider = credential_provider
        self.tokens = token_cache or TokenCache()
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._basic = False  # the registry asked for Basic: send it up front from now on
        self._token_locks: dict[str, asyncio.Lock] = {}
        self.token_requests = 0

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def fetch(
        self, method: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> Exchange:
        """`async with transport.fetch(...) as response`; released on exit."""
        return Exchange(self, method, self.registry.url + path, scope, headers or {})

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, read_bufsize=READ_BUFFER
            )
        return self._session

    async def raw(self, method: str, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        # identity: the bytes we hash must be the bytes the upstream's digest covers.
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        try:
            return await self._http().request(method, url, headers=headers, allow_redirects=False)
        except NETWORK_ERRORS as exc:
            raise UpstreamUnavailable(
                f"cannot reach {urlsplit(url).netloc}: {exc!r}", upstream=self.host
            ) from None

    async def _current_credentials(self) -> Credentials | None:
        if self._provider is not None:
            return await self._provider()
        return self._credentials

    async def open(
        self, method: str, url: str, scope: str, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        authorization = await self._known_authorization(scope)
        response = await self.raw(method, url, _with_auth(headers, authorization))
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            response.release()
            authorization = await self._answer(challenge, scope, authorization)
            response = await self.raw(method, url, _with_auth(headers, authorization))
            if response.status == 401:
                response.release()
                raise Unauthorized("upstream refused the credentials", upstream=self.host)
        return await self._follow(response, method, headers, authorization)

    async def _known_authorization(self, scope: str) -> str | None:
        if self._basic:
            credentials = await self._current_credentials()
            return credentials.basic_header() if credentials else None
        token = self.tokens.get(self.host, scope)
        return f"Bearer {token}" if token else None

    async def _answer(self, challenge: Challenge | None, scope: str, sent: str | None) -> str:
        if challenge is None:
            raise Unauthorized("upstream asks for authentication", upstream=self.host)
        if challenge.scheme == "basic":
            credentials = await self._current_credentials()
            if credentials is None:
                raise Unauthorized("upstream requires credentials", upstream=self.host)
            if (sent or "").startswith("Basic "):
                raise Unauthorized("upstream refused the credentials", upstream=self.host)
            self._basic = True
            return credentials.basic_header()
        if challenge.scheme == "bearer" and challenge.realm:
            key = challenge.scope or scope
            if sent is not None:  # our cached token was refused: expired early or revoked
                self.tokens.forget(self.host, key)
                self.tokens.forget(self.host, scope)
            return "Bearer " + await self._token(challenge, key, scope)
        raise Unauthorized(
            f"unsupported authentication scheme {challenge.scheme!r}", upstream=self.host
        )

    async def _token(self, challenge: Challenge, key: str, scope: str) -> str:
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent requests for one scope share one token request
            token = self.tokens.get(self.host, key)
            if token is None:
                token, expires_in = await self._request_token(challenge, key)
                self.tokens.put(self.host, key, token, expires_in)
                if key != scope:  # so the next request for `scope` sends it up front
                    self.tokens.put(self.host, scope, token, expires_in)
            return token

    async def _request_token(self, challenge: Challenge, scope: str) -> tuple[str, float]:
        realm = urlsplit(challenge.realm)
        if realm.scheme not in ("https", "http") or not realm.netloc:
            raise BadResponse("token realm is not an http(s) URL", upstream=self.host)
        if realm.scheme == "http" and urlsplit(self.registry.url).scheme == "https":
            raise BadResponse("refusing a plain-http token realm", upstream=self.host)
        query = [(k, v) for k, v in (("service", challenge.service), ("scope", scope)) if v]
        separator = "&" if realm.query else "?"
        url = challenge.realm + (separator + urlencode(query) if query else "")
        credentials = await self._current_credentials()
        headers = {"Authorization": credentials.basic_header()} if credentials else {}
        self.token_requests += 1
        response = await self.raw("GET", url, headers)
        try:
            if response.status in (401, 403):
                raise Unauthorized(
                    f"token server {realm.netloc} refused the request ({response.status})",
                    upstream=self.host,
                )
            await self.expect(response, 200, "token")
            try:
                return token_from_answer(json.loads(await _read_capped(response, MAX_TOKEN_ANSWER)))
            except ValueError as exc:
                raise BadResponse(f"bad token answer: {exc}", upstream=self.host) from None
            except NETWORK_ERRORS as exc:
                raise UpstreamUnavailable(f"token answer: {exc!r}", upstream=self.host) from None
        finally:
            response.release()

    async def _follow(
        self,
        response: aiohttp.ClientResponse,
        method: str,
        headers: dict[str, str],
        authorization: str | None,
    ) -> aiohttp.ClientResponse:
        origin = _origin(self.registry.url)
        for _ in range(MAX_REDIRECTS):
            if response.status not in _REDIRECTS:
                return response
            location = response.headers.get("Location", "")
            url = urljoin(str(response.url), location)
            response.release()
            if not location or urlsplit(url).scheme not in ("http", "https"):
                raise BadResponse("redirect without a usable Location", upstream=self.host)
            same_origin = _origin(url) == origin
            response = await self.raw(
                method, url, _with_auth(headers, authorization if same_origin else None)
            )
        response.release()
        raise BadResponse("too many redirects", upstream=self.host)

    async def expect(self, response: aiohttp.ClientResponse, status: int, what: str) -> None:
        """Raise the error class for anything but `status`."""
        if response.status == status:
            return
        detail = ""
        if response.method != "HEAD":
            try:
                detail = (await response.content.read(2048)).decode(errors="replace").strip()
            except NETWORK_ERRORS:
                detail = ""
        message = f"{what}: upstream answered {response.status}" + (f": {detail}" if detail else "")
        if response.status == 404:
            raise NotFound(message, upstream=self.host)
        if response.status in (401, 403):
            raise Unauthorized(message, upstream=self.host)
        if response.status == 429:
            wait = retry_after(response.headers.get("Retry-After"))
            raise RateLimited(message, upstream=self.host, retry_after=wait)
        if response.status >= 500:
            raise UpstreamUnavailable(message, upstream=self.host)
        raise BadResponse(message, upstream=self.host)


class Exchange:
    """One request as an async context manager; the response is released on exit."""

    __slots__ = ("_args", "_response", "_transport")

    def __init__(self, transport: Transport, *args: object) -> None:
        self._transport = transport
        self._args = args
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self._response = await self._transport.open(*self._args)  # type: ignore[arg-type]
        return self._response

    async def __aexit__(self, *_: object) -> None:
        if self._response is not None:
            self._response.release()


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise ValueError("token answer too large")
        parts.append(chunk)
    return b"".join(parts)


def _with_auth(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    return {**headers, "Authorization": authorization} if authorization else headers


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port
