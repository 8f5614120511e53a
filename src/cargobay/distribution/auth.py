"""Who is calling `/v2/`: HTTP Basic with an access key id and secret."""

from __future__ import annotations

import base64
import binascii
import logging
import re

from aiohttp import web

from cargobay.errors import Unauthenticated
from cargobay.iam.principal import Principal
from cargobay.iam.tokens import TokenClaims, TokenError, blob_scope
from cargobay.registry.services import Services

log = logging.getLogger("cargobay.auth")
# The user name `docker login` uses with an ECR authorization token.
ECR_USER = "AWS"
# The path of a GetDownloadUrlForLayer URL (the request path, already percent-decoded).
# <account>.dkr.ecr.<region>.<suffix>, the repositoryUri host form.
_ECR_HOST = re.compile(r"^([0-9]{12})\.dkr\.ecr\.[a-z0-9-]+\.")
_REGISTRY_ID = re.compile(r"[0-9]{12}")
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


def registry_for(request: web.Request, principal_account: str) -> str:
    """The registry (account) a `/v2/` request addresses: the account named in an ECR-style
    host; else, for the download URLs GetDownloadUrlForLayer hands out (which must work on any
    host name), the `registryId` they carry; else the caller's own. Authorization still
    decides what the caller may do there."""
    host_match = _ECR_HOST.match(request.host or "")
    if host_match:
        return host_match.group(1)
    query_registry = request.query.get("registryId", "") if "token" in request.query else ""
    if _REGISTRY_ID.fullmatch(query_registry):
        return query_registry
    return principal_account


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
            # The registry the request will act on, decided as the handlers decide it.
            registry_id = registry_for(request, claims.account_id)
            # Only a download token, and only for the blob it was issued for.
            region = request.query.get("region", "")  # the repository's, when not the default
            if claims.scope != blob_scope(registry_id, blob["name"], blob["digest"], region):
                log.info("refused a download token outside its scope")
                raise Unauthenticated("the token is not valid for this download")
            return await _token_principal(services, claims)
        raise Unauthenticated()
    user, secret = pair
    if user == ECR_USER:
        claims = await _token_claims(services, secret)
        if claims.scope:  # a download URL's token is not a login
            log.info("refused a download token used as a login")
            raise Unauthenticated("authorization token is invalid or expired")
        return await _token_principal(services, claims)
    principal = await services.credentials.verify(user, secret)
    if principal is None:
        raise Unauthenticated("invalid credentials")
    return principal


async def _token_principal(services: Services, claims: TokenClaims) -> Principal:
    """Who a valid token speaks for now: the key it was issued for must still be Active, and
    the user's current standing (not what the token recorded) decides its rights."""
    principal = await services.credentials.active_principal(claims.access_key_id)
    if principal is None or (principal.account_id, principal.user_name) != (
        claims.account_id,
        claims.user_name,
    ):
        log.info("refused a token whose access key was revoked")
        raise Unauthenticated("authorization token is invalid or expired")
    return principal


async def _token_claims(services: Services, token: str) -> TokenClaims:
    try:
        return await services.verify_token(token)
    except TokenError as exc:
        log.info("refused an authorization token: %s", exc.reason)
        raise Unauthenticated("authorization token is invalid or expired") from None
