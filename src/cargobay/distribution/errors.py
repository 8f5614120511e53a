"""OCI error JSON: the one place registry errors become `/v2/` responses."""

from __future__ import annotations

import json

from aiohttp import web

from cargobay.oci.errors import RegistryError, Unauthorized

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def error_response(request: web.Request, error: RegistryError, realm: str) -> web.Response:
    entry: dict[str, object] = {"code": error.code, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    headers = {**API_VERSION_HEADER, **error.headers}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    body = json.dumps({"errors": [entry]}).encode()
    headers["Content-Type"] = "application/json"
    # aiohttp sends no body on HEAD but keeps the Content-Length, as HTTP wants.
    return web.Response(status=error.status, body=body, headers=headers)
