"""Who is calling `/v2/`: HTTP Basic with an access key id and secret."""

from __future__ import annotations

import base64
import binascii
import logging

from aiohttp import web

from cargobay.iam.principal import Principal
from cargobay.iam.tokens import TokenError
from cargobay.oci.errors import Unauthorized
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.auth")
# The user name `docker login` uses with an ECR authorization token.
ECR_USER = "AWS"


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


async def authenticate(request: web.Request, services: Services) -> Principal:
    """The caller's principal; anonymous or wrong credentials are UNAUTHORIZED.

    Accepted: Basic with an access key id and secret; Basic `AWS:<token>` with an ECR
    authorization token; and, for the download URLs GetDownloadUrlForLayer hands out, a token
    in the `token` query parameter of a blob GET.
    """
    pair = basic_credentials(request)
    if pair is None:
        token = request.query.get("token")
        if token and request.method == "GET" and "/blobs/sha" in request.path:
            return await _token_principal(services, token)
        raise Unauthorized()
    user, secret = pair
    if user == ECR_USER:
        return await _token_principal(services, secret)
    principal = await services.credentials.verify(user, secret)
    if principal is None:
        raise Unauthorized("invalid credentials")
    return principal


async def _token_principal(services: Services, token: str) -> Principal:
    try:
        claims = await services.verify_token(token)
    except TokenError as exc:
        log.info("refused an authorization token: %s", exc.reason)
        raise Unauthorized("authorization token is invalid or expired") from None
    return claims.principal
