"""What both AWS-protocol front doors (the ECR JSON API and the IAM Query API) do with a request
before their own protocol starts: read the whole body within a limit, and find the principal
whose access key signed it (SigV4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from cargobay import regions as served
from cargobay.iam import sigv4
from cargobay.iam.credentials import CredentialStore, KeyRecord
from cargobay.iam.principal import Principal


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body. `StreamReader.read(n)` returns what is buffered, up to n bytes, so a
    large body arrives in many reads; stop as soon as it exceeds `limit`. A body that has all
    arrived (an API call's usually has, with its headers) is taken at once."""
    content = request.content
    if content.is_eof():
        whole = content.read_nowait()
        if len(whole) > limit:
            raise BodyTooLarge
        return whole
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    while chunk := await content.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        if content.is_eof():  # all of it (an API call's body comes whole): no empty read
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _verify(
    request: web.Request,
    body: bytes,
    secret_for: Callable[[str], Awaitable[str | None]],
    service: str,
    regions: tuple[str, ...] | None,
) -> sigv4.SignedIdentity:
    return await sigv4.verify(
        request.method,
        request.rel_url.raw_path,
        request.query_string,
        request.headers,
        body,
        secret_for,
        expected_service=service,
        expected_regions=regions,
    )


async def signed_principal(
    request: web.Request,
    credentials: CredentialStore,
    body: bytes,
    service: str,
    regions: tuple[str, ...] | None = None,
    *,
    default_region: str | None = None,
    reload: bool = False,
) -> Principal:
    """The principal of an active access key whose SigV4 signature covers this request and is
    scoped to `service` (and one of `regions`, when given); `sigv4.SigV4Error` (with AWS's
    code, message and status) otherwise. With `default_region` (a regional service's door),
    the request is served in the region its signature is scoped to (`cargobay.regions`).
    With `reload`, the key's row is read even if one is remembered (`CredentialStore.reload`)."""
    found: dict[str, KeyRecord] = {}
    load = credentials.reload if reload else credentials.lookup

    async def secret_for(key_id: str) -> str | None:
        record = await load(key_id)
        if record is None or not record.active:
            return None
        found[key_id] = record
        return record.secret

    identity = await _verify(request, body, secret_for, service, regions)
    if default_region is not None:
        served.use(identity.region, default_region)
    return found[identity.access_key_id].principal


async def signed_caller(
    request: web.Request,
    credentials: CredentialStore,
    body: bytes,
    service: str,
    regions: tuple[str, ...] | None = None,
    *,
    default_region: str | None = None,
) -> tuple[Principal, str | None]:
    """`signed_principal` without the credentials-generation read when the key's row is
    remembered: the principal, and the verifier (`KeyRecord.verifier`) of the remembered
    secret it was verified with, which the caller must have confirmed (with the key's status
    and user) by a statement before answering anything, or else call `signed_principal(...,
    reload=True)`. None when the usual read was made (nothing left to confirm). A signature
    that the remembered secret does not verify is checked again with the key's row re-read
    (the key may have been re-installed with a new secret), never refused on it."""
    remembered = False
    try:
        signed = sigv4.signed_request(
            request.method,
            request.rel_url.raw_path,
            request.query_string,
            request.headers,
            body,
            expected_service=service,
            expected_regions=regions,
        )
        # Without a coroutine or closure per call: the remembered row's secret (if any).
        record = credentials.remembered(signed.access_key_id)
        if record is not None and record.active:
            remembered = True
        else:
            record = await credentials.lookup(signed.access_key_id)
        secret = record.secret if record is not None and record.active else None
        identity = sigv4.check(signed, secret)
    except sigv4.SigV4Error:
        if not remembered:
            raise
        principal = await signed_principal(
            request, credentials, body, service, regions, default_region=default_region, reload=True
        )
        return principal, None
    if default_region is not None:
        served.use(identity.region, default_region)
    assert record is not None  # `check` refused a missing key
    return record.principal, (record.verifier if remembered else None)
