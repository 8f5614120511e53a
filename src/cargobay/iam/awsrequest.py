"""What both AWS-protocol front doors (the ECR JSON API and the IAM Query API) do with a request
before their own protocol starts: read the whole body within a limit, and find the principal
whose access key signed it (SigV4)."""

from __future__ import annotations

from aiohttp import web

from cargobay import regions as served
from cargobay.iam import sigv4
from cargobay.iam.credentials import CredentialStore, KeyRecord
from cargobay.iam.principal import Principal


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body. `StreamReader.read(n)` returns what is buffered, up to n bytes, so a
    large body arrives in many reads; stop as soon as it exceeds `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


async def signed_principal(
    request: web.Request,
    credentials: CredentialStore,
    body: bytes,
    service: str,
    regions: tuple[str, ...] | None = None,
    *,
    default_region: str | None = None,
) -> Principal:
    """The principal of an active access key whose SigV4 signature covers this request and is
    scoped to `service` (and one of `regions`, when given); `sigv4.SigV4Error` (with AWS's
    code, message and status) otherwise. With `default_region` (a regional service's door),
    the request is served in the region its signature is scoped to (`cargobay.regions`)."""
    found: dict[str, KeyRecord] = {}

    async def secret_for(key_id: str) -> str | None:
        record = await credentials.lookup(key_id)
        if record is None or not record.active:
            return None
        found[key_id] = record
        return record.secret

    identity = await sigv4.verify(
        request.method,
        request.rel_url.raw_path,
        request.query_string,
        request.headers,
        body,
        secret_for,
        expected_service=service,
        expected_regions=regions,
    )
    if default_region is not None:
        served.use(identity.region, default_region)
    return found[identity.access_key_id].principal
