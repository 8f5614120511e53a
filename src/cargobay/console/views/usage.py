"""The usage page (a table rendered here, a chart drawn by static/console.js from
`usage.json`) with the cost at the deployment's prices. Usage is read as the registry's
repositories are listed: authorized as ecr:DescribeRepositories on the registry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargobay.console import ecr
from cargobay.console import usage as read_model
from cargobay.console.web import HEADERS, Visitor, page, render, services_of
from cargobay.ecr.context import EcrCall
from cargobay.registry.usage import cost

DAYS = 30


async def _usage(request: web.Request, visitor: Visitor) -> dict[str, Any]:
    services = services_of(request)
    settings = services.settings

    async def read(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
        days = await read_model.series(services.db, call.registry_id, DAYS)
        repos = await read_model.by_repository(services.db, call.registry_id, days["days"][0])
        prices = (settings.price_per_gb_month, settings.price_per_gb_transferred)
        for repo in repos:
            repo["cost"] = cost(repo["stored_bytes"], repo["transferred_bytes"], *prices)
        stored = sum(r["stored_bytes"] for r in repos)
        sent = sum(days["transferred"])
        return {
            **days,
            "repositories": repos,
            "totals": {"stored_bytes": stored, "transferred_bytes": sent},
            "cost": cost(stored, sent, *prices),
            "prices": {"per_gb_month": prices[0], "per_gb_transferred": prices[1]},
        }

    return await ecr.call(
        request, services, visitor.principal, "DescribeRepositories", {}, body=read
    )


@page
async def usage_page(request: web.Request, visitor: Visitor) -> web.Response:
    return render(request, "usage.html", title="Usage", usage=await _usage(request, visitor))


@page
async def usage_data(request: web.Request, visitor: Visitor) -> web.Response:
    try:
        body = await _usage(request, visitor)
    except ecr.ConsoleError as exc:
        body, status = {"error": exc.code, "message": exc.message}, exc.status
    else:
        status = 200
    return web.json_response(body, status=status, headers=HEADERS)
