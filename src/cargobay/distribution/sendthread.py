"""Sending a decrypted blob from a worker thread straight to the client's socket.

The plain download path is `sendfile`: no byte passes through Python. A blob under a KMS key
must be decrypted, and streaming the plaintext through aiohttp costs more CPU than the
decryption (each write is buffered, copied and re-sent by the transport, and every batch
wakes the event loop). Here one thread reads, decrypts (`storage.decrypting.LocalRange`, two
reused buffers) and writes each batch to a duplicate of the connection's socket, waiting
with `poll` when the socket is full (back-pressure), while the event loop stays free; the
response's headers go first through aiohttp, and the loop takes the connection back after.
Plain TCP only (TLS needs the transport's own encryption), at most `MAX_SENDERS` at a time
per process; otherwise, and for stores without local files, `distribution.streams` streams.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import select
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

log = logging.getLogger("cargobay.distribution")

MAX_SENDERS = 16
POLL_MS = 250  # how often a waiting sender checks whether it was stopped
IDLE_SECONDS = 300.0  # a client that takes nothing for this long is cut off
_POOL = ThreadPoolExecutor(MAX_SENDERS, thread_name_prefix="blob-send")
_active = 0


def usable(request: web.Request) -> bool:
    """Whether this response can be sent from a thread (plain TCP, a sender free)."""
    transport = request.transport
    return (
        _active < MAX_SENDERS
        and transport is not None
        and not transport.is_closing()
        and transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
    )


async def send(
    request: web.Request, response: web.StreamResponse, batches: Iterator[memoryview]
) -> web.StreamResponse:
    """Send `response`'s headers, then `batches` from a thread. The first batch is produced
    before the headers, so a failure there (missing or tampered bytes) is still an error
    response; a later one cuts the connection, as any stream does once started."""
    global _active
    loop = asyncio.get_running_loop()
    _active += 1
    job: asyncio.Future[object] | None = None
    try:
        job = loop.run_in_executor(_POOL, next, batches, None)
        first = await asyncio.shield(job)
        await response.prepare(request)
        transport = request.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if transport is None or sock is None:
            raise ConnectionResetError("the client went away")
        while transport.get_write_buffer_size():  # the headers must leave first
            await asyncio.sleep(0.001)
        stop = threading.Event()
        fd = os.dup(sock.fileno())
        pieces = itertools.chain([] if first is None else [first], batches)
        job = loop.run_in_executor(_POOL, _pump, fd, pieces, stop)
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            stop.set()
            raise
        except (ConnectionError, TimeoutError):
            transport.abort()
            raise ConnectionResetError("the client went away") from None
        except Exception as exc:
            log.error("a blob failed while it was sent", exc_info=exc)
            transport.abort()
            raise ConnectionResetError("the blob's source failed mid-stream") from None
    finally:
        _active -= 1
        close = batches.close  # type: ignore[attr-defined]
        if job is None or job.done():
            close()
        else:  # a thread still uses the producer: closed once it is done with it
            job.add_done_callback(lambda _: close())
    await response.write_eof()
    return response


def _pump(fd: int, pieces: Iterator[memoryview], stop: threading.Event) -> None:
    """Write every piece to the (non-blocking) socket `fd`, waiting while it is full."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    try:
        for piece in pieces:
            if stop.is_set():
                raise ConnectionResetError("the download was stopped")
            view, idle = piece, 0.0
            while view:
                try:
                    view = view[os.write(fd, view) :]
                    idle = 0.0
                    continue
                except BlockingIOError:
                    pass
                if stop.is_set():
                    raise ConnectionResetError("the download was stopped")
                events = poller.poll(POLL_MS)
                if not events:
                    idle += POLL_MS / 1000
                    if idle > IDLE_SECONDS:
                        raise TimeoutError("the client stopped reading")
                elif events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    raise ConnectionResetError("the client went away")
    finally:
        os.close(fd)
