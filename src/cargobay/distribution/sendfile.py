"""A blob served from a local file: aiohttp's FileResponse (sendfile(2), conditional requests
and Range), with the file read into the page cache ahead of the socket while it is sent."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from cargobay.storage import readahead


class BlobFileResponse(web.FileResponse):
    def __init__(
        self,
        path: Path,
        wanted: tuple[int, int],
        chunk_size: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, headers=headers)
        self._wanted = wanted  # the bytes this response sends, for the readahead

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        # FileResponse.prepare sends the whole body before it returns.
        job = readahead.start(self._path, *self._wanted)
        try:
            return await super().prepare(request)
        finally:
            if job is not None:
                job.release()
