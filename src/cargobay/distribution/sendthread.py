"""Sending a blob's bytes from a worker thread straight to the client's socket.

A plain blob of a local store is sent with sendfile(2) (`send_file`): no byte passes through
Python, and a thread does it so that the kernel's TCP work for many downloads is not all on
the one core of the worker's event loop. A blob under a KMS key must be decrypted, and
streaming the plaintext through aiohttp costs more CPU than the decryption (each write is
buffered, copied and re-sent by the transport, and every batch wakes the event loop); there
one thread reads, decrypts (`storage.decrypting.LocalRange`, two reused buffers) and writes
each batch (`send`). Either way the thread writes to a duplicate of the connection's socket,
waiting with `poll` when it is full (back-pressure), while the event loop stays free; the
response's headers go first through aiohttp, and the loop takes the connection back after.
Plain TCP only (TLS needs the transport's own encryption), at most `MAX_SENDERS` at a time
per process; otherwise the loop sends (`loop.sendfile`, or `distribution.streams`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import select
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    jobs: list[asyncio.Future[Any]] = []  # the last one may still use the producer
    try:
        jobs.append(loop.run_in_executor(_POOL, next, batches, None))
        first = await asyncio.shield(jobs[-1])
        await response.prepare(request)
        pieces = itertools.chain([] if first is None else [first], batches)
        await _drive(request, lambda sock, stop: _pump(sock, pieces, stop), jobs.append)
    finally:
        _active -= 1
        close = batches.close  # type: ignore[attr-defined]
        if not jobs or jobs[-1].done():
            close()
        else:  # a thread still uses the producer: closed once it is done with it
            jobs[-1].add_done_callback(lambda _: close())
    await response.write_eof()
    return response


async def send_file(request: web.Request, file: int, offset: int, count: int) -> None:
    """Send [offset, offset + count) of the open file `file` with sendfile(2) from a thread,
    once the response's headers are prepared. The thread works on its own duplicate of the
    file (and of the socket), so the response may close `file` whenever it ends.

    Why a thread for a plain file, where the loop could call sendfile itself: on the loop,
    one sendfile call sends as much as the socket takes (up to ~35 MiB on loopback), and
    every other request of the worker waits for it. Beside four 1 GiB downloads, manifest
    GETs had a p99 of 629 ms that way and 29-33 ms this way (RESULTS.md, stop 28, scenario
    13). The kernel's TCP work also spreads over the cores instead of the loop's one.
    """
    global _active
    _active += 1
    source = os.dup(file)
    owned = [source]  # emptied once a thread owns the duplicate

    def pump(sock: int, stop: threading.Event) -> None:
        _sendfile(sock, source, offset, count, stop)

    try:
        await _drive(request, pump, lambda _: owned.clear())
    finally:
        _active -= 1
        for fd in owned:
            os.close(fd)


async def _drive(
    request: web.Request,
    pump: Callable[[int, threading.Event], None],
    started: Callable[[asyncio.Future[None]], None],
) -> None:
    """Run `pump(socket, stop)` in a sending thread on a duplicate of the connection's socket
    (the thread closes it) once the response's headers have left, and cut the connection if
    it fails. `started` gets the job the moment it exists: if this coroutine is cancelled,
    the thread still runs until its next wait, and its caller must not free what it uses."""
    loop = asyncio.get_running_loop()
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if transport is None or sock is None:
        raise ConnectionResetError("the client went away")
    while transport.get_write_buffer_size():  # the headers must leave first
        await asyncio.sleep(0.001)
    stop = threading.Event()
    fd = os.dup(sock.fileno())
    try:
        job: asyncio.Future[None] = loop.run_in_executor(_POOL, pump, fd, stop)
    except BaseException:
        os.close(fd)
        raise
    started(job)
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


class _Waiter:
    """Waits, in a sending thread, until a full (non-blocking) socket takes bytes again."""

    def __init__(self, fd: int, stop: threading.Event) -> None:
        self.poller = select.poll()
        self.poller.register(fd, select.POLLOUT)
        self.stop = stop
        self.idle = 0.0

    def sent(self) -> None:
        self.idle = 0.0

    def wait(self) -> None:
        if self.stop.is_set():
            raise ConnectionResetError("the download was stopped")
        events = self.poller.poll(POLL_MS)
        if not events:
            self.idle += POLL_MS / 1000
            if self.idle > IDLE_SECONDS:
                raise TimeoutError("the client stopped reading")
        elif events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            raise ConnectionResetError("the client went away")


def _pump(fd: int, pieces: Iterator[memoryview], stop: threading.Event) -> None:
    """Write every piece to the (non-blocking) socket `fd`, waiting while it is full."""
    waiter = _Waiter(fd, stop)
    try:
        for piece in pieces:
            if stop.is_set():
                raise ConnectionResetError("the download was stopped")
            view = piece
            while view:
                try:
                    view = view[os.write(fd, view) :]
                    waiter.sent()
                except BlockingIOError:
                    waiter.wait()
    finally:
        os.close(fd)


def _sendfile(fd: int, source: int, offset: int, count: int, stop: threading.Event) -> None:
    """sendfile(2) [offset, offset + count) of `source` to the (non-blocking) socket `fd`,
    waiting while it is full; closes both."""
    waiter = _Waiter(fd, stop)
    try:
        end = offset + count
        while offset < end:
            if stop.is_set():
                raise ConnectionResetError("the download was stopped")
            try:
                sent = os.sendfile(fd, source, offset, end - offset)
            except BlockingIOError:
                waiter.wait()
                continue
            if sent == 0:
                raise OSError("the blob's file ended before its size")
            offset += sent
            waiter.sent()
    finally:
        os.close(fd)
        os.close(source)
