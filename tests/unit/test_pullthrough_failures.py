"""The failure codes of `ECR Pull Through Cache Action` FAILED events: each kind of upstream
failure has its own code (most specific class first), the rest is INTERNAL_FAILURE."""

from __future__ import annotations

import pytest

from cargobay.errors import SecretNotFound
from cargobay.pullthrough.failures import MAX_REASON, failure_code, failure_reason
from cargobay.upstream import errors


@pytest.mark.parametrize(
    "exc,code",
    [
        (errors.Unauthorized("401 from upstream"), "UPSTREAM_AUTHENTICATION_FAILED"),
        (errors.RateLimited("429"), "UPSTREAM_RATE_LIMITED"),
        (errors.UpstreamUnavailable("connection refused"), "UPSTREAM_UNAVAILABLE"),
        (errors.NotFound("404"), "UPSTREAM_IMAGE_NOT_FOUND"),
        (errors.DigestMismatch("bad bytes"), "DIGEST_MISMATCH"),
        (errors.BadResponse("odd"), "UPSTREAM_BAD_RESPONSE"),
        (SecretNotFound("gone"), "SECRET_NOT_FOUND"),
        (OSError("disk full"), "INTERNAL_FAILURE"),
    ],
)
def test_each_failure_has_its_code(exc: Exception, code: str) -> None:
    assert failure_code(exc) == code
    assert failure_reason(exc).startswith(type(exc).__name__ + ": ")


def test_a_reason_is_bounded() -> None:
    assert len(failure_reason(errors.BadResponse("x" * 5000))) == MAX_REASON
