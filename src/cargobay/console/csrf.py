"""CSRF tokens: every console form carries one, and a POST without the right one is refused.

A signed-in form's token is an HMAC of the session id (which lives only in an HttpOnly cookie),
so a page on another site can neither read nor compute it. The sign-in form, before any
session exists, uses a double-submit token: a random cookie echoed in a hidden field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

FIELD = "csrf_token"


def session_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"cargobay-console-csrf", hashlib.sha256).hexdigest()


def new_signin_token() -> str:
    return secrets.token_urlsafe(32)


def matches(expected: str | None, presented: object) -> bool:
    """Constant-time comparison; a missing or non-text token never matches."""
    if not expected or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
