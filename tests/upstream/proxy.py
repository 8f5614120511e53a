"""An HTTP proxy in front of a real upstream that misbehaves on demand: tampers with manifest
or blob bytes, serves another manifest than the digest asked for, answers fixed statuses, or
redirects blob GETs to another origin (as registries redirect to S3), recording which
Authorization headers arrive where."""

from __future__ import annotations

import base64

import aiohttp
from aiohttp import web

_HOP = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


class Proxy:
    def __init__(self, target: str, credentials: str | None = None) -> None:
        self.target = target
        self.credentials = credentials  # user:password the blob host uses upstream
        self.mode = "pass"
        self.status = 503
        self.status_headers: dict[str, str] = {}
        self.swap_digest = ""  # mode "swap": manifests by digest come from this one instead
        self.redirected_auth: list[str | None] = []  # Authorization on redirected blob GETs
        self.blob_host_auth: list[str | None] = []  # Authorization at the other origin
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self.port = self.blob_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _site(self, handler) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def __aenter__(self) -> Proxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self.port = await self._site(self._handle)
        self.blob_port = await self._site(self._blob_host)
        return self

    async def __aexit__(self, *_: object) -> None:
        for runner in self._runners:
            await runner.cleanup()
        assert self._session is not None
        await self._session.close()

    async def _forward(self, method: str, path: str, headers: dict[str, str]) -> tuple:
        assert self._session is not None
        async with self._session.request(
            method, self.target + path, headers=headers, allow_redirects=False
        ) as up:
            body = await up.read()
            kept = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            return up.status, kept, body

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "status":
            return web.Response(status=self.status, headers=self.status_headers)
        path = request.path_qs
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")
        }
        is_blob = "/blobs/" in path and request.method == "GET"
        if self.mode == "redirect" and is_blob:
            self.redirected_auth.append(request.headers.get("Authorization"))
            location = f"http://127.0.0.1:{self.blob_port}/s3{path}?X-Amz-Signature=abc"
            return web.Response(status=307, headers={"Location": location})
        if self.mode == "swap" and "/manifests/sha256:" in path:
            path = path.rsplit("/", 1)[0] + "/" + self.swap_digest
        status, kept, body = await self._forward(request.method, path, headers)
        if status == 200 and self.mode == "tamper-blob" and is_blob and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        if status == 200 and self.mode == "tamper-manifest" and "/manifests/" in path:
            body += b"\n"  # still the same JSON, no longer the same bytes
        if self.mode == "swap":
            kept.pop("Docker-Content-Digest", None)
        return web.Response(status=status, headers=kept, body=body)

    async def _blob_host(self, request: web.Request) -> web.StreamResponse:
        self.blob_host_auth.append(request.headers.get("Authorization"))
        headers = {}
        if self.credentials:
            headers["Authorization"] = (
                "Basic " + base64.b64encode(self.credentials.encode()).decode()
            )
        status, _, body = await self._forward("GET", request.path.removeprefix("/s3"), headers)
        return web.Response(status=status, body=body)
