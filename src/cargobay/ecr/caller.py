"""Who signed an ECR API call, without the credentials-generation read where the call's one
statement confirms the caller's key anyway (`registry.ecrreads`).

For `CONFIRMED_BY_STATEMENT`, the signature is verified with the key's remembered row
(`iam.awsrequest.signed_caller`) and the statement that authorizes the call re-reads the key's
status, user and secret verifier: the call answers nothing before it did. When it did not (the
key was deactivated, deleted or re-installed with another secret, or the call failed before its
statement), the call goes the long way: the generation and the key's row are read again, the
signature verified again, and the call authorized again. Only rows are remembered, never a
decision.
"""

from __future__ import annotations

from aiohttp import web

from cargobay.config import Settings
from cargobay.ecr import errors
from cargobay.ecr.context import ONE_STATEMENT
from cargobay.iam.awsrequest import signed_caller, signed_principal
from cargobay.iam.principal import Principal
from cargobay.iam.sigv4 import SigV4Error
from cargobay.registry.services import Services

# The operations whose one statement confirms the caller's remembered key row: every call on
# one repository whose authorization reads it with one statement (`ecr.context.ONE_STATEMENT`),
# so for the writes too the statement runs before anything is written.
CONFIRMED_BY_STATEMENT = ONE_STATEMENT


_SERVED: dict[tuple[str, str], tuple[str, ...]] = {}


def _served(settings: Settings) -> tuple[str, ...]:
    """`settings.served_regions`, parsed once per (region, regions_served) text."""
    key = (settings.region, settings.regions_served)
    served = _SERVED.get(key)
    if served is None:
        served = _SERVED[key] = settings.served_regions
    return served


def _refused(exc: SigV4Error) -> errors.EcrError:
    return errors.EcrError(exc.code, exc.message, exc.status)


async def signed(
    request: web.Request, services: Services, body: bytes, operation: str
) -> tuple[Principal, str | None]:
    """The caller, and the verifier its statement must confirm (None: nothing to confirm)."""
    settings = services.settings
    args = (request, services.credentials, body, "ecr", _served(settings))
    try:
        if operation in CONFIRMED_BY_STATEMENT:
            return await signed_caller(*args, default_region=settings.region)
        return await signed_principal(*args, default_region=settings.region), None
    except SigV4Error as exc:
        raise _refused(exc) from None


async def confirmed(request: web.Request, services: Services, body: bytes) -> Principal:
    """The long way: the caller with the generation and the key's row read again."""
    settings = services.settings
    try:
        return await signed_principal(
            request,
            services.credentials,
            body,
            "ecr",
            settings.served_regions,
            default_region=settings.region,
            reload=True,
        )
    except SigV4Error as exc:
        raise _refused(exc) from None
