"""Who is calling `/v2/`: HTTP Basic with an access key id and secret."""

from __future__ import annotations

import base64
import binascii
import logging
import re

from aiohttp import web

from cargobay.iam.principal import Principal
from cargobay.iam.tokens import TokenClaims, TokenError, blob_scope
from cargobay.oci.errors import Unauthorized
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.auth")
# The user name `docker login` uses with an ECR authorization token.
ECR_USER = "AWS"
# The path of a GetDownloadUrlForLayer URL (the request path, already percent-decoded).
_DOWNLOAD_PATH = re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)", re.S)


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
    authorization token; and, for the download URLs GetDownloadUrlForLayer hands out, a
    download token (scoped to that one blob) in the `token` query parameter of its GET.
    """
    pair = basic_credentials(request)
    if pair is None:
        token = request.query.get("token")
        blob = _DOWNLOAD_PATH.fullmatch(request.path)
        if token and request.method == "GET" and blob:
            claims = await _token_claims(services, token)
            registry_id = request.query.get("registryId") or claims.account_id
            # Only a download token, and only for the blob it was issued for.
            if claims.scope != blob_scope(registry_id, blob["name"], blob["digest"]):
                log.info("refused a download token outside its scope")
                raise Unauthorized("the token is not valid for this download")
            return claims.principal
        raise Unauthorized()
    user, secret = pair
    if user == ECR_USER:
        claims = await _token_claims(services, secret)
        if claims.scope:  # a download URL's token is not a login
            log.info("refused a download token used as a login")
            raise Unauthorized("authorization token is invalid or expired")
        return claims.principal
    principal = await services.credentials.verify(user, secret)
    if principal is None:
        raise Unauthorized("invalid credentials")
    return principal


async def _token_claims(services: Services, token: str) -> TokenClaims:
    try:
        return await services.verify_token(token)
    except TokenError as exc:
        log.info("refused an authorization token: %s", exc.reason)
        raise Unauthorized("authorization token is invalid or expired") from None
