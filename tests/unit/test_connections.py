"""ConnectionGuard's bookkeeping with stand-in transports: the per-address cap (trusted proxies
exempt) and which stalled bodies the reaper closes. The real thing is proven end to end in
tests/e2e/test_slow_clients.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
