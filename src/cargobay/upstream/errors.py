"""What can go wrong talking to an upstream registry, as distinct classes: the cache serves a
stale copy on RateLimited and UpstreamUnavailable, and reports the others to the client."""

from __future__ import annotations


class UpstreamError(Exception):
    """Any failure fetching from an upstream; `upstream` names the registry host."""

    def __init__(self, message: str, *, upstream: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.upstream = upstream


class NotFound(UpstreamError):
    """The upstream has no such repository, manifest or blob (404)."""


class Unauthorized(UpstreamError):
    """The upstream refused our credentials, or asked for some we do not have (401/403)."""


class RateLimited(UpstreamError):
    """The upstream answered 429; `retry_after` is its Retry-After in seconds, if it gave one."""

    def __init__(self, message: str, *, upstream: str = "", retry_after: float | None = None):
        super().__init__(message, upstream=upstream)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """5xx, a refused or broken connection, a timeout, or a body cut short."""


class DigestMismatch(UpstreamError):
    """The bytes the upstream sent do not hash to the digest asked for or announced."""


class BadResponse(UpstreamError):
    """An answer outside the protocol (an unexpected status, a malformed header or token)."""


class InvalidUpstreamUrl(ValueError):
    """An upstream registry URL the pull-through cache does not accept."""
