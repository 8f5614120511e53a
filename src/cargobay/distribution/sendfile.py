"""A blob served from a local file with sendfile(2), the file read into the page cache ahead of
the socket while it is sent (`BlobService.read_ahead`).

The caller has already decided everything a response needs: it opened the file, knows the
blob's size and digest, and resolved Range and the validators (`distribution.blobs`). So this
is a plain StreamResponse that sends the headers, then the byte range with sendfile(2): from
a sending thread (`sendthread.send_file`) from a MiB on, else with `loop.sendfile` (asyncio
falls back to reads and writes where the transport cannot sendfile, as under TLS).

Not aiohttp's FileResponse, which this replaced: it opens, stats and closes the file through
the default executor (two thread hops a request, about half the CPU of a small blob GET),
answers conditional requests by an ETag of its own made from the file's mtime rather than
the blob's digest, and serves a precompressed sibling (`<path>.gz`, `.br`, `.zst`) to a client
that accepts that encoding. A blob is sent exactly as stored.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from cargobay.distribution import sendthread

# From this size a body is sent by a sending thread (`sendthread.send_file`): the thread hop
# costs tens of microseconds, a MiB's sendfile several hundred.
THREAD_FROM = 1024 * 1024


class BlobFileResponse(web.StreamResponse):
    """Bytes [offset, offset + count) of an open blob file; the response owns (and closes)
    the file."""

    def __init__(
        self,
        file: io.FileIO,
        offset: int,
        count: int,
        read_ahead: Callable[[], Callable[[], None]],
        *,
        status: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length = count
        self._file = file
        self._offset = offset
        self._count = count
        self._read_ahead = read_ahead  # starts the readahead; returns the call that ends it

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        done = self._read_ahead()
        try:
            writer = await super().prepare(request)
            if self._count >= THREAD_FROM and sendthread.usable(request):
                await sendthread.send_file(request, self._file.fileno(), self._offset, self._count)
            elif self._count:
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("the client went away")
                loop = asyncio.get_running_loop()
                await loop.sendfile(transport, self._file, self._offset, self._count)
            await super().write_eof()
            return writer
        finally:
            done()
            self._file.close()
