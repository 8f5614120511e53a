"""Authenticating to an upstream registry: credentials, the `WWW-Authenticate` challenge, the
Docker token flow's token cache, and ECR's GetAuthorizationToken.

Secrets never appear in exception messages or reprs: a failed token request reports only the
realm and status.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# Tokens without `expires_in` live 60 s (the token spec's default and minimum).
DEFAULT_TOKEN_TTL = 60.0
# Renew this long before a token (or an ECR password) expires, so it never dies in flight.
EXPIRY_MARGIN = 10.0

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password (or access token) for Basic auth and token requests."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


# Called before each authentication; returns current credentials (an ECR provider renews its
# authorization token when it nears expiry).
CredentialProvider = Callable[[], Awaitable[Credentials]]


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header; None when it has none."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        params[match.group(1).lower()] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


class TokenCache:
    """Bearer tokens per (registry, scope) until their `expires_in` elapses. One cache may be
    shared by every client of a process, so concurrent pulls reuse one token."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, registry: str, scope: str) -> str | None:
        entry = self._tokens.get((registry, scope))
        if entry is None:
            return None
        token, expires_at = entry
        if self._clock() >= expires_at:
            del self._tokens[(registry, scope)]
            return None
        return token

    def put(self, registry: str, scope: str, token: str, expires_in: float) -> None:
        ttl = max(expires_in, DEFAULT_TOKEN_TTL) - EXPIRY_MARGIN
        self._tokens[(registry, scope)] = (token, self._clock() + max(ttl, 1.0))

    def forget(self, registry: str, scope: str) -> None:
        self._tokens.pop((registry, scope), None)


def token_from_answer(answer: object) -> tuple[str, float]:
    """(token, expires_in) from a token endpoint's JSON; ValueError when it holds no token."""
    if not isinstance(answer, dict):
        raise ValueError("token answer is not a JSON object")
    token = answer.get("token") or answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("token answer holds neither token nor access_token")
    expires_in = answer.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = DEFAULT_TOKEN_TTL
    return token, float(expires_in)
