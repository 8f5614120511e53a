"""Credentials for an `ecr` upstream: ECR's GetAuthorizationToken, SigV4-signed with botocore's
signer against the upstream's API endpoint (AWS, or another cargobay). The answer's token is
base64 `AWS:<password>`, valid until `expiresAt`; the provider keeps it until shortly before."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from cargobay.upstream.auth import EXPIRY_MARGIN, Credentials
from cargobay.upstream.errors import (
    BadResponse,
    RateLimited,
    Unauthorized,
    UpstreamError,
    UpstreamUnavailable,
)

TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
_AUTH_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
     "ExpiredTokenException", "InvalidClientTokenId", "IncompleteSignature",
     "MissingAuthenticationToken", "SignatureDoesNotMatch"}
)  # fmt: skip
_THROTTLING = frozenset({"ThrottlingException", "TooManyRequestsException"})


@dataclass(frozen=True, slots=True)
class AwsKeys:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def signed_request(
    endpoint_url: str, region: str, keys: AwsKeys, registry_id: str | None = None
) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of a SigV4-signed GetAuthorizationToken call."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    url = endpoint_url.rstrip("/") + "/"
    body = json.dumps({"registryIds": [registry_id]} if registry_id else {}).encode()
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET},
    )
    credentials = BotoCredentials(keys.access_key_id, keys.secret_access_key, keys.session_token)
    SigV4Auth(credentials, "ecr", region).add_auth(request)
    return url, dict(request.headers.items()), body


def credentials_from_answer(answer: object) -> tuple[Credentials, float]:
    """(Basic credentials, expiresAt epoch seconds) from a GetAuthorizationToken answer."""
    try:
        data = answer["authorizationData"][0]  # type: ignore[index]
        user, sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        expires_at = float(data.get("expiresAt") or time.time() + 3600)
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError):
        raise BadResponse("GetAuthorizationToken answer holds no authorization token") from None
    if not sep or not user:
        raise BadResponse("GetAuthorizationToken token is not user:password")
    return Credentials(user, password), expires_at


class EcrTokenProvider:
    """An async credential provider for `UpstreamClient` backed by GetAuthorizationToken."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        keys: AwsKeys,
        *,
        registry_id: str | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`endpoint_url` is the ECR API (`https://api.ecr.<region>.amazonaws.com`, or a
        cargobay's URL); `registry_id` asks for another account's registry."""
        self.endpoint_url = endpoint_url
        self.registry_id = registry_id
        self.region = region
        self._keys = keys
        self._session = session
        self._clock = clock
        self._cached: tuple[Credentials, float] | None = None
        self._lock = asyncio.Lock()
        self.requests = 0  # GetAuthorizationToken calls made (for tests and metrics)

    async def __call__(self) -> Credentials:
        async with self._lock:
            if self._cached is not None and self._clock() < self._cached[1] - EXPIRY_MARGIN:
                return self._cached[0]
            self._cached = await self._fetch()
            return self._cached[0]

    async def _fetch(self) -> tuple[Credentials, float]:
        url, headers, body = signed_request(
            self.endpoint_url, self.region, self._keys, self.registry_id
        )
        self.requests += 1
        owned = self._session is None
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                error_header = response.headers.get("x-amzn-ErrorType")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"ECR endpoint unreachable: {exc}") from None
        finally:
            if owned:
                await session.close()
        if status == 200:
            try:
                return credentials_from_answer(json.loads(text))
            except json.JSONDecodeError:
                raise BadResponse("GetAuthorizationToken answered non-JSON") from None
        kind = _error_type(text, error_header)
        message = f"GetAuthorizationToken answered {status} {kind}".strip()
        if status in (401, 403) or kind in _AUTH_ERRORS:
            raise Unauthorized(message)
        if status == 429 or kind in _THROTTLING:
            raise RateLimited(message, retry_after=_seconds(retry_after))
        if status >= 500:
            raise UpstreamUnavailable(message)
        raise UpstreamError(message)


def _error_type(text: str, header: str | None) -> str:
    """The AWS error code of a JSON 1.1 error answer (`__type`, maybe `prefix#Code`)."""
    kind = header or ""
    if not kind:
        try:
            answer = json.loads(text)
            kind = str(answer.get("__type", "")) if isinstance(answer, dict) else ""
        except json.JSONDecodeError:
            kind = ""
    return kind.split(":")[0].rsplit("#", 1)[-1]


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
