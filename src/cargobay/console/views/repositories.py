"""The repositories page: prefix search, sort and pages, authorized as DescribeRepositories
on the registry (what `aws ecr describe-repositories` without names needs)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargobay.console import ecr, queries
from cargobay.console.web import Visitor, page, render, services_of
from cargobay.ecr.context import EcrCall

PER_PAGE = 50
MAX_PREFIX = 256


def _page_number(value: str | None) -> int:
    try:
        number = int(value or "1")
    except ValueError:
        return 1
    return min(max(number, 1), 1_000_000)


@page
async def repositories(request: web.Request, visitor: Visitor) -> web.Response:
    services = services_of(request)
    prefix = request.query.get("prefix", "").strip()[:MAX_PREFIX]
    sort = request.query.get("sort", "name")
    if sort not in queries.SORTS:
        sort = "name"
    number = _page_number(request.query.get("page"))

    async def listing(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
        rows, total = await queries.repository_page(
            services.db, call.registry_id, prefix, sort, (number - 1) * PER_PAGE, PER_PAGE
        )
        return {"rows": rows, "total": total}

    found = await ecr.call(
        request, services, visitor.principal, "DescribeRepositories", {}, body=listing
    )
    pages = max(1, -(-found["total"] // PER_PAGE))
    return render(
        request,
        "repositories.html",
        title="Repositories",
        rows=found["rows"],
        total=found["total"],
        prefix=prefix,
        sort=sort,
        sorts=queries.SORTS,
        number=number,
        pages=pages,
    )
