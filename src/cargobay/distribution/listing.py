"""`/v2/`'s listings: the base endpoint, the catalog and a repository's tags, paginated with
`n`, `last` and a `Link` to the next page as the distribution-spec says."""

from __future__ import annotations

import json
from urllib.parse import quote

from aiohttp import web

from cargobay.distribution.call import Call
from cargobay.errors import PaginationInvalid

MAX_PAGE = 10_000
MAX_PAGE_DIGITS = 18  # `n` longer than an int64 is refused as invalid


def _page_args(request: web.Request) -> tuple[int | None, str | None]:
    raw = request.query.get("n")
    limit = None
    if raw is not None and raw != "":
        # ASCII digits only (`"²".isdigit()` is true) and short enough for int() (Python
        # refuses more than 4300 digits); larger values mean "as many as allowed" anyway.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_PAGE_DIGITS):
            raise PaginationInvalid(detail={"n": raw})
        limit = min(int(raw), MAX_PAGE)
    return limit, request.query.get("last") or None


def _page(items: list[str], limit: int | None, path: str) -> tuple[list[str], dict[str, str]]:
    """Trim a query fetched with limit+1 rows and add the `Link` to the next page."""
    headers: dict[str, str] = {}
    if limit is not None and len(items) > limit:
        items = items[:limit]
        if items:
            headers["Link"] = f'<{path}?n={limit}&last={quote(items[-1], safe="")}>; rel="next"'
    return items, headers


def _json(
    data: object,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    body = json.dumps(data).encode()
    return web.Response(
        status=status, body=body, headers={**(headers or {}), "Content-Type": content_type}
    )


async def base(call: Call) -> web.StreamResponse:
    return _json({})


async def catalog(call: Call) -> web.StreamResponse:
    limit, last = _page_args(call.request)
    names = await call.services.repositories.list_names(
        call.registry_id, last, None if limit is None else limit + 1
    )
    names, headers = _page(names, limit, "/v2/_catalog")
    return _json({"repositories": names}, headers=headers)


async def tags(call: Call) -> web.StreamResponse:
    repo = await call.repo()
    limit, last = _page_args(call.request)
    names = await call.services.manifests.list_tags(
        repo, last, None if limit is None else limit + 1
    )
    names, headers = _page(names, limit, f"/v2/{call.name}/tags/list")
    return _json({"name": call.name, "tags": names}, headers=headers)
