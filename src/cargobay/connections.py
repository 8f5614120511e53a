"""Connection hygiene for one worker: a header timeout, an idle-body timeout for uploads,
per-IP connection limits, and a quiet log line for clients that go away mid-request.

aiohttp bounds only idle keep-alive; a client that sends half a request head, or stops in the
middle of a body, holds its connection (and its upload) for as long as it likes. Each
connection's protocol (aiohttp's request handler) is wrapped in a thin proxy that counts
connections per peer address, notes when bytes last arrived and when the current request head
began (at connect, or at the first byte after a request was handled). A reaper task closes:

- a connection whose request head is not complete `header_timeout` after it began;
- a connection whose request body is incomplete and from which nothing has arrived for
  `body_idle_timeout` while the socket was being read (when the server paused reading because
  its own buffer is full, the stall is ours, not the client's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from cargobay.balance import Acceptor
from cargobay.sharedport import SharedPort

log = logging.getLogger("cargobay.connections")

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class Uploads(Protocol):
    """What `ConnectionGuard.wrap` tells about request bodies (`cargobay.malloc.Trimmer`)."""

    def begin(self, request: web.BaseRequest) -> bool: ...

    def end(self) -> None: ...


def _went_away(request: web.BaseRequest, exc: ConnectionResetError) -> web.Response:
    log.info(
        "%s %s: client %s went away mid-request (%s)",
        request.method,
        request.path[:200],
        request.remote,
        exc or "connection lost",
    )
    return web.Response(status=400)


class _Guarded(asyncio.Protocol):
    """Forwards every protocol event to aiohttp's handler, after the guard's bookkeeping."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.last_data = time.monotonic()
        self.head_since: float | None = self.last_data  # a request head is awaited since
        self.request: web.BaseRequest | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self, transport):
            # Answer 503, then half-close and drain: closing with the client's request still
            # unread would reset the connection and lose the answer.
            self.refused = True
            transport.write(_REFUSED)
            if transport.can_write_eof():
                transport.write_eof()
            asyncio.get_running_loop().call_later(1.0, transport.abort)
            return
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.guard.release(self):
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        if self.request is None and self.head_since is None:
            self.head_since = self.last_data  # the first byte of the next request head
        if not self.refused:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.refused else self.inner.eof_received()

    def pause_writing(self) -> None:
        if not self.refused:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self.refused:
            self.inner.resume_writing()


