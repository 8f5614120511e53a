"""A blob served from a local file: aiohttp's FileResponse (sendfile(2), conditional requests
and Range), with the file read into the page cache ahead of the socket while it is sent
(`BlobService.read_ahead`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest


class BlobFileResponse(web.FileResponse):
    def __init__(
        self,
        path: Path,
        read_ahead: Callable[[], Callable[[], None]],
        chunk_size: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, headers=headers)
        self._read_ahead = read_ahead  # starts the readahead; returns the call that ends it

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        # FileResponse.prepare sends the whole body before it returns.
        done = self._read_ahead()
        try:
            return await super().prepare(request)
        finally:
            done()
