"""ConnectionGuard's bookkeeping with stand-in transports: the per-address cap (trusted proxies
exempt) and which stalled bodies the reaper closes. The real thing is proven end to end in
tests/e2e/test_slow_clients.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from cargobay.connections import ConnectionGuard, _Guarded


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: str, reading: bool = True) -> None:
        super().__init__()
        self.peer = peer
        self.reading = reading
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default

    def is_reading(self) -> bool:
        return self.reading

    def abort(self) -> None:
        self.aborted = True


@dataclass
class FakeContent:
    eof: bool = False

    def is_eof(self) -> bool:
        return self.eof


@dataclass
class FakeRequest:
    method: str = "PATCH"
    path: str = "/v2/r/blobs/uploads/u"
    can_read_body: bool = True
    content: FakeContent = field(default_factory=FakeContent)


def _conn(guard: ConnectionGuard, peer: str, reading: bool = True) -> tuple[_Guarded, bool]:
    conn = _Guarded(guard, asyncio.Protocol())
    transport = FakeTransport(peer, reading)
    conn.transport = transport
    return conn, guard.admit(conn, transport)


def test_per_address_cap_and_release() -> None:
    guard = ConnectionGuard(max_per_ip=2)
    first, ok1 = _conn(guard, "10.0.0.1")
    _, ok2 = _conn(guard, "10.0.0.1")
    _, ok3 = _conn(guard, "10.0.0.1")
    _, other = _conn(guard, "10.0.0.2")
    assert (ok1, ok2, ok3, other) == (True, True, False, True)
    assert guard.release(first)
    assert not guard.release(first)  # released once only
    assert _conn(guard, "10.0.0.1")[1]
    assert guard.open_connections == 3


def test_trusted_proxies_and_no_limit() -> None:
    guard = ConnectionGuard(max_per_ip=1, trusted_proxies="10.1.0.0/16")
    assert all(_conn(guard, "10.1.2.3")[1] for _ in range(5))
    unlimited = ConnectionGuard(max_per_ip=0)
    assert all(_conn(unlimited, "10.0.0.9")[1] for _ in range(50))


def test_reaper_closes_stalled_heads() -> None:
    guard = ConnectionGuard(header_timeout=2)
    silent, _ = _conn(guard, "10.0.0.1")  # connected, sent nothing yet
    partial, _ = _conn(guard, "10.0.0.1")
    partial.data_received(b"GET /v2/ HT")
    kept_alive, _ = _conn(guard, "10.0.0.1")
    kept_alive.head_since = None  # answered a request, now idle
    recent, _ = _conn(guard, "10.0.0.1")
    for conn in (silent, partial, kept_alive):
        if conn.head_since is not None:
            conn.head_since -= 10
    assert guard.reap() == 2
    closed = {c: c.transport.aborted for c in (silent, partial, kept_alive, recent)}  # type: ignore[union-attr]
    assert closed == {silent: True, partial: True, kept_alive: False, recent: False}


def test_reaper_closes_only_stalled_bodies() -> None:
    guard = ConnectionGuard(body_idle_timeout=2)
    stalled, _ = _conn(guard, "10.0.0.1")
    stalled.request = FakeRequest()  # type: ignore[assignment]
    finished, _ = _conn(guard, "10.0.0.1")
    finished.request = FakeRequest(content=FakeContent(eof=True))  # type: ignore[assignment]
    paused, _ = _conn(guard, "10.0.0.1", reading=False)  # the server stopped reading
    paused.request = FakeRequest()  # type: ignore[assignment]
    idle, _ = _conn(guard, "10.0.0.1")  # between requests: keep-alive's business
    idle.head_since = None
    fresh, _ = _conn(guard, "10.0.0.1")
    fresh.request = FakeRequest()  # type: ignore[assignment]
    for conn in (stalled, finished, paused, idle):
        conn.last_data -= 10
    for conn in (stalled, finished, paused, fresh):
        conn.head_since = None  # their heads arrived
    assert guard.reap() == 1
    aborted = {c: c.transport.aborted for c in (stalled, finished, paused, idle, fresh)}  # type: ignore[union-attr]
    assert aborted == {stalled: True, finished: False, paused: False, idle: False, fresh: False}


@dataclass
class CarriedRequest:
    """What `ConnectionGuard.wrap` reads of a request."""

    transport: FakeTransport | None
    content_length: int | None = None
    body_exists: bool = False
    method: str = "GET"
    path: str = "/v2/"
    remote: str = "10.0.0.1"


class ClosingTransport(FakeTransport):
    def __init__(self, peer: str, closing: bool) -> None:
        super().__init__(peer)
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing


class CountedUploads:
    def __init__(self) -> None:
        self.begun = self.ended = 0

    def begin(self, request: object) -> bool:
        large = getattr(request, "content_length", 0) or 0
        self.begun += large > 0
        return large > 0

    def end(self) -> None:
        self.ended += 1


def test_wrap_notes_the_carried_request_and_counts_uploads() -> None:
    guard = ConnectionGuard()
    conn, _ = _conn(guard, "10.0.0.1")
    conn.data_received(b"POST /v2/ HTTP/1.1\r\n")
    assert conn.head_since is not None
    uploads = CountedUploads()
    seen: list[object] = []

    async def handler(request: object) -> object:
        seen.append((conn.request, conn.head_since))
        return "answer"

    wrapped = guard.wrap(handler, uploads)  # type: ignore[arg-type]
    request = CarriedRequest(conn.transport, content_length=5 << 20, body_exists=True)  # type: ignore[arg-type]
    assert asyncio.run(wrapped(request)) == "answer"  # type: ignore[arg-type,comparison-overlap]
    assert seen == [(request, None)]  # the reaper saw the request, its head no longer pending
    assert conn.request is None  # handled: the connection is idle again
    assert (uploads.begun, uploads.ended) == (1, 1)
    small = CarriedRequest(conn.transport)  # type: ignore[arg-type]
    asyncio.run(wrapped(small))  # type: ignore[arg-type]
    assert (uploads.begun, uploads.ended) == (1, 1)  # no body: not an upload


def test_wrap_answers_400_only_for_a_client_that_went_away() -> None:
    guard = ConnectionGuard()
    uploads = CountedUploads()

    async def handler(request: object) -> object:
        raise ConnectionResetError("gone")

    wrapped = guard.wrap(handler, uploads)  # type: ignore[arg-type]
    gone = CarriedRequest(ClosingTransport("10.0.0.1", closing=True), content_length=1)
    assert asyncio.run(wrapped(gone)).status == 400  # type: ignore[arg-type,attr-defined]
    live = CarriedRequest(ClosingTransport("10.0.0.1", closing=False), content_length=1)
    with pytest.raises(ConnectionResetError):  # a connection of ours failed: it stands
        asyncio.run(wrapped(live))  # type: ignore[arg-type]
    assert uploads.ended == 2  # every upload begun is ended, also when the handler failed