class ConnectionGuard:
    """Per-worker connection bookkeeping: see the module docstring."""

    def __init__(
        self,
        *,
        max_per_ip: int = 0,
        header_timeout: float = 60.0,
        body_idle_timeout: float = 60.0,
        trusted_proxies: str = "",
    ) -> None:
        self.max_per_ip = max_per_ip
        self.header_timeout = header_timeout
        self.body_idle_timeout = body_idle_timeout
        self._exempt = [
            ipaddress.ip_network(p.strip(), strict=False)
            for p in trusted_proxies.split(",")
            if p.strip()
        ]
        self._per_ip: Counter[str] = Counter()
        self._open: dict[_Guarded, None] = {}
        self._by_transport: dict[asyncio.BaseTransport, _Guarded] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Called when a connection is admitted or released (`cargobay.balance` publishes it).
        self.on_change: Callable[[], None] | None = None

    # -- connections ---------------------------------------------------------------------

    def factory(self, make_inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` wrapping aiohttp's."""
        return lambda: _Guarded(self, make_inner())

    def _limited(self, peer: str | None) -> bool:
        if not self.max_per_ip or peer is None:
            return False
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(peer)
            if any(address in network for network in self._exempt):
                return False
        return self._per_ip[peer] >= self.max_per_ip

    def admit(self, conn: _Guarded, transport: asyncio.Transport) -> bool:
        peername = transport.get_extra_info("peername")
        peer = peername[0] if isinstance(peername, tuple) else None
        if self._limited(peer):
            log.info("refused a connection from %s: %d already open", peer, self._per_ip[peer])
            return False
        conn.peer = peer
        if peer is not None:
            self._per_ip[peer] += 1
        self._open[conn] = None
        self._by_transport[transport] = conn
        if self.on_change is not None:
            self.on_change()
        return True

    def release(self, conn: _Guarded) -> bool:
        """Forget a closed connection; False when it was never admitted."""
        if conn not in self._open:
            return False
        del self._open[conn]
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)
        if conn.peer is not None:
            self._per_ip[conn.peer] -= 1
            if self._per_ip[conn.peer] <= 0:
                del self._per_ip[conn.peer]
        if self.on_change is not None:
            self.on_change()
        return True

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # -- stalled bodies ----------------------------------------------------------------------

    def wrap(self, handler: Handler, uploads: Uploads | None = None) -> Handler:
        """The server's request handler around `handler` (the application's): it notes which
        connection carries the request (for the reaper), counts uploads for `uploads` (the
        heap trimmer), and turns a client that went away mid-request into one info line
        instead of an error traceback.

        One coroutine where two aiohttp middlewares were: with any middleware, aiohttp also runs
        its own (which sets `match_info.current_app`) and a cached chain of partials on every
        request, about 2% of a small API call's CPU."""
        by_transport = self._by_transport

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            transport = request.transport
            conn = by_transport.get(transport) if transport is not None else None
            if conn is not None:
                conn.request = request
                conn.head_since = None
            upload = uploads is not None and uploads.begin(request)
            try:
                return await handler(request)
            except ConnectionResetError as exc:
                transport = request.transport  # None once the connection is lost
                if transport is not None and not transport.is_closing():
                    raise  # not this client: a connection of ours (the object store) failed
                return _went_away(request, exc)
            finally:
                if upload:
                    uploads.end()  # type: ignore[union-attr]
                if conn is not None:
                    conn.request = None

        return guarded

    def reap(self, now: float | None = None) -> int:
        """Close connections whose request head or body stalled; how many were closed."""
        now = time.monotonic() if now is None else now
        closed = 0
        for conn in list(self._open):
            request, transport = conn.request, conn.transport
            if transport is None:
                continue
            if request is None:
                if conn.head_since is not None and now - conn.head_since > self.header_timeout:
                    log.info(
                        "closed a connection from %s that sent no complete request head in %.0f s",
                        conn.peer,
                        now - conn.head_since,
                    )
                    transport.abort()
                    closed += 1
                continue
            if not request.can_read_body:
                continue
            if request.content.is_eof():
                continue
            if not transport.is_reading():  # our buffer is full: the handler is behind
                conn.last_data = now
                continue
            if now - conn.last_data > self.body_idle_timeout:
                log.info(
                    "%s %s: closed a connection from %s whose body stalled for %.0f s",
                    request.method,
                    request.path[:200],
                    conn.peer,
                    now - conn.last_data,
                )
                transport.abort()
                closed += 1
        return closed

    async def _reap_forever(self) -> None:
        interval = min(max(min(self.header_timeout, self.body_idle_timeout) / 4, 0.25), 5.0)
        while True:
            await asyncio.sleep(interval)
            self.reap()

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper


class GuardedSite(web.TCPSite):
    """`web.TCPSite` whose connections go through a :class:`ConnectionGuard`; with `shared`,
    accepting from the supervisor's socket as `cargobay.balance` spreads them."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        shared: SharedPort | None = None,
        slot: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, **kwargs)
        self._guard = guard
        self._shared = shared
        self._slot = slot

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        if self._shared is not None:
            acceptor = Acceptor(
                self._shared.sock,
                self._shared.counts,
                self._slot,
                self._guard.factory(server),
                lambda: self._guard.open_connections,
                self._ssl_context,
            )
            self._guard.on_change = acceptor.published
            self._server = acceptor.start()  # type: ignore[assignment]
            self._bound_port = self._shared.sock.getsockname()[1]
            return
        self._server = await loop.create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
