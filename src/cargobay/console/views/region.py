"""The region picker: on a deployment serving several regions (`regions_served`), the visitor
chooses which one the console's pages show, as in the AWS console. The choice is a cookie; the
page it was made on is shown again in the new region."""

from __future__ import annotations

from aiohttp import web

from cargobay.console.ecr import ConsoleError
from cargobay.console.web import (
    REGION_COOKIE,
    Visitor,
    local_target,
    page,
    redirect,
    services_of,
    set_cookie,
)

YEAR = 365 * 24 * 3600


@page
async def choose(request: web.Request, visitor: Visitor) -> web.Response:
    form = await request.post()
    region = form.get("region")
    settings = services_of(request).settings
    if not isinstance(region, str) or region not in settings.served_regions:
        shown = region if isinstance(region, str) and len(region) <= 32 else "that region"
        served = ", ".join(settings.served_regions)
        raise ConsoleError(
            400, "InvalidParameterException", f"{shown!s} is not served here (served: {served})."
        )
    response = redirect(local_target(form.get("next")))
    set_cookie(request, response, REGION_COOKIE, region, max_age=YEAR)
    return response
