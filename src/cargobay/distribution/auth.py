"""Who is calling `/v2/`: HTTP Basic with an access key id and secret."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from cargobay.iam.credentials import CredentialStore
from cargobay.iam.principal import Principal
from cargobay.oci.errors import Unauthorized


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


async def authenticate(request: web.Request, credentials: CredentialStore) -> Principal:
    """The caller's principal; anonymous or wrong credentials are UNAUTHORIZED."""
    pair = basic_credentials(request)
    if pair is None:
        raise Unauthorized()
    principal = await credentials.verify(*pair)
    if principal is None:
        raise Unauthorized("invalid credentials")
    return principal
